"""Cutting audio of any length into windows of at most 30 s, online, in constant memory.

Qwen2-Audio-style encoders hear 30 s at most and vLLM silently keeps only the first 30 s, so lalm never
sends more. Windows are cut inside pauses (frame energy below an adaptive threshold), never inside a word
where a pause exists; windows do not overlap, so no word is heard twice; stretches of silence are not sent
at all, so the model is never asked to transcribe nothing. Only continuous sound longer than a window
(music, noise, speech without any pause) is cut at its quietest moment.

The cutter looks at most two windows ahead: it plans on the next 60 s, keeps the first window of that
plan, and plans again from where that window ends. The silence threshold adapts to those 60 s, so a
recording whose loudness drifts is still cut in its pauses, and an hour of audio needs no more memory
than a minute (`WindowStream` decodes and cuts in a worker thread while windows are being served).

`cuts` are times where a window should end if a pause allows (e.g. where the slide on screen changes, so a
window's on-screen context is one slide's): pieces of sound on either side of a cut go in separate windows.

With `speech_only` (transcription and translation) the pauses are where a voice-activity detector
(lalm.vad, Silero) hears no speech rather than where it is quiet, and pieces of speech are packed into one
window only across gaps of at most `_SPEECH_ONLY_MAX_GAP`: noise and music are not sent, since that is
where a model hallucinates text. Other tasks (describe, emotion) keep hearing all sound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from lalm.audio import SAMPLE_RATE
from lalm.engines.messages import WINDOW_SECONDS

__all__ = ["Window", "WindowCutter", "WindowStream", "plan_windows"]

_FRAME = 320  # 20 ms
_HOP = 160  # 10 ms
# Frames quieter than this (dBFS of mean power) are silence whatever the recording's own levels are.
_ABSOLUTE_SILENCE_DB = -60.0
# Pauses are told from sound by contrast: below this spread between quiet and loud frames there is none.
_MIN_CONTRAST_DB = 10.0
# With speech_only, pieces of speech further apart than this (seconds) go in separate windows, so a stretch
# of music or noise between them is not sent.
_SPEECH_ONLY_MAX_GAP = 2.0


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


def _frame_db(samples: np.ndarray) -> np.ndarray:
    """Energy in dB of 20 ms frames every 10 ms (a frame is two consecutive 10 ms hops)."""
    n_hops = max(2, -(-len(samples) // _HOP))
    padded = np.zeros(n_hops * _HOP, np.float32)
    padded[: len(samples)] = samples
    hop_power = np.square(padded, dtype=np.float64).reshape(n_hops, _HOP).sum(axis=1)
    frame_power = (hop_power[:-1] + hop_power[1:]) / _FRAME
    return 10 * np.log10(frame_power + 1e-10)


def _silent_frames(db: np.ndarray) -> np.ndarray:
    """Frames quieter than an adaptive threshold between the noise floor and the loud part. Without such
    contrast (a steady tone, music, noise: less than `_MIN_CONTRAST_DB` between them) nothing is quiet
    relative to the rest, so only absolute silence counts: such sound is sent to the model, not dropped."""
    floor, loud = np.percentile(db, 10), np.percentile(db, 99)
    silent = db < _ABSOLUTE_SILENCE_DB
    if loud - floor >= _MIN_CONTRAST_DB:
        silent |= db < floor + max(6.0, 0.35 * (loud - floor))
    return silent


def _non_speech_frames(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """The 10 ms frames outside the speech the VAD finds (Silero's rules, 100 ms of padding)."""
    from lalm.vad import speech_segments

    silent = np.ones(n_frames, bool)
    for start, end in speech_segments(samples, speech_pad_ms=100):
        silent[int(start * SAMPLE_RATE) // _HOP:-(-int(end * SAMPLE_RATE) // _HOP)] = False
    return silent


def _plan(samples: np.ndarray, max_seconds: float, min_pause: float, pad: float,
          speech_only: bool = False, cuts: Sequence[float] = ()) -> list[Window]:
    """Windows of at most `max_seconds` covering every non-silent part of `samples` (every part with
    speech if `speech_only`), cut inside pauses of at least `min_pause` seconds (each side padded by `pad`
    seconds of the pause), and between pieces of sound on either side of a time in `cuts` (seconds; a piece
    is on the side of its middle). Positions are relative to `samples`."""
    total = len(samples)
    if total == 0:
        return []
    db = _frame_db(samples)
    silent = _non_speech_frames(samples, len(db)) if speech_only else _silent_frames(db)
    if silent.all():
        return []
    # sound regions in frames: maximal runs of non-silent frames, bridging pauses shorter than min_pause
    loud = np.flatnonzero(~silent)
    gaps = np.flatnonzero(np.diff(loud) > int(min_pause * SAMPLE_RATE / _HOP))
    starts = np.concatenate([[loud[0]], loud[gaps + 1]])
    ends = np.concatenate([loud[gaps], [loud[-1]]])
    pad_n, limit = int(pad * SAMPLE_RATE), int(max_seconds * SAMPLE_RATE)
    spans = [(max(0, int(a) * _HOP - pad_n), min(total, int(b) * _HOP + _FRAME + pad_n))
             for a, b in zip(starts, ends, strict=True)]
    pieces = [p for s, e in spans for p in _split_long(s, e, db, limit)]
    # pack consecutive pieces into windows up to the limit
    windows: list[Window] = []
    max_gap = int(_SPEECH_ONLY_MAX_GAP * SAMPLE_RATE) if speech_only else total
    marks = np.sort(np.asarray(cuts, np.float64)) * SAMPLE_RATE
    side = -1
    for s, e in pieces:
        was, side = side, int(np.searchsorted(marks, (s + e) / 2))
        if windows and e - windows[-1].start <= limit and s - windows[-1].end <= max_gap and side == was:
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


class WindowCutter:
    """Cuts a stream of sample chunks into windows as they arrive, holding at most two windows of audio.

    `feed` returns the windows (with their samples) that are final; `finish` returns the rest.
    """

    def __init__(self, max_seconds: float = WINDOW_SECONDS, *, min_pause: float = 0.3, pad: float = 0.15,
                 speech_only: bool = False, cuts: Sequence[float] = ()) -> None:
        self.max_seconds, self.min_pause, self.pad = max_seconds, min_pause, pad
        self.speech_only, self.cuts = speech_only, tuple(cuts)
        self._limit = int(max_seconds * SAMPLE_RATE)
        self._buf = np.zeros(0, np.float32)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._offset = 0  # absolute position of self._buf[0]
        self.samples_seen = 0

    @property
    def seconds(self) -> float:
        """Length of the audio fed so far."""
        return self.samples_seen / SAMPLE_RATE

    def feed(self, chunk: np.ndarray) -> list[tuple[Window, np.ndarray]]:
        """Add samples; return the windows that no later audio can change."""
        self.samples_seen += len(chunk)
        self._pending.append(np.asarray(chunk, np.float32))
        self._pending_n += len(chunk)
        if len(self._buf) + self._pending_n < 2 * self._limit:
            return []
        buf = np.concatenate([self._buf, *self._pending])
        self._pending, self._pending_n = [], 0
        out, used = self._cut(buf, final=False)
        self._offset += used
        # a copy, so the (possibly large) concatenated buffer is not kept alive by a view
        self._buf = buf[used:].copy()
        return out

    def finish(self) -> list[tuple[Window, np.ndarray]]:
        """All remaining windows (call once, at the end of the audio)."""
        buf = np.concatenate([self._buf, *self._pending])
        self._pending, self._pending_n = [], 0
        out, _ = self._cut(buf, final=True)
        self._buf = np.zeros(0, np.float32)
        return out

    def _cut(self, buf: np.ndarray, *, final: bool) -> tuple[list[tuple[Window, np.ndarray]], int]:
        """Windows from `buf` and how many of its samples are done with. Not final: plan on the next two
        windows' worth and keep only the first window, which later audio cannot change unless the first
        `limit` samples are silent (then skip to where sound starts and plan again)."""
        horizon = 2 * self._limit
        out: list[tuple[Window, np.ndarray]] = []
        pos = 0
        while final or len(buf) - pos >= horizon:
            view = buf[pos:] if final else buf[pos:pos + horizon]
            at = (self._offset + pos) / SAMPLE_RATE
            plan = _plan(view, self.max_seconds, self.min_pause, self.pad, self.speech_only,
                         [c - at for c in self.cuts if c > at])
            if final:
                out += [self._emit(buf, pos, w) for w in plan]
                return out, len(buf)
            if not plan:
                # all silent: drop it but keep a little, in case a word starts right at the end
                pos += horizon - int(self.pad * SAMPLE_RATE) - _FRAME
            elif plan[0].start >= self._limit:
                pos += plan[0].start
            else:
                out.append(self._emit(buf, pos, plan[0]))
                pos += plan[0].end
        return out, pos

    def _emit(self, buf: np.ndarray, pos: int, w: Window) -> tuple[Window, np.ndarray]:
        start = pos + w.start
        return Window(self._offset + start, self._offset + pos + w.end), buf[start:pos + w.end].copy()


def plan_windows(samples: np.ndarray, *, max_seconds: float = WINDOW_SECONDS, min_pause: float = 0.3,
                 pad: float = 0.15, speech_only: bool = False, cuts: Sequence[float] = ()) -> list[Window]:
    """The windows `WindowCutter` makes of a whole recording already in memory."""
    cutter = WindowCutter(max_seconds, min_pause=min_pause, pad=pad, speech_only=speech_only, cuts=cuts)
    return [w for w, _ in cutter.feed(samples) + cutter.finish()]


class WindowStream:
    """Windows of a recording, decoded and cut in a worker thread while earlier windows are served.

    `chunks` is any iterator of 16 kHz float32 sample chunks (e.g. `lalm.audio.decode_chunks`, or a
    single array). Errors of the decoder surface where the audio is read: `prime()` reads up to the
    first window, so problems at the start of a file are raised before a response is started.
    `seconds` is the length of the audio read so far (the whole duration once iteration ends).
    `speech_only`: windows hold only speech (see the module's docstring), for transcription. `cuts`: times
    (seconds) a window ends at where a pause allows, e.g. where the slide on screen changes.
    """

    def __init__(self, chunks: Iterable[np.ndarray], *, max_seconds: float = WINDOW_SECONDS,
                 speech_only: bool = False, cuts: Sequence[float] = ()) -> None:
        self._chunks: Iterator[np.ndarray] = iter(chunks)
        self._cutter = WindowCutter(max_seconds, speech_only=speech_only, cuts=cuts)
        self._ready: list[tuple[Window, np.ndarray]] = []
        self._done = False
        self._stopped = False  # set when the reader is abandoned, so the worker thread stops reading
        # One thread of its own for the whole recording: spread over a shared pool, each pool thread's
        # malloc arena would grow to hold a window's working set, and the process's memory with them.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lalm-decode")

    @property
    def seconds(self) -> float:
        return self._cutter.seconds

    @property
    def exhausted(self) -> bool:
        """Whether the whole recording has been read and every window handed out."""
        return self._done and not self._ready

    def _read(self) -> None:
        """Read chunks until at least one window is ready or the audio ends (runs in a thread)."""
        while not self._ready and not self._done and not self._stopped:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ready += self._cutter.finish()
                self._done = True
            else:
                self._ready += self._cutter.feed(chunk)

    async def prime(self) -> None:
        """Decode up to the first window (or the end), raising the decoder's errors now."""
        if not self._ready and not self._done:
            try:
                await asyncio.get_running_loop().run_in_executor(self._thread, self._read)
            except BaseException:
                # cancelled (a client that left) or failed: the thread must not read on to the end of a
                # recording that has no window (speech_only on a long stretch without speech)
                self._stopped = True
                self._thread.shutdown(wait=False)
                raise
            if self._done:
                self._thread.shutdown(wait=False)

    async def __aiter__(self) -> AsyncIterator[tuple[Window, np.ndarray]]:
        try:
            while True:
                await self.prime()
                if not self._ready:
                    return
                yield self._ready.pop(0)
        finally:
            self._stopped = True
            self._thread.shutdown(wait=False)
