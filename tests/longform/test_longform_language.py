"""The spoken language of a recording, as the long-form runner (lalm.longform.run) handles it for a
speech-recognition model: detected on the first window with speech, then told to every later window (Whisper's own
transcribe loop does the same), and each window's mean logprob carried to its segments.

Driven at the Engine seam by a scripted Whisper-like engine, which records what each window was told; that
whisper-base itself then transcribes a long recording in one language is checked on the real model in
tests/engines/test_engines_ctranslate2.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from lalm.audio import SAMPLE_RATE
from lalm.engines.base import Capabilities, Completion, Delta, Engine, Message, SamplingParams, SpeechRequest, Usage
from lalm.longform.run import TaskOptions, run_task
from lalm.synth import espeak
from lalm.tasks import NO_SPEECH, get_task


class Detecting(Engine):
    """Reports `language` for each window it is not told one for; answers `NO_SPEECH` for the first
    `silent_windows` windows; records the language each window was told and how many ran at once."""

    model_name = "detecting"

    def __init__(self, family: str = "whisper", language: str = "fr", silent_windows: int = 0) -> None:
        self.capabilities = Capabilities(family=family, chat=False, tasks=("transcribe", "translate"),
                                         translation=True)
        self.language, self.silent_windows = language, silent_windows
        self.told: list[str | None] = []
        self.running = self.most_running = 0

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        speech = messages[-1].speech
        assert speech is not None
        self.told.append(speech.language)
        n = len(self.told)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.running -= 1
        text = NO_SPEECH if n <= self.silent_windows else f"bonjour {n}."
        return Completion(text, "stop", Usage(0, 3), avg_logprob=-0.25 * n,
                          language=speech.language or self.language)

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        out = await self.generate(messages, params)
        yield Delta(out.text, out.finish_reason, out.usage, language=out.language, avg_logprob=out.avg_logprob)


_SENTENCE: list[np.ndarray] = []


def _recording(seconds: float) -> np.ndarray:
    """One espeak-ng sentence again and again with pauses: several VAD windows of speech."""
    if not _SENTENCE:
        _SENTENCE.append(espeak("The meeting starts at nine thirty on Monday, and the report is due on Friday."))
    unit = np.concatenate([_SENTENCE[0], np.zeros(int(0.6 * SAMPLE_RATE), np.float32)])
    return np.resize(unit, int(seconds * SAMPLE_RATE))


def _run(engine: Engine, language: str | None, seconds: float = 75.0, concurrency: int = 4):
    options = TaskOptions(speech=SpeechRequest("transcribe", language, None), concurrency=concurrency)
    return asyncio.run(run_task(engine, _recording(seconds), get_task("transcribe"), SamplingParams(), options))


@pytest.mark.parametrize("family", ["whisper", "composed"])
def test_the_first_window_detects_and_the_later_ones_are_told(family):
    engine = Detecting(family)
    result = _run(engine, None)
    assert len(engine.told) >= 3
    assert engine.told[0] is None and set(engine.told[1:]) == {"fr"}
    assert result.language == "fr"


def test_the_windows_after_the_first_still_run_together():
    engine = Detecting()
    _run(engine, None, seconds=150.0, concurrency=4)
    assert len(engine.told) >= 5 and engine.most_running > 1


def test_a_language_asked_for_is_told_to_every_window():
    engine = Detecting()
    _run(engine, "de")
    assert set(engine.told) == {"de"}


def test_a_window_without_speech_does_not_decide_the_language():
    engine = Detecting(silent_windows=1)
    _run(engine, None)
    assert engine.told[:2] == [None, None] and set(engine.told[2:]) == {"fr"}


def test_an_audio_language_model_is_not_held_to_the_first_window():
    engine = Detecting(family="lalm")
    _run(engine, None, seconds=150.0)
    assert set(engine.told) == {None}


def test_each_segment_carries_its_windows_mean_logprob():
    engine = Detecting()
    result = _run(engine, None)
    assert [s.avg_logprob for s in result.segments] == [-0.25 * (i + 1) for i in range(len(result.segments))]
