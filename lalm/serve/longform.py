"""Audio of any length: split into windows of at most 30 s, run each, put the answers back together.

Qwen2-Audio-style encoders hear 30 s at most and vLLM silently keeps only the first 30 s, so lalm never
sends more. Windows are cut inside pauses (frame energy below an adaptive threshold), never inside a
word where a pause exists; windows do not overlap, so no word is heard twice; stretches of silence are not
sent at all, so the model is never asked to transcribe nothing. Only continuous sound longer than a window
(music, noise, speech without any pause) is cut at its quietest moment.

Transcription and translation join the windows' texts, each window becoming one timestamped segment.
Other tasks answer per window and then make one text-only call that reduces the answers (tasks.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from lalm.audio import SAMPLE_RATE
from lalm.engines.base import AudioPart, Engine, Message, SamplingParams, Usage
from lalm.tasks import NO_SPEECH, Task, is_no_speech

__all__ = ["Segment", "TaskResult", "Window", "plan_windows", "run_task", "stream_transcript"]

_FRAME = 320  # 20 ms
_HOP = 160  # 10 ms


@dataclass(frozen=True)
class Window:
    """Samples [start, end) of the recording."""

    start: int
    end: int

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class TaskResult:
    text: str
    segments: list[Segment]
    usage: Usage
    finish_reason: str


def _frame_db(samples: np.ndarray) -> np.ndarray:
    """Energy in dB of 20 ms frames every 10 ms."""
    if len(samples) < _FRAME:
        samples = np.pad(samples, (0, _FRAME - len(samples)))
    n = 1 + (len(samples) - _FRAME) // _HOP
    idx = np.arange(_FRAME)[None, :] + _HOP * np.arange(n)[:, None]
    return 10 * np.log10(np.mean(samples[idx].astype(np.float64) ** 2, axis=1) + 1e-10)


def _silent_frames(db: np.ndarray) -> np.ndarray:
    """Frames quieter than an adaptive threshold between the noise floor and the loud part."""
    floor, loud = np.percentile(db, 10), np.percentile(db, 95)
    return db < floor + max(6.0, 0.35 * (loud - floor))


def plan_windows(
    samples: np.ndarray, *, max_seconds: float = 30.0, min_pause: float = 0.3, pad: float = 0.15
) -> list[Window]:
    """Windows of at most `max_seconds` covering every non-silent part of `samples`, cut inside pauses of
    at least `min_pause` seconds (each side padded by `pad` seconds of the pause)."""
    total = len(samples)
    if total == 0:
        return []
    db = _frame_db(samples)
    silent = _silent_frames(db)
    if silent.all():
        return []
    # sound regions in frames: maximal runs of non-silent frames, bridging pauses shorter than min_pause
    regions: list[list[int]] = []
    min_gap = int(min_pause * SAMPLE_RATE / _HOP)
    for i in np.flatnonzero(~silent):
        if regions and i - regions[-1][1] <= min_gap:
            regions[-1][1] = i
        else:
            regions.append([int(i), int(i)])
    pad_n, limit = int(pad * SAMPLE_RATE), int(max_seconds * SAMPLE_RATE)
    spans = [(max(0, a * _HOP - pad_n), min(total, b * _HOP + _FRAME + pad_n)) for a, b in regions]
    pieces = [p for s, e in spans for p in _split_long(s, e, db, limit)]
    # pack consecutive pieces into windows up to the limit
    windows: list[Window] = []
    for s, e in pieces:
        if windows and e - windows[-1].start <= limit:
            windows[-1] = Window(windows[-1].start, e)
        else:
            windows.append(Window(max(s, windows[-1].end if windows else 0), e))
    return windows


def _split_long(start: int, end: int, db: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Cut a region with no usable pause into pieces of at most `limit` samples, each cut at the quietest
    frame of the last third of the allowed span."""
    pieces = []
    while end - start > limit:
        lo, hi = (start + 2 * limit // 3) // _HOP, (start + limit - _FRAME) // _HOP
        cut = (lo + int(np.argmin(db[lo:hi]))) * _HOP + _FRAME // 2 if hi > lo else start + limit
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def _window_messages(samples: np.ndarray, w: Window, instruction: str, history: Sequence[Message]) -> list[Message]:
    return [*history, Message("user", [AudioPart(samples[w.start : w.end]), instruction])]


async def run_task(
    engine: Engine,
    samples: np.ndarray,
    task: Task,
    params: SamplingParams,
    *,
    question: str | None = None,
    language: str | None = None,
    context: str | None = None,
    history: Sequence[Message] = (),
    max_seconds: float = 30.0,
) -> TaskResult:
    """Run `task` on audio of any length; windows run concurrently (engines batch them)."""
    instruction = task.instruction(question=question, language=language, context=context)
    windows = plan_windows(samples, max_seconds=max_seconds)
    if not windows:
        return TaskResult("", [], Usage(), "stop")
    outs = await asyncio.gather(
        *(engine.generate(_window_messages(samples, w, instruction, history), params) for w in windows)
    )
    usage = Usage(sum(o.usage.prompt_tokens for o in outs), sum(o.usage.completion_tokens for o in outs))
    finish = "length" if any(o.finish_reason == "length" for o in outs) else "stop"
    segments = [
        Segment(w.start_s, w.end_s, o.text.strip())
        for w, o in zip(windows, outs, strict=True)
        if o.text.strip() and not is_no_speech(o.text)
    ]
    if task.joins_windows or len(outs) == 1:
        text = " ".join(s.text for s in segments) if task.joins_windows else outs[0].text.strip()
        return TaskResult(text, segments, usage, finish)
    reduced = await engine.generate(
        [Message("user", task.reduction([s.text for s in segments], question=question))], params
    )
    usage = Usage(
        usage.prompt_tokens + reduced.usage.prompt_tokens, usage.completion_tokens + reduced.usage.completion_tokens
    )
    return TaskResult(reduced.text.strip(), segments, usage, reduced.finish_reason)


async def stream_transcript(
    engine: Engine,
    samples: np.ndarray,
    task: Task,
    params: SamplingParams,
    *,
    language: str | None = None,
    context: str | None = None,
    max_seconds: float = 30.0,
) -> AsyncIterator[tuple[Window, str]]:
    """Transcribe window after window, yielding (window, text delta) as tokens arrive. Text that may still
    turn out to be the no-speech answer is held back until it cannot be."""
    instruction = task.instruction(language=language, context=context)
    said_anything = False
    for w in plan_windows(samples, max_seconds=max_seconds):
        text, sent = "", 0
        async for delta in engine.stream(_window_messages(samples, w, instruction, ()), params):
            text += delta.text
            shown = text.lstrip()
            if is_no_speech(shown) or (delta.finish_reason is None and NO_SPEECH.startswith(shown)):
                continue
            if len(shown) > sent:
                piece = shown[sent:]
                if sent == 0 and said_anything:
                    piece = " " + piece
                sent = len(shown)
                said_anything = True
                yield w, piece
