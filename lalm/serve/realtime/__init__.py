"""Realtime transcription over WebSocket, OpenAI's Realtime API in transcription mode: `protocol` (one typed
model per event, the openai SDK's own where it has one), `session` (the buffer, turn detection and each turn's
transcription, without a socket) and `router` (the WebSocket route that carries a session)."""
