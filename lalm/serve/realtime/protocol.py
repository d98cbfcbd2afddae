"""The events of OpenAI's Realtime API in transcription mode (`/v1/realtime?intent=transcription`), one typed
model per event, with OpenAI's names and shapes: the openai SDK's own `types.realtime` models (3.54, the GA
form of the API), which lalm's server events subclass to fill in `type` and a fresh `event_id`.

client -> server: `session.update`, `input_audio_buffer.append` / `.commit` / `.clear` (`parse_client_event`);
server -> client: `session.created` / `.updated`, `input_audio_buffer.speech_started` / `.speech_stopped` /
`.committed` / `.cleared`, `conversation.item.added` (the turn's user item, right after `.committed`),
`conversation.item.input_audio_transcription.delta` / `.completed` / `.failed`, `conversation.item.done` (the
item with its transcript, after `.completed` or `.failed`), `error`.

On the wire an event is `event.to_json()`, the SDK's serialisation: the fields that were set, so an explicit
null (`previous_item_id` of the first turn, a failed turn's transcript) is sent and an option left out (logprobs
of a session that did not include them) is not.

The session configuration is validated by pydantic models that forbid unknown fields, so a typo or a feature
lalm lacks (semantic VAD, noise reduction, G.711) is answered with an `error` event naming the field instead of
being silently ignored. lalm's one extension: `audio/pcm` at 16 kHz as well as OpenAI's 24 kHz (16 kHz is what
the model hears, so such audio is never resampled).
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal, get_args

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    ConversationItemInputAudioTranscriptionFailedEvent,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    LogProbProperties,
    RealtimeConversationItemUserMessage,
    RealtimeError,
    RealtimeErrorEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)
from openai.types.realtime.conversation_item_input_audio_transcription_completed_event import (
    UsageTranscriptTextUsageTokens,
)
from openai.types.realtime.conversation_item_input_audio_transcription_failed_event import Error as FailedError
from openai.types.realtime.realtime_conversation_item_user_message import Content
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from lalm.engines.base import Usage
from lalm.errors import LalmError
from lalm.serve.errors import error_type

__all__ = [
    "CLIENT_EVENTS",
    "Cleared",
    "ClientEvent",
    "Committed",
    "ErrorEvent",
    "ItemAdded",
    "ItemDone",
    "ServerEvent",
    "SessionConfig",
    "SessionCreated",
    "SessionObject",
    "SessionUpdate",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "TranscriptionCompleted",
    "TranscriptionDelta",
    "TranscriptionFailed",
    "error_event",
    "new_id",
    "parse_client_event",
    "read_message",
    "session_object",
    "transcription_completed",
    "transcription_delta",
    "transcription_failed",
    "updated_config",
    "user_audio_item",
]


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: `event_…`, `item_…`, `sess_…`."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# --- the session's configuration ---
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


class SessionObject(SessionConfig):
    """The session as `session.created` / `.updated` send it: its configuration with its id."""

    id: str
    object: Literal["realtime.transcription_session"] = "realtime.transcription_session"


def session_object(session_id: str, config: SessionConfig, model: str) -> SessionObject:
    """The whole session `config` as sent back, every field set (so every one is sent), the transcription
    model named (`model` unless the client chose one) and turn detection's conversation-only fields only where
    the client gave them."""
    data = config.model_dump()
    data["audio"]["input"]["transcription"]["model"] = config.input.transcription.model or model
    if config.input.turn_detection is not None:
        data["audio"]["input"]["turn_detection"] = config.input.turn_detection.model_dump(exclude_none=True)
    return SessionObject.model_validate({"id": session_id, "object": "realtime.transcription_session", **data})


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


def updated_config(current: SessionConfig, update: dict[str, Any]) -> SessionConfig:
    """`current` with the fields present in a session.update's `session` object replaced, as OpenAI does
    ("only the fields that are present are updated"). Raises a LalmError naming the bad field."""
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


# --- client events ---
class SessionUpdate(BaseModel):
    """`session.update`. Its `session` is a partial update, laid over the current configuration and validated
    as a whole (`updated_config`); the SDK's own model cannot hold lalm's 16 kHz extension."""

    type: Literal["session.update"]
    event_id: str | None = None
    session: dict[str, Any]


ClientEvent = Annotated[SessionUpdate | InputAudioBufferAppendEvent | InputAudioBufferCommitEvent
                        | InputAudioBufferClearEvent, Field(discriminator="type")]
CLIENT_EVENTS: tuple[str, ...] = tuple(get_args(m.model_fields["type"].annotation)[0]
                                       for m in get_args(get_args(ClientEvent)[0]))
_CLIENT_EVENT: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)

# what a client event without a usable field is told, by field
_NEEDS = {"session": "session.update needs a `session` object.",
          "audio": "input_audio_buffer.append needs `audio`: base64 of 16-bit PCM."}


def read_message(text: str) -> dict[str, Any]:
    """One client message (the WebSocket's text) as a JSON object with a string `type`. Raises a LalmError
    (400): invalid_json, or invalid_event (param `type`) for anything else."""
    try:
        data = json.loads(text)
    except ValueError:
        raise LalmError("The message is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise LalmError("An event is a JSON object with a string `type`.", code="invalid_event", param="type")
    return data


def parse_client_event(data: dict[str, Any]) -> ClientEvent:
    """A client message (`read_message`) as its event model. Raises a LalmError (400): unknown_event (a type
    lalm does not take, param `type`), invalid_value (a missing or mistyped field, param the field)."""
    if data["type"] not in CLIENT_EVENTS:
        raise LalmError(f"Unknown or unsupported event type {data['type']!r} in a transcription session; lalm "
                        f"accepts {', '.join(CLIENT_EVENTS)}.", code="unknown_event", param="type")
    try:
        return _CLIENT_EVENT.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"][1:])  # after the union's tag
        raise LalmError(_NEEDS.get(param, f"{param}: {first['msg']}"), code="invalid_value", param=param) from None


# --- server events ---
class _Stamped(BaseModel):
    """A server event: its `type` and a fresh `event_id` are filled in (and so set, and sent)."""

    @model_validator(mode="before")
    @classmethod
    def _stamp(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {"type": get_args(cls.model_fields["type"].annotation)[0], "event_id": new_id("event"), **data}
        return data


class SessionCreated(_Stamped, SessionCreatedEvent):
    session: SessionObject


class SessionUpdated(_Stamped, SessionUpdatedEvent):
    session: SessionObject


class SpeechStarted(_Stamped, InputAudioBufferSpeechStartedEvent):
    pass


class SpeechStopped(_Stamped, InputAudioBufferSpeechStoppedEvent):
    pass


class Committed(_Stamped, InputAudioBufferCommittedEvent):
    pass


class Cleared(_Stamped, InputAudioBufferClearedEvent):
    pass


class ItemAdded(_Stamped, ConversationItemAdded):
    pass


class ItemDone(_Stamped, ConversationItemDone):
    pass


class TranscriptionDelta(_Stamped, ConversationItemInputAudioTranscriptionDeltaEvent):
    pass


class TranscriptionCompleted(_Stamped, ConversationItemInputAudioTranscriptionCompletedEvent):
    pass


class TranscriptionFailed(_Stamped, ConversationItemInputAudioTranscriptionFailedEvent):
    pass


class ErrorEvent(_Stamped, RealtimeErrorEvent):
    pass


ServerEvent = (SessionCreated | SessionUpdated | SpeechStarted | SpeechStopped | Committed | Cleared | ItemAdded
               | ItemDone | TranscriptionDelta | TranscriptionCompleted | TranscriptionFailed | ErrorEvent)


def error_event(err: LalmError, event_id: str | None = None) -> ErrorEvent:
    """The `error` event for `err`, the one place a WebSocket's errors become events; `event_id` inside `error`
    is the client event that caused it."""
    return ErrorEvent(error=RealtimeError(type=error_type(err.status), code=err.code, message=err.message,
                                          param=err.param, event_id=event_id))


def user_audio_item(item_id: str, transcript: str | None) -> RealtimeConversationItemUserMessage:
    """A user message item holding one committed turn's audio (the audio itself is not echoed back, as
    OpenAI's server does not), with its transcript once there is one."""
    return RealtimeConversationItemUserMessage(id=item_id, object="realtime.item", type="message",
                                               status="completed", role="user",
                                               content=[Content(type="input_audio", transcript=transcript)])


def _logprobs(logprobs: list[dict] | None) -> dict:
    """The `logprobs` field only when the session includes them: left out, not null, otherwise."""
    return {} if logprobs is None else {"logprobs": [LogProbProperties.model_validate(t) for t in logprobs]}


def transcription_delta(item_id: str, delta: str, logprobs: list[dict] | None = None) -> TranscriptionDelta:
    """The delta event; `logprobs` (lalm.serve.events.logprobs_body) only when the session includes them."""
    return TranscriptionDelta(item_id=item_id, content_index=0, delta=delta, **_logprobs(logprobs))


def transcription_completed(item_id: str, transcript: str, usage: Usage,
                            logprobs: list[dict] | None = None) -> TranscriptionCompleted:
    tokens = UsageTranscriptTextUsageTokens(type="tokens", input_tokens=usage.prompt_tokens,
                                            output_tokens=usage.completion_tokens, total_tokens=usage.total_tokens)
    return TranscriptionCompleted(item_id=item_id, content_index=0, transcript=transcript, usage=tokens,
                                  **_logprobs(logprobs))


def transcription_failed(item_id: str, err: LalmError) -> TranscriptionFailed:
    return TranscriptionFailed(item_id=item_id, content_index=0,
                               error=FailedError(type=error_type(err.status), code=err.code, message=err.message,
                                                 param=err.param))
