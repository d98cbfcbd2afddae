"""WebSocket /v1/realtime?intent=transcription: OpenAI's Realtime API in transcription mode (the events are
in lalm.serve.realtime.protocol, the session in lalm.serve.realtime.session). Each event the session emits is
sent as the model's own JSON (`to_json`, the openai SDK's serialisation).

API keys are checked before this route runs (lalm.serve.auth), from the `Authorization` header or, for
browsers, which cannot set headers on a WebSocket, from the subprotocol `openai-insecure-api-key.<key>`
that OpenAI's own browser clients send beside `realtime`. A client that goes away, or whose connection
dies (uvicorn's pings time out), ends its session: the turn being transcribed is cancelled with its engine
work.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from lalm.errors import LalmError
from lalm.serve.deps import resolve_model
from lalm.serve.realtime import protocol as rt
from lalm.serve.realtime.session import TranscriptionSession

router = APIRouter(tags=["realtime"])

_POLICY_VIOLATION = 1008
_TRY_AGAIN_LATER = 1013


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    """Realtime transcription: send `session.update`, then `input_audio_buffer.append` chunks of 16-bit
    PCM; turns are cut by Silero VAD (`server_vad`) or by `input_audio_buffer.commit`, and each is
    transcribed as `conversation.item.input_audio_transcription.delta` events and a `.completed` one."""
    app = websocket.app
    settings = app.state.settings
    await websocket.accept(subprotocol="realtime" if "realtime" in websocket.scope.get("subprotocols", []) else None)
    refusal = _refusal(websocket, app.state.realtime_sessions, settings.realtime_max_sessions)
    if refusal is not None:
        err, close_code = refusal
        await websocket.send_text(rt.error_event(err).to_json(indent=None))
        await websocket.close(close_code, err.message[:120])
        return

    outbox: asyncio.Queue[rt.ServerEvent] = asyncio.Queue()
    served = resolve_model(websocket, websocket.query_params.get("model"))
    session = TranscriptionSession(served.engine, settings, served.name, app.state.metrics,
                                   outbox.put_nowait)
    app.state.realtime_sessions += 1
    sender = asyncio.create_task(_send_events(websocket, outbox))
    session.start()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is not None:
                session.handle(message["text"])
            else:
                outbox.put_nowait(rt.error_event(LalmError("Send events as JSON text messages, not binary ones.",
                                                           code="invalid_event")))
            if sender.done():  # the connection failed while sending
                break
    except WebSocketDisconnect:
        pass
    finally:
        app.state.realtime_sessions -= 1
        await session.close()
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


def _refusal(websocket: WebSocket, open_sessions: int, max_sessions: int) -> tuple[LalmError, int] | None:
    """Why this connection cannot become a session (the error, the close code), or None. The errors are the
    `error` event's `invalid_request_error`, as OpenAI's realtime errors of a client are, whatever their code."""
    intent, model = websocket.query_params.get("intent"), websocket.query_params.get("model")
    if intent != "transcription":
        return (LalmError("lalm serves realtime transcription only: connect to /v1/realtime?intent=transcription.",
                          code="unsupported_intent"), _POLICY_VIOLATION)
    try:
        resolve_model(websocket, model)
    except LalmError as err:
        return err, _POLICY_VIOLATION
    if open_sessions >= max_sessions:
        return (LalmError(f"The server has its maximum of {max_sessions} realtime sessions open; retry shortly.",
                          code="rate_limit_exceeded"), _TRY_AGAIN_LATER)
    return None


async def _send_events(websocket: WebSocket, outbox: asyncio.Queue[rt.ServerEvent]) -> None:
    """The one writer of the socket: events go out in the order the session emitted them."""
    while True:
        await websocket.send_text((await outbox.get()).to_json(indent=None))
