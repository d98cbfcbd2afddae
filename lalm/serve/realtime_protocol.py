"""The events of OpenAI's Realtime API in transcription mode (`/v1/realtime?intent=transcription`), with
OpenAI's names and shapes (openai-python 3.54's `types/realtime`, the GA form of the API):

client -> server: `session.update`, `input_audio_buffer.append` / `.commit` / `.clear`;
server -> client: `session.created` / `.updated`, `input_audio_buffer.speech_started` / `.speech_stopped` /
`.committed` / `.cleared`, `conversation.item.added` (the turn's user item, right after `.committed`),
`conversation.item.input_audio_transcription.delta` / `.completed` / `.failed`, `conversation.item.done` (the
item with its transcript, after `.completed` or `.failed`), `error`.

The session configuration is validated by pydantic models that forbid unknown fields, so a typo or a feature
lalm lacks (semantic VAD, noise reduction, G.711) is answered with an `error` event naming the
field instead of being silently ignored. lalm's one extension: `audio/pcm` at 16 kHz as well as OpenAI's
24 kHz (16 kHz is what the model hears, so such audio is never resampled).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lalm.engines.base import Usage
from lalm.errors import LalmError
from lalm.serve.errors import error_type

__all__ = [
    "SessionConfig",
    "committed",
    "error_event",
    "new_id",
    "server_event",
    "session_event",
    "transcription_completed",
    "transcription_delta",
    "transcription_failed",
    "updated_config",
]

CLIENT_EVENTS = ("session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
                 "input_audio_buffer.clear")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PCMFormat(_Strict):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[16000, 24000] = Field(24000, description="24000 (OpenAI) or 16000 (lalm extension).")


class TranscriptionOptions(_Strict):
    model: str | None = None
    language: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
    prompt: str | None = None


class ServerVAD(_Strict):
    """Silero VAD cuts turns (lalm.vad.StreamingVAD). The response fields concern conversation sessions,
    which lalm does not have; they are accepted and have no effect."""

    type: Literal["server_vad"]
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    prefix_padding_ms: int = Field(300, ge=0, le=5000)
    silence_duration_ms: int = Field(500, ge=0, le=10000)
    create_response: bool | None = None
    interrupt_response: bool | None = None
    idle_timeout_ms: int | None = None


class AudioInput(_Strict):
    format: PCMFormat = PCMFormat()
    transcription: TranscriptionOptions = TranscriptionOptions()
    turn_detection: ServerVAD | None = ServerVAD(type="server_vad")
    noise_reduction: None = Field(None, description="Not supported: must be null or absent.")


class AudioConfig(_Strict):
    input: AudioInput = AudioInput()


class SessionConfig(_Strict):
    """A transcription session's configuration, in the shape of OpenAI's `session` object."""

    type: Literal["transcription"] = "transcription"
    audio: AudioConfig = AudioConfig()
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = Field(
        None, description="`item.input_audio_transcription.logprobs`: each delta and completed event carries its "
        "tokens' logprobs.")

    @property
    def logprobs(self) -> bool:
        return bool(self.include)

    @property
    def input(self) -> AudioInput:
        return self.audio.input


def _merge(base: dict, update: dict) -> dict:
    """`update` laid over `base`: nested objects merge, anything else (null too) replaces."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def updated_config(current: SessionConfig, update: Any) -> SessionConfig:
    """`current` with the fields present in a session.update's `session` object replaced, as OpenAI does
    ("only the fields that are present are updated"). Raises a LalmError naming the bad field."""
    if not isinstance(update, dict):
        raise LalmError("session.update needs a `session` object.", code="invalid_value", param="session")
    if update.get("type", "transcription") != "transcription":
        raise LalmError("lalm serves transcription sessions only: session.type must be `transcription` "
                        "(connect with ?intent=transcription).", code="unsupported_value", param="session.type")
    turn = _dig(update, "audio", "input", "turn_detection")
    if isinstance(turn, dict) and turn.get("type") == "semantic_vad":
        raise LalmError("semantic_vad is not supported; use server_vad or null.", code="unsupported_value",
                        param="session.audio.input.turn_detection.type")
    try:
        return SessionConfig.model_validate(_merge(current.model_dump(), update))
    except ValidationError as exc:
        first = exc.errors()[0]
        param = "session." + ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        message = first["msg"] if first["type"] != "extra_forbidden" else "unknown field"
        raise LalmError(f"{param}: {message}", code="invalid_value", param=param) from None


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: `event_…`, `item_…`, `sess_…`."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def server_event(type: str, **fields: Any) -> dict:
    """A server event: its type, a fresh `event_id`, then `fields`."""
    return {"type": type, "event_id": new_id("event"), **fields}


def session_event(type: Literal["session.created", "session.updated"], session_id: str,
                  config: SessionConfig, model: str) -> dict:
    session = config.model_dump()
    session["audio"]["input"]["transcription"]["model"] = config.input.transcription.model or model
    if session["audio"]["input"]["turn_detection"] is not None:
        session["audio"]["input"]["turn_detection"] = config.input.turn_detection.model_dump(exclude_none=True)
    return server_event(type, session={"id": session_id, "object": "realtime.transcription_session", **session})


def error_event(err: LalmError, event_id: str | None = None) -> dict:
    """The `error` event for `err`, the one place a WebSocket's errors become events; `event_id` inside `error`
    is the client event that caused it."""
    return server_event("error", error={"type": error_type(err.status), "code": err.code, "message": err.message,
                                        "param": err.param, "event_id": event_id})


def committed(item_id: str, previous_item_id: str | None) -> dict:
    return server_event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_item_id)


def user_audio_item(item_id: str, transcript: str | None) -> dict:
    """A user message item holding one committed turn's audio (the audio itself is not echoed back, as
    OpenAI's server does not), with its transcript once there is one."""
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}]}


def item_added(item_id: str, previous_item_id: str | None) -> dict:
    return server_event("conversation.item.added", previous_item_id=previous_item_id,
                        item=user_audio_item(item_id, None))


def item_done(item_id: str, previous_item_id: str | None, transcript: str | None) -> dict:
    """`conversation.item.done` for a turn; `transcript` None when its transcription failed."""
    return server_event("conversation.item.done", previous_item_id=previous_item_id,
                        item=user_audio_item(item_id, transcript))


def transcription_delta(item_id: str, delta: str, logprobs: list[dict] | None = None) -> dict:
    """The delta event; `logprobs` (events.logprobs_body) only when the session includes them."""
    extra = {} if logprobs is None else {"logprobs": logprobs}
    return server_event("conversation.item.input_audio_transcription.delta", item_id=item_id, content_index=0,
                        delta=delta, **extra)


def transcription_completed(item_id: str, transcript: str, usage: Usage, logprobs: list[dict] | None = None
                            ) -> dict:
    extra = {} if logprobs is None else {"logprobs": logprobs}
    return server_event("conversation.item.input_audio_transcription.completed", item_id=item_id,
                        content_index=0, transcript=transcript,
                        usage={"type": "tokens", "input_tokens": usage.prompt_tokens,
                               "output_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens},
                        **extra)


def transcription_failed(item_id: str, err: LalmError) -> dict:
    return server_event("conversation.item.input_audio_transcription.failed", item_id=item_id, content_index=0,
                        error={"type": error_type(err.status), "code": err.code, "message": err.message,
                               "param": err.param})
