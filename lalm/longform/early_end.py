"""A transcript window the model ended early: decoded again as two windows, cut at its longest pause.

Whisper decoding a long window without timestamp tokens (as lalm's transcription windows are decoded) can stop
after the first sentence of several: its end-of-text token comes where the window's first utterance ends.
Measured on a 10-minute recording of read sentences (bench/whisper_serving.py, the long file): a 28.8 s window
of 18.4 s of speech came back as its first sentence, 12 words (0.65 per second of speech), while every other
window of 8 s of speech or more held at least 1.9 words per second of speech. openai-whisper's
timestamp mode does not stop there, because it seeks on from the last timestamp it wrote; that costs a second
decode of most windows (measured 1.1-2.4x the time), so lalm checks the length instead and pays only where the
check fails.

The check: a window with at least `MIN_SPEECH_SECONDS` of speech (lalm.vad) whose transcript has fewer than
`MIN_TOKENS_PER_SECOND` tokens per second of it (the engine's completion tokens; English speech gives 3-4, a
slow reader 2) is cut in the middle of its longest pause, and each part is decoded as a window of its own
(with the temperature fallback; not checked again, so a window costs at most three runs of the fallback). The
parts' joined transcript is kept when both parts passed the fallback's rules and it has at least `KEEP_RATIO`
times the tokens of the whole window's, else the first transcript stays: a slow speaker's window decodes to the
same words either way, and an engine error on a part keeps it too. An engine that reports no completion tokens
(vLLM's transcription endpoint, lalm.engines.vllm_whisper) is not checked.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

import numpy as np

from lalm.audio import SAMPLE_RATE
from lalm.engines.base import Completion, Engine, EngineError, Message, SamplingParams, Usage
from lalm.longform.fallback import (
    Attempt,
    Fallback,
    compression_ratio,
    generate_with_fallback,
    needs_fallback,
    says_nothing,
)
from lalm.longform.windows import Window
from lalm.tasks import NO_SPEECH

__all__ = ["KEEP_RATIO", "MIN_SPEECH_SECONDS", "MIN_TOKENS_PER_SECOND", "decode_window", "longest_pause",
           "too_short"]

MIN_SPEECH_SECONDS = 10.0
MIN_TOKENS_PER_SECOND = 1.5
KEEP_RATIO = 1.5
_MIN_PART_SECONDS = 1.0  # a cut leaves at least this much audio on either side


def _tokens(attempt: Attempt) -> int:
    return 0 if says_nothing(attempt.completion.text) else attempt.completion.usage.completion_tokens


def too_short(attempt: Attempt, speech_seconds: float) -> bool:
    """Whether `attempt`'s transcript is far too short for `speech_seconds` of speech (see the module's
    docstring); False when the engine reported no completion tokens."""
    tokens = attempt.completion.usage.completion_tokens
    return (tokens > 0 and speech_seconds >= MIN_SPEECH_SECONDS and not says_nothing(attempt.completion.text)
            and tokens < MIN_TOKENS_PER_SECOND * speech_seconds)


def _speech(samples: np.ndarray) -> list[tuple[float, float]]:
    from lalm.vad import speech_segments

    return speech_segments(samples)


def longest_pause(spans: Sequence[tuple[float, float]], seconds: float) -> float | None:
    """The middle (seconds) of the longest pause between the speech `spans` (seconds, in order) of audio
    `seconds` long, leaving at least `_MIN_PART_SECONDS` on either side; None when there is no such pause."""
    pauses = [(b[0] - a[1], (a[1] + b[0]) / 2) for a, b in itertools.pairwise(spans)]
    pauses = [(gap, at) for gap, at in pauses if gap > 0 and _MIN_PART_SECONDS <= at <= seconds - _MIN_PART_SECONDS]
    return max(pauses)[1] if pauses else None


def _joined(parts: Sequence[Attempt]) -> Attempt:
    """One attempt of the parts' transcripts in order (the no-speech answer of a part left out)."""
    said = [p for p in parts if not says_nothing(p.completion.text)]
    text = " ".join(p.completion.text.strip() for p in said) or NO_SPEECH
    tokens = sum(p.completion.usage.completion_tokens for p in said)
    mean = sum(p.avg_logprob * p.completion.usage.completion_tokens for p in said) / tokens if tokens else 0.0
    finish = "length" if any(p.completion.finish_reason == "length" for p in parts) else "stop"
    completion = Completion(text, finish, Usage(completion_tokens=tokens),
                            logprobs=tuple(lp for p in said for lp in p.completion.logprobs), avg_logprob=mean,
                            language=next((p.completion.language for p in parts if p.completion.language), None))
    return Attempt(max(p.temperature for p in parts), completion, compression_ratio(text), mean)


async def decode_window(engine: Engine, build: Callable[[Window, np.ndarray], list[Message]], window: Window,
                        samples: np.ndarray, params: SamplingParams, rule: Fallback) -> tuple[Attempt, Usage]:
    """Decode the transcript window `window` (its `samples`, 16 kHz float32; `build` makes its messages) with the
    temperature fallback, and again as two windows when the model ended it early (see the module's docstring).
    Returns the attempt kept (its completion's usage: the tokens of the text kept) and the usage of every try.
    Raises what generate_with_fallback raises on the first try of the whole window; an error on a part keeps the
    whole window's attempt."""
    kept, usage = await generate_with_fallback(engine, build(window, samples), params, rule)
    if not too_short(kept, len(samples) / SAMPLE_RATE):
        return kept, usage  # not even for the whole window's length, so not for its speech: the VAD is not run
    spans = await asyncio.to_thread(_speech, samples)  # the VAD is CPU work: off the event loop
    if not too_short(kept, sum(end - start for start, end in spans)):
        return kept, usage
    at = longest_pause(spans, len(samples) / SAMPLE_RATE)
    if at is None:
        return kept, usage
    cut = int(at * SAMPLE_RATE)
    parts = []
    for part, audio in ((Window(window.start, window.start + cut), samples[:cut]),
                        (Window(window.start + cut, window.end), samples[cut:])):
        try:
            attempt, spent = await generate_with_fallback(engine, build(part, audio), params, rule)
        except EngineError:
            return kept, usage  # the whole window's text stands
        parts.append(attempt)
        usage += spent
    joined = _joined(parts)
    # a part no try decoded well (a loop kept as the least bad) would count its repeats as words
    if any(needs_fallback(p, rule) for p in parts) or _tokens(joined) < KEEP_RATIO * _tokens(kept):
        return kept, usage
    return joined, usage
