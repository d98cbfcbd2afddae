"""The in-process Whisper engine: CTranslate2 through faster-whisper (`faster_whisper.WhisperModel`), the CPU
default for Whisper-family models (a ~300 MiB process where a vLLM server takes ~4 GiB).

It answers transcript and translation windows, the messages the transcription job (lalm.job) marks with a
`SpeechRequest`: each window (at most 30 s, already cut at pauses by lalm's VAD) is decoded once, at the
temperature asked, with Whisper's own prompt — `<|startofprev|>` + the request's prompt and on-screen text
(their last 223 tokens), the language and task tokens of a multilingual model (the language detected when not
given), nothing of the sort for an English-only (`.en`) model. lalm's pipeline keeps what Whisper's `transcribe`
loop would do around that: windows, the temperature fallback (lalm.longform.fallback), word alignment, segments and
cues.

Whisper's no-speech rule is faster-whisper's: a window whose no-speech probability is above 0.6 while its mean
token logprob is below -1.0 is silence, answered with lalm's no-speech answer (lalm.tasks.NO_SPEECH) that the
pipeline drops. Chat messages (no SpeechRequest) are refused: a Whisper model only transcribes and translates.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lalm.engines.base import Capabilities, Completion, Delta, Engine, EngineError, Message, SamplingParams, Usage
from lalm.errors import LalmError
from lalm.modeling.whisper import ct2_languages
from lalm.tasks import NO_SPEECH

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["WhisperEngine", "whisper_capabilities"]

# faster-whisper's defaults for its no-speech rule (openai-whisper's too)
_NO_SPEECH_THRESHOLD = 0.6
_LOGPROB_THRESHOLD = -1.0
# Whisper's 448-token text context holds the prompt (<= 223 tokens + the start sequence) and the answer
_MAX_NEW_TOKENS = 220


def whisper_capabilities(multilingual: bool, languages: Sequence[str]) -> Capabilities:
    """What a Whisper model can be asked: transcripts always, translation into English when multilingual."""
    return Capabilities(family="whisper", chat=False, tasks=("transcribe", "translate") if multilingual
                        else ("transcribe",), translation=multilingual, languages=tuple(languages), logprobs=False)


class WhisperEngine(Engine):
    """A faster-whisper/CTranslate2 Whisper folder (`model.bin`, `config.json`, `tokenizer.json`, ...) run
    in-process. `beam_size` 1 is greedy (at temperature 0); above 1, beam search. `cpu_threads` 0 lets
    CTranslate2 choose. Decoding runs in one worker thread at a time (the model uses every core it is given)."""

    def __init__(self, folder: str | Path, *, model_name: str | None = None, device: str = "auto",
                 compute_type: str = "float32", cpu_threads: int = 0, beam_size: int = 1) -> None:
        self.folder = Path(folder)
        self.model_name = model_name or str(folder)
        self.device, self.compute_type, self.cpu_threads, self.beam_size = device, compute_type, cpu_threads, beam_size
        self._model = None
        self._lock = threading.Lock()
        if not (self.folder / "model.bin").is_file():
            raise LalmError(f"no CTranslate2 Whisper model at {self.folder} (model.bin is missing); pass a "
                            "faster-whisper model folder, or a built-in name such as whisper-base.",
                            status=400, code="model_not_found", param="model")
        self.capabilities = whisper_capabilities(*ct2_languages(self.folder))

    async def start(self) -> None:
        if self._model is None:
            self._model = await asyncio.to_thread(self._load)

    def _load(self) -> WhisperModel:
        from faster_whisper import WhisperModel

        return WhisperModel(str(self.folder), device=self.device, compute_type=self.compute_type,
                            cpu_threads=self.cpu_threads, local_files_only=True)

    async def close(self) -> None:
        self._model = None

    async def ready(self) -> bool:
        return self._model is not None

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """Decode the last message's audio window as its SpeechRequest asks (see the module docstring)."""
        last = messages[-1] if messages else None
        if last is None or last.speech is None or len(last.audios) != 1:
            raise EngineError(f"{self.model_name} is a Whisper model: it transcribes and translates audio, and "
                              "cannot answer chat messages. Use /v1/audio/transcriptions, or a model that can "
                              "chat (see /v1/models).", status=400, code="model_capability")
        if self._model is None:
            await self.start()
        return await asyncio.to_thread(self._decode, last.audios[0].samples, last, params)

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        """The window's text as one delta (CTranslate2 decodes a window whole)."""
        out = await self.generate(messages, params)
        yield Delta(out.text, out.finish_reason, out.usage, language=out.language, avg_logprob=out.avg_logprob)

    def _decode(self, samples: np.ndarray, message: Message, params: SamplingParams) -> Completion:
        speech = message.speech
        assert speech is not None and self._model is not None
        multilingual = self.capabilities.translation
        language = speech.language
        if language is not None and self.capabilities.languages and language not in self.capabilities.languages:
            raise EngineError(f"{self.model_name} does not know the language {language!r}; it transcribes "
                              f"{', '.join(self.capabilities.languages[:12])}"
                              f"{' ...' if len(self.capabilities.languages) > 12 else ''}.",
                              status=400, code="unsupported_language")
        limit = min(params.max_tokens or _MAX_NEW_TOKENS, _MAX_NEW_TOKENS)
        task = speech.task if multilingual else "transcribe"  # an English-only model's translation is its transcript
        with self._lock:
            segments, info = self._model.transcribe(
                samples.astype(np.float32, copy=False), language=language, task=task,
                beam_size=self.beam_size if params.temperature == 0 else 1, best_of=1,
                temperature=params.temperature, initial_prompt=speech.previous_text,
                condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
                compression_ratio_threshold=None, log_prob_threshold=_LOGPROB_THRESHOLD,
                no_speech_threshold=_NO_SPEECH_THRESHOLD, max_new_tokens=limit,
                suppress_blank=True)
            segments = list(segments)
        tokens = sum(len(s.tokens) for s in segments)
        text = "".join(s.text for s in segments).strip()
        mean = (sum(s.avg_logprob * len(s.tokens) for s in segments) / tokens) if tokens else 0.0
        usage = Usage(prompt_tokens=0, completion_tokens=tokens)
        if not text:
            return Completion(NO_SPEECH, "stop", usage, language=info.language)
        length = tokens >= limit
        return Completion(text, "length" if length else "stop", usage, avg_logprob=mean, language=info.language)
