"""A composed model: a Whisper model hears, a text LLM answers (what speaches does for chat with audio).

- Transcript and translation windows (messages with a SpeechRequest) go to the Whisper engine alone, so
  /v1/audio/transcriptions and the `transcribe` task return Whisper's own words, never rewritten by the LLM.
- Anything else (chat with audio, summarize, qa) has each audio part transcribed first — through the one
  transcription job (lalm.job: VAD windows, temperature fallback), in the spoken language — and replaced by
  its transcript, marked as one (`lalm/prompts/transcript.txt`); the LLM then answers the user's request, asked
  to answer from what was said (`lalm/prompts/composed_answer.txt`).
- What it cannot hear — tone, emotion, non-speech sounds — it does not guess: its capabilities leave out the
  `emotion` and `describe` presets, which the gateway refuses with a 400 naming the capability.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from lalm.config import Settings
from lalm.engines.base import AudioPart, Capabilities, Completion, Delta, Engine, Message, SamplingParams
from lalm.tasks import NO_SPEECH, composed_request, is_no_speech, transcript_note

__all__ = ["COMPOSED_TASKS", "ComposedEngine"]

# the presets a transcript answers; emotion and describe need to hear more than words
COMPOSED_TASKS = ("transcribe", "translate", "summarize", "qa")


class ComposedEngine(Engine):
    """`asr` (a Whisper engine) hears and `llm` (a text engine) answers, served as `model_name`. `settings`
    give the transcription job its windows and fallback. Starting and closing starts and closes both."""

    def __init__(self, asr: Engine, llm: Engine, *, model_name: str, settings: Settings) -> None:
        self.asr, self.llm, self.model_name, self.settings = asr, llm, model_name, settings
        heard = asr.capabilities
        tasks = tuple(t for t in COMPOSED_TASKS if t != "translate" or heard.translation)
        self.capabilities = Capabilities(family="composed", chat=True, tasks=tasks, translation=heard.translation,
                                         languages=heard.languages, window_seconds=heard.window_seconds,
                                         logprobs=heard.logprobs and llm.capabilities.logprobs)

    async def start(self) -> None:
        await asyncio.gather(self.asr.start(), self.llm.start())

    async def close(self) -> None:
        await asyncio.gather(self.asr.close(), self.llm.close())

    async def ready(self) -> bool:
        return await self.asr.ready() and await self.llm.ready()

    async def context_length(self) -> int | None:
        """The text LLM's: it answers and reduces the answers of long recordings (lalm.longform.reduce)."""
        return await self.llm.context_length()

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        """Text-only `messages` as the text LLM counts them."""
        return await self.llm.count_tokens(messages)

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        if messages and messages[-1].speech is not None:
            return await self.asr.generate(messages[-1:], params)
        return await self.llm.generate(await self._as_text(messages), params)

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        if messages and messages[-1].speech is not None:
            async for d in self.asr.stream(messages[-1:], params):
                yield d
            return
        async for d in self.llm.stream(await self._as_text(messages), params):
            yield d

    async def transcript(self, part: AudioPart) -> str:
        """What the Whisper model hears in `part` (any length; with the text on screen during it, as a
        transcription hears a video), or the no-speech answer."""
        from lalm.job import JobOptions, run_job

        result = await run_job(self.asr, part.samples, JobOptions(task="transcribe", screen=part.screen or None),
                               self.settings)
        text = result.text.strip()
        return text if text and not is_no_speech(text) else NO_SPEECH

    async def _as_text(self, messages: Sequence[Message]) -> list[Message]:
        """`messages` with every audio part replaced by its transcript note; in a message that had audio, the text
        parts become the request to answer from what was said."""
        out: list[Message] = []
        for m in messages:
            if isinstance(m.content, str) or not m.audios:
                out.append(m if isinstance(m.content, str) else Message(m.role, "\n".join(m.content)))
                continue
            notes = [transcript_note(await self.transcript(p)) for p in m.audios]
            request = "\n".join(p for p in m.content if isinstance(p, str)).strip()
            out.append(Message(m.role, "\n".join([*notes, composed_request(request) if request else ""]).strip()))
        return out
