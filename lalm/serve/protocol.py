"""Request and response bodies of the gateway, as pydantic models in OpenAI's field order (a transcript's
bodies are lalm.schema's).

Fields that OpenAI defines but lalm cannot honour are declared so that a non-default value is refused
with a 400 naming the field, instead of being ignored. lalm's own additions come last in each model,
under "lalm extras", and say so in their descriptions (they show in /docs).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lalm.formats import ResponseFormat
from lalm.schema import TokenLogprob
from lalm.tasks import TASKS

__all__ = [
    "AudioURL",
    "AudioURLPart",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChatRequestMessage",
    "ChatTokenLogprob",
    "ChoiceLogprobs",
    "ContentPart",
    "ErrorBody",
    "ErrorResponse",
    "InputAudio",
    "InputAudioPart",
    "ModelCapabilities",
    "ModelCard",
    "ModelList",
    "ResponseFormat",
    "StreamOptions",
    "TextPart",
    "TranscriptionRequest",
    "TranslationRequest",
    "Usage",
]

# the task names, straight from lalm.tasks, so /docs lists exactly the presets that exist
TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- errors ---
class ErrorBody(_Model):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Model):
    error: ErrorBody


# --- chat completions: request ---
class TextPart(_Model):
    type: Literal["text"]
    text: str


class InputAudio(_Model):
    data: str = Field(description="Base64 audio (a bare string, or a data: URL).")
    format: str = Field(
        "wav", description="The container, e.g. wav or mp3. lalm reads anything its decoder does (flac, ogg, "
        "opus, m4a, aac, webm, mp4, mkv, mov too) and detects the container from the bytes; a value that names "
        "no audio format is refused (400).",
    )


class InputAudioPart(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


class AudioURL(_Model):
    url: str = Field(
        description="A data: URL (data:audio/wav;base64,...), or an http(s) URL when the server allows remote "
        "audio (LALM_ALLOW_REMOTE_AUDIO_URLS)."
    )


class AudioURLPart(_Model):
    type: Literal["audio_url"]
    audio_url: AudioURL


ContentPart = Annotated[TextPart | InputAudioPart | AudioURLPart, Field(discriminator="type")]


class ChatRequestMessage(_Model):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _audio_only_from_users(self) -> ChatRequestMessage:
        if self.role != "user" and isinstance(self.content, list) \
                and any(not isinstance(p, TextPart) for p in self.content):
            raise ValueError(f"only user messages may carry audio, not {self.role} messages")
        return self


class StreamOptions(_Model):
    include_usage: bool = False


class ChatCompletionRequest(_Model):
    """OpenAI's chat completion request, with lalm's extras at the end."""

    messages: list[ChatRequestMessage] = Field(min_length=1)
    model: str
    frequency_penalty: float = Field(0.0, description="Not supported: must be 0.")
    logit_bias: dict[str, float] | None = Field(None, description="Not supported: must be absent.")
    logprobs: bool = Field(False, description="Return the log probability of each token of the answer (plain chat "
                           "on audio up to 30 s: an answer made from several windows has no single token sequence).")
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated by OpenAI; max_completion_tokens wins.")
    n: int = Field(1, ge=1, le=16, description="Choices to generate; with a seed, choice i uses seed + i.")
    presence_penalty: float = Field(0.0, description="Not supported: must be 0.")
    response_format: dict[str, Any] | None = Field(None, description="Only {\"type\": \"text\"} is supported.")
    seed: int | None = None
    stop: str | list[str] | None = Field(None, description="Up to 4 strings.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    tool_choice: Any = Field(None, description="Not supported: tools are refused.")
    tools: list[Any] | None = Field(None, description="Not supported: must be absent or empty.")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="With logprobs: also the most likely tokens "
                                     "at each position, this many (0-20).")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    user: str | None = None
    # --- lalm extras ---
    task: TaskName | None = Field(
        None,
        description="lalm extra. Run a task preset on the audio of the last user message instead of plain chat: "
        "transcribe, translate, summarize, emotion, qa (the user's text is the question), describe. "
        "Audio longer than 30 s is split into windows (see the API description).",
    )
    language: str | None = Field(
        None, description="lalm extra. For task=translate: the target language (default English)."
    )
    context: str | None = Field(
        None, description="lalm extra. For task=transcribe/translate: names, terms or slide text that help "
        "recognition (like `prompt` of /v1/audio/transcriptions).",
    )
    lalm_screen_text: bool | None = Field(
        None, description="lalm extra. Read the on-screen text of video parts (input_audio, data: URLs, fetched "
        "http(s) URLs) of the last user message and give each audio window the text shown around it as context; "
        "default: the server's `screen_text` setting.",
    )

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> ChatCompletionRequest:
        refused = {
            "frequency_penalty": self.frequency_penalty != 0,
            "presence_penalty": self.presence_penalty != 0,
            "logit_bias": bool(self.logit_bias),
            "tools": bool(self.tools),
            "tool_choice": self.tool_choice not in (None, "none"),
            "response_format": self.response_format not in (None, {"type": "text"}),
        }
        for name, bad in refused.items():
            if bad:
                raise ValueError(f"{name} is not supported by lalm")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop takes at most 4 strings")
        return self

    @property
    def stops(self) -> tuple[str, ...]:
        """The stop strings; an empty one stops nothing and is left out."""
        if self.stop is None:
            return ()
        return tuple(s for s in ((self.stop,) if isinstance(self.stop, str) else self.stop) if s)


# --- token logprobs (chat completions, transcriptions, realtime): TokenLogprob in lalm.schema ---
class ChatTokenLogprob(TokenLogprob):
    """A token of a chat answer with the `top_logprobs` most likely tokens at its step, most likely first."""

    top_logprobs: list[TokenLogprob]


class ChoiceLogprobs(_Model):
    content: list[ChatTokenLogprob] | None
    refusal: list[ChatTokenLogprob] | None = None


# --- chat completions: response ---
class Usage(_Model):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessage(_Model):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class ChatChoice(_Model):
    index: int
    message: ChatMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(_Model):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


# --- models ---
class ModelCapabilities(_Model):
    """What a served model can do (lalm.engines.base.Capabilities) and what it costs; requests it cannot serve
    are refused with a 400 `model_capability`."""

    family: Literal["lalm", "whisper", "composed"] = Field(
        description="lalm: an audio-language model (hears and answers in one); whisper: speech recognition only; "
        "composed: a Whisper model hears, a text LLM answers."
    )
    chat: bool = Field(description="Takes plain chat completions (without a task preset).")
    tasks: list[str] = Field(description="Task presets it runs (the chat completions `task` field).")
    translation: bool = Field(description="Translates speech into English (/v1/audio/translations).")
    languages: list[str] | None = Field(description="Spoken languages it transcribes (ISO 639-1); null: not fixed.")
    window_seconds: float = Field(description="Longest audio one model call takes; longer audio is windowed.")
    experimental: bool = Field(description="Its answers are not yet reliable.")
    random_weights: bool = Field(description="Its weights were never trained: its answers are noise (tests only).")
    logprobs: bool = Field(description="Reports token logprobs (chat `logprobs`, transcription include[]=logprobs).")
    engine: str = Field(description="What runs it: vllm, hf, ctranslate2 or composed.")
    weights_bytes: int | None = Field(
        description="Size of its weight files: about the memory its weights take (an engine may convert them, "
        "e.g. to bfloat16 on a GPU); null when not known. Names of one model share its engine and memory."
    )


class ModelCard(_Model):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lalm"
    lalm: ModelCapabilities | None = Field(None, description="lalm extra: what the model can do.")


class ModelList(_Model):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- audio transcriptions and translations: request (multipart form) ---
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")


class TranslationRequest(_Model):
    """The form of /v1/audio/translations, in OpenAI's field order (vLLM's pattern: one model read with
    `Annotated[TranslationRequest, Form()]`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    file: UploadFile = Field(description="Audio or video: wav, flac, mp3, ogg, opus, m4a, aac, webm, mp4, mkv, "
                                         "mov. Any length up to the server's limit.")
    model: str = Field(min_length=1, description="The served model name (GET /v1/models).")
    prompt: str | None = Field(None, description="Context that biases recognition: names, terms, slide or subtitle "
                                                 "text (it need not all be spoken).")
    response_format: ResponseFormat = Field("json", description="json, text, srt, vtt or verbose_json "
                                                                "(sentence-sized segments with start/end, words "
                                                                "with timestamp_granularities[]=word).")
    temperature: float = Field(0.0, ge=0.0, le=1.0)
    timestamp_granularities: list[Literal["segment", "word"]] | None = Field(
        None, alias="timestamp_granularities[]",
        description="With verbose_json: `word` adds `words` (times by forced alignment of the model's text), "
                    "`segment` is always given.")
    stream: bool = Field(False, description="SSE events transcript.text.delta / transcript.text.done "
                                            "(response_format json or text).")
    lalm_screen_text: bool | None = Field(
        None, description="lalm extra. For a video: read its on-screen text (slides, subtitles, captions) and give "
        "each audio window the text shown around it as context with `prompt`; verbose_json lists the lines. "
        "Default: the server's `screen_text` setting.")


class TranscriptionRequest(TranslationRequest):
    """The form of /v1/audio/transcriptions: a translation's fields and the spoken `language`."""

    language: str | None = Field(None, description="ISO-639-1 code of the speech, passed to the model as a hint.")
    include: list[Literal["logprobs"]] | None = Field(
        None, alias="include[]", description="`logprobs`: the logprob of each token of the transcript (`logprobs` in "
        "the json response, and in each stream event). Works with response_format json, as OpenAI's does.")

    @field_validator("language")
    @classmethod
    def _iso_code(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE.match(value):
            raise ValueError("must be an ISO-639-1 code such as en or fr")
        return value
