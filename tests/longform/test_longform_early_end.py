"""A transcript window the model ended early (lalm.longform.early_end): the rule as units, and the window runner
driving it through a scripted engine at the Engine seam that answers the whole window with its first sentence
only, as Whisper base did on a long window of the bench's long file, and each half in full."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from lalm.engines.base import Completion, Engine, EngineError, SamplingParams, Usage
from lalm.longform.early_end import longest_pause, too_short
from lalm.longform.fallback import Attempt, Fallback, compression_ratio
from lalm.longform.run import TaskOptions, run_task
from lalm.synth import espeak
from lalm.tasks import NO_SPEECH, get_task

FIRST = "The meeting starts at nine thirty on Monday, and the report is due before the end of the week."
SECOND = "Please send the budget to the whole team, and do not forget to water the plants in the office."
SR = 16000


def _attempt(text: str, tokens: int) -> Attempt:
    return Attempt(0.0, Completion(text, "stop", Usage(completion_tokens=tokens)), compression_ratio(text), -0.2)


def test_too_short_means_few_tokens_for_much_speech():
    assert too_short(_attempt(FIRST, 14), 18.0)  # 0.8 tokens a second
    assert not too_short(_attempt(FIRST, 40), 18.0)
    assert not too_short(_attempt(FIRST, 5), 6.0)  # too little speech to tell
    assert not too_short(_attempt(NO_SPEECH, 3), 18.0)
    assert not too_short(_attempt(FIRST, 0), 18.0)  # the engine counted no tokens


def test_the_cut_is_in_the_middle_of_the_longest_pause_away_from_the_ends():
    assert longest_pause([(0.5, 4.0), (4.4, 8.0), (10.0, 14.0)], 15.0) == pytest.approx(9.0)
    assert longest_pause([(0.5, 14.0)], 15.0) is None
    assert longest_pause([(0.0, 0.2), (0.9, 14.0)], 15.0) is None  # it would leave less than a second


@pytest.fixture(scope="module")
def two_sentences() -> tuple[np.ndarray, int]:
    """Each sentence said twice (over 10 s of speech), a 1.5 s pause between them: the samples and the pause's
    (start, end) sample indices."""
    a = np.concatenate([espeak(FIRST), np.zeros(SR // 4, np.float32), espeak(FIRST)])
    b = np.concatenate([espeak(SECOND), np.zeros(SR // 4, np.float32), espeak(SECOND)])
    pad = np.zeros(SR // 2, np.float32)
    samples = np.concatenate([pad, a, np.zeros(3 * SR // 2, np.float32), b, pad])
    assert len(samples) < 30 * SR  # one window
    return samples, (len(pad) + len(a), len(pad) + len(a) + 3 * SR // 2)


class EndsEarly(Engine):
    """Answers a window holding speech on both sides of the `pause` (start, end samples) with FIRST only (ended
    early), one before it with FIRST twice and one after it with SECOND twice; a word is a token."""

    model_name = "ends-early"

    def __init__(self, samples: np.ndarray, pause: tuple[int, int]) -> None:
        self.samples, self.pause, self.heard = samples, pause, []

    def _locate(self, part: np.ndarray) -> tuple[int, int]:
        """Where `part` lies in the recording: found by 64 samples of sound from its middle."""
        at = len(part) // 2 + int(np.argmax(np.abs(part[len(part) // 2:]) > 0.05))
        views = np.lib.stride_tricks.sliding_window_view(self.samples, 64)
        for start in np.flatnonzero((views == part[at:at + 64]).all(axis=1)) - at:  # a sentence is said twice
            if start >= 0 and np.array_equal(self.samples[start:start + len(part)], part):
                return int(start), int(start) + len(part)
        raise AssertionError("not a piece of the recording")

    async def generate(self, messages, params: SamplingParams) -> Completion:
        start, end = self._locate(messages[-1].audios[0].samples)
        self.heard.append((start, end))
        text = f"{FIRST} {FIRST}" if end <= self.pause[1] else f"{SECOND} {SECOND}" if start >= self.pause[0] else FIRST
        return Completion(text, "stop", Usage(10, len(text.split())), avg_logprob=-0.2)

    async def stream(self, messages, params: SamplingParams):
        raise AssertionError("not streamed")


def test_a_window_ended_early_is_decoded_again_as_two_cut_in_its_pause(two_sentences):
    samples, pause = two_sentences
    engine = EndsEarly(samples, pause)
    result = asyncio.run(run_task(engine, samples, get_task("transcribe"), SamplingParams(temperature=0.0),
                                  TaskOptions(fallback=Fallback())))
    assert result.text == f"{FIRST} {FIRST} {SECOND} {SECOND}"
    (whole, *halves) = engine.heard
    assert len(halves) == 2 and halves[0][1] == halves[1][0]
    assert pause[0] < halves[0][1] < pause[1]  # cut inside the pause
    assert [(s.start, s.end) for s in result.segments] == [(whole[0] / SR, whole[1] / SR)]  # still one segment
    assert result.usage.prompt_tokens == 30  # every decode counts


def test_without_the_fallback_a_window_is_decoded_once(two_sentences):
    samples, pause = two_sentences
    engine = EndsEarly(samples, pause)
    result = asyncio.run(run_task(engine, samples, get_task("transcribe"), SamplingParams(temperature=0.0),
                                  TaskOptions()))
    assert result.text == FIRST and len(engine.heard) == 1


def test_parts_that_say_no_more_do_not_replace_the_window(two_sentences):
    """A slow reader's window decodes to the same words in two parts: the whole window's transcript stays."""
    samples, pause = two_sentences

    class SlowReader(EndsEarly):
        async def generate(self, messages, params: SamplingParams) -> Completion:
            out = await super().generate(messages, params)
            if out.text != FIRST:
                half = FIRST.split(", ")[0 if out.text.startswith(FIRST) else 1]
                out = Completion(half.lower(), "stop", Usage(10, len(half.split())), avg_logprob=-0.2)
            return out

    engine = SlowReader(samples, pause)
    result = asyncio.run(run_task(engine, samples, get_task("transcribe"), SamplingParams(temperature=0.0),
                                  TaskOptions(fallback=Fallback())))
    assert len(engine.heard) == 3 and result.text == FIRST


@pytest.mark.parametrize("half", ["error", "loop"])
def test_a_part_that_fails_leaves_the_window_as_it_was(two_sentences, half):
    """An engine error on a part, or a part no try decodes well (a loop kept as the least bad), keeps the whole
    window's transcript."""
    samples, pause = two_sentences

    class BadSecondHalf(EndsEarly):
        async def generate(self, messages, params: SamplingParams) -> Completion:
            out = await super().generate(messages, params)
            if out.text.startswith(SECOND):
                if half == "error":
                    raise EngineError("The upstream is restarting.", 503, "upstream_unavailable")
                loop = "the plants in the office " * 20
                return Completion(loop, "stop", Usage(10, len(loop.split())), avg_logprob=-0.1)
            return out

    result = asyncio.run(run_task(BadSecondHalf(samples, pause), samples, get_task("transcribe"),
                                  SamplingParams(temperature=0.0), TaskOptions(fallback=Fallback())))
    assert result.text == FIRST
