"""The engine interface: the seam between the gateway (or CLI, or trainer) and whatever runs the model.

Every engine — vLLM behind its OpenAI server (`vllm.py`), transformers in-process (`hf.py`), CTranslate2's
Whisper in-process (`ctranslate2.py`), a Whisper model composed with a text LLM (`composed.py`) — takes a list
of chat messages whose parts are text or decoded audio (16 kHz mono float32), plus sampling parameters, and
returns text with token usage, whole or as a stream of deltas. A message built by the transcription job for a
transcript or translation window also carries a `SpeechRequest`: what a speech-recognition model (Whisper) reads
instead of the instruction text. `Engine.capabilities` says what the model can be asked;
`Engine.context_length` and `Engine.count_tokens` let a caller fit a text prompt in the model's context (the
reduction of a long recording's window answers, lalm.longform.reduce).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from lalm.errors import LalmError

if TYPE_CHECKING:
    from lalm.screen_text import ScreenLine

__all__ = [
    "AudioPart",
    "Capabilities",
    "Completion",
    "Delta",
    "Engine",
    "EngineError",
    "Message",
    "SamplingParams",
    "SpeechRequest",
    "Usage",
]

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class AudioPart:
    """One audio attachment: `samples` is 1-D float32 at 16 kHz, mono (see lalm.audio). `wav`, when given,
    is the same samples as a 16-bit PCM WAV (lalm.audio.Audio.wav: the upload itself), which the vLLM engine
    sends as it is instead of encoding the samples again. `screen` is the text on screen while this part
    plays (times in seconds from the part's start): a composed model's Whisper hears the part with it as a
    transcription does (windows cut at slide changes, each prompted with its slide's spellings); a model that reads
    the message's text itself (an LALM) ignores it."""

    samples: np.ndarray
    wav: bytes | None = field(default=None, repr=False, compare=False)
    screen: tuple[ScreenLine, ...] = ()


@dataclass(frozen=True)
class SpeechRequest:
    """What a transcript or translation window asks of a speech-recognition model, in Whisper's terms.

    `task`: transcribe (in the language spoken) or translate (into English, as Whisper does). `language`: the
    spoken language as an ISO 639-1 code, or None to detect it. `prompt`: the caller's context text (names, terms,
    earlier text); `screen`: the spellings of the on-screen text shown during the window
    (lalm.screen_text.screen_spellings). Both go to Whisper as its previous-text prompt (`<|startofprev|>`,
    `previous_text`); they are kept apart because the temperature fallback drops the screen text of a window
    that says none of it (lalm.longform.fallback). Chat LALMs ignore them: they read the instruction text built
    from the same fields (lalm.tasks)."""

    task: Literal["transcribe", "translate"]
    language: str | None = None
    prompt: str | None = None
    screen: str | None = None

    @property
    def previous_text(self) -> str | None:
        """Whisper's previous-text prompt: `prompt` then `screen`, None when neither is given."""
        return " ".join(t for t in (self.prompt, self.screen) if t and t.strip()) or None


@dataclass(frozen=True)
class Message:
    """A chat message. `content` is plain text or an ordered list of text and audio parts. `speech`, set by
    the transcription job on a transcript or translation window, is the same request in a form a Whisper model
    reads (see SpeechRequest)."""

    role: Role
    content: str | Sequence[str | AudioPart]
    speech: SpeechRequest | None = None

    @property
    def audios(self) -> list[AudioPart]:
        return [] if isinstance(self.content, str) else [p for p in self.content if isinstance(p, AudioPart)]


@dataclass(frozen=True)
class SamplingParams:
    """OpenAI sampling fields. temperature 0 means greedy; `max_tokens` None means up to the context
    length (bounded by the engine's default)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False  # ask for each generated token's logprob (Completion.logprobs)
    top_logprobs: int = 0  # with logprobs: also the k most likely tokens at each step (0-20)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        """The usage of two engine calls together."""
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class Completion:
    """A whole answer. `logprobs` holds (token text, logprob) per generated token when asked for
    (`SamplingParams.logprobs`) and the engine gives them; empty otherwise. With `SamplingParams.top_logprobs`
    k, `top_logprobs` holds, for each entry of `logprobs`, the k most likely (token text, logprob) at that step,
    most likely first (special tokens by their literal text)."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    token_ids: tuple[int, ...] = field(default=(), repr=False)
    logprobs: tuple[tuple[str, float], ...] = field(default=(), repr=False)
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] = field(default=(), repr=False)
    avg_logprob: float | None = None  # a Whisper engine's mean token logprob, where it gives no per-token list
    language: str | None = None  # the spoken language a Whisper engine detected or was told (ISO 639-1)


@dataclass(frozen=True)
class Delta:
    """A piece of streamed text. The last delta of a stream carries `finish_reason` and `usage`. With
    `SamplingParams.logprobs`, `logprobs` holds (token text, logprob) of the tokens sampled since the previous
    delta (a token can come before the text it completes is shown); `top_logprobs` as in `Completion`."""

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    logprobs: tuple[tuple[str, float], ...] = field(default=(), repr=False)
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] = field(default=(), repr=False)
    language: str | None = None  # on the last delta: the spoken language a Whisper engine detected or was told
    avg_logprob: float | None = None  # on the last delta: a Whisper engine's mean token logprob (Completion's)


@dataclass(frozen=True)
class Capabilities:
    """What a served model can be asked (reported by /v1/models, checked before a request is run).

    `family`: lalm (an audio-language model: hears and answers in one), whisper (speech recognition only) or
    composed (a Whisper model hears, a text LLM answers). `chat`: chat completions with audio. `tasks`: the task
    presets it can run (lalm.tasks). `translation`: /v1/audio/translations. `languages`: the spoken languages
    it transcribes (ISO 639-1 codes), None when not fixed. `window_seconds`: the longest audio one model call
    takes. `experimental` / `random_weights`: labels a client should show. `logprobs`: reports each generated
    token's logprob (a Whisper engine gives a window's mean only)."""

    family: Literal["lalm", "whisper", "composed"] = "lalm"
    chat: bool = True
    tasks: tuple[str, ...] = ("transcribe", "translate", "summarize", "emotion", "qa", "describe")
    translation: bool = True
    languages: tuple[str, ...] | None = None
    window_seconds: float = 30.0
    experimental: bool = False
    random_weights: bool = False
    logprobs: bool = True


class EngineError(LalmError, RuntimeError):
    """The engine could not serve a request. `status` is the HTTP status the gateway should answer:
    4xx when the request itself cannot be served (e.g. too long for the context), 503 when the engine is
    down or restarting, 502 for another upstream failure."""

    def __init__(self, message: str, status: int = 502, code: str = "engine_error") -> None:
        super().__init__(message, status=status, code=code)


class Engine(abc.ABC):
    """Runs one model. Implementations must be safe to call from many concurrent coroutines."""

    model_name: str
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """The whole completion for `messages`."""

    @abc.abstractmethod
    def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        """The completion as it is produced; the last delta has finish_reason and usage."""

    async def context_length(self) -> int | None:
        """The most tokens one call may hold, prompt and answer together (the model's context, as vLLM's
        `max_model_len`), or None when the engine cannot tell: long-audio tasks then reduce their windows'
        answers in one call, unbudgeted (lalm.longform.reduce)."""
        return None

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        """How many prompt tokens text-only `messages` take, chat template included: what a call's
        `Usage.prompt_tokens` would be. This default over-estimates without a tokenizer (UTF-8 bytes of the
        text, since a byte-level token covers at least one byte, plus 8 per message for the template);
        engines that have the tokenizer count exactly."""
        texts = (p for m in messages for p in ([m.content] if isinstance(m.content, str) else m.content)
                 if isinstance(p, str))
        return sum(len(t.encode()) for t in texts) + 8 * len(messages)

    async def ready(self) -> bool:
        """Whether the engine can take requests now (health checks)."""
        return True

    async def start(self) -> None:  # noqa: B027 - optional hook, nothing to acquire by default
        """Acquire resources (load weights, start processes). Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources. Idempotent."""
