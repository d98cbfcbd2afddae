"""On-screen text of a video as timed lines: probe frames (lalm.screen_text.frames), OCR the ones whose
picture changed (lalm.screen_text.ocr), and follow each line from the first probe that shows it to the last.

Cost is bounded: a picture that does not change is read once, however long it stays; a flat picture (a black
or single-colour screen) is never read; and at most `max_frames_per_minute` frames are read per minute of
video (a token bucket that holds 10 s worth, refilled as the video plays), so OCR time per minute of
video has a ceiling whatever the video shows (pictures beyond it are skipped: a video that changes faster than
the cap loses some of its text). A video stream that cannot be read gives no lines and a
warning: the request goes on with the audio alone."""

from __future__ import annotations

import contextlib
import difflib
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import av
import numpy as np

from lalm.screen_text.frames import FrameReport, Probe, VideoUnreadable, probes, same_picture
from lalm.screen_text.ocr import OcrLine, read_lines

__all__ = ["ScreenLine", "ScreenText", "read_screen_text"]

# A thumbnail whose brightest and darkest pixels are closer than this (grey levels) holds no readable text.
_FLAT_RANGE = 24
# Creation order of tracks, so lines that appear together keep their top-to-bottom order.
_ORDER = itertools.count()
# Two readings of the same line from different frames differ by a character or two at most (and never in
# their digits: "Slide 12" is not "Slide 13").
_SAME_LINE_RATIO = 0.9


@dataclass(frozen=True)
class ScreenLine:
    """A line of text on screen from `start` to `end` seconds (audio clock), with the best OCR `score` seen."""

    text: str
    start: float
    end: float
    score: float


@dataclass
class ScreenText:
    """The timed lines of a video, and what reading them cost: `frames_read` frames OCR'd out of
    `probes` probed, `ocr_cpu_seconds` of CPU in OCR, `seconds` of video read. `warning` says why there are
    no lines when the picture could not be read."""

    lines: list[ScreenLine] = field(default_factory=list)
    probes: int = 0
    frames_read: int = 0
    ocr_cpu_seconds: float = 0.0
    seconds: float = 0.0
    warning: str | None = None


@dataclass(eq=False)  # tracks are told apart by identity: two may read the same
class _Track:
    text: str
    key: str
    start: float
    end: float
    score: float
    order: int  # creation order: lines that appear together keep their top-to-bottom order


def _key(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


def _usable(line: OcrLine, min_score: float) -> bool:
    return line.score >= min_score and sum(c.isalnum() for c in line.text) >= 2


class _Budget:
    """A token bucket of frames, refilled at `per_minute` per minute of video, holding at most 10 s worth
    (at least one frame), full at the start: over any stretch of T seconds at most per_minute * (T + 10) / 60
    frames are read."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute, self.last = per_minute, 0.0
        self.capacity = self.tokens = max(1.0, per_minute / 6)

    def take(self, t: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (t - self.last) * self.per_minute / 60)
        self.last = t
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def read_screen_text(source: bytes | str | os.PathLike | BinaryIO, *, probe_seconds: float = 0.5,
                     max_frames_per_minute: int = 20, min_score: float = 0.8,
                     max_seconds: float | None = None, stop: threading.Event | None = None) -> ScreenText:
    """The on-screen text of the video in `source` (bytes, a path, or a seekable binary file, whose position
    is restored), as lines with the time range each was seen (`start` = the first probe showing it, `end` =
    the last one plus `probe_seconds`). Lines read with a confidence under `min_score`, or with fewer than
    two letters or digits, are dropped; the same line read in consecutive frames is one line. A file without
    a video stream gives no lines. Never raises for a damaged picture: `warning` says what happened. Setting
    `stop` (from another thread) ends the reading at the next probe, with the lines found so far."""
    report, out = FrameReport(), ScreenText()
    active: list[_Track] = []
    finished: list[_Track] = []
    budget = _Budget(max_frames_per_minute)
    last_thumb: np.ndarray | None = None
    try:
        sampled = probes(source, probe_seconds=probe_seconds, max_seconds=max_seconds, report=report)
        # closed on the way out, stopped or not, so the container is closed and the file's position restored now
        with contextlib.closing(sampled):
            for probe in sampled:
                if stop is not None and stop.is_set():
                    break
                if last_thumb is not None and same_picture(probe.thumb, last_thumb):
                    for track in active:
                        track.end = probe.time
                    continue
                if int(probe.thumb.max()) - int(probe.thumb.min()) < _FLAT_RANGE:
                    found: list[OcrLine] = []
                elif budget.take(probe.time):
                    found = _ocr(probe, out)
                else:
                    continue  # over budget: a later probe reads the new picture
                last_thumb = probe.thumb
                active = _follow(active, finished, [x for x in found if _usable(x, min_score)], probe.time)
    except (VideoUnreadable, av.FFmpegError, ValueError) as exc:  # ValueError: PyAV's unsupported conversions
        out.warning = (f"The video's picture cannot be read ({exc}); on-screen text was not used and the request "
                       "was answered from the audio alone.")
        active, finished = [], []
    out.probes, out.seconds = report.probes, report.seconds
    end = report.seconds + probe_seconds
    tracks = sorted(finished + active, key=lambda t: (t.start, t.order))
    out.lines = [ScreenLine(t.text, round(t.start, 3), round(min(t.end + probe_seconds, end), 3), round(t.score, 3))
                 for t in tracks]
    return out


def _ocr(probe: Probe, out: ScreenText) -> list[OcrLine]:
    before = time.thread_time()
    found = read_lines(probe.image())
    out.ocr_cpu_seconds += time.thread_time() - before
    out.frames_read += 1
    return found


def _same_line(a: str, b: str) -> bool:
    if a == b:
        return True
    digits = [c for c in a if c.isdigit()] == [c for c in b if c.isdigit()]
    return digits and difflib.SequenceMatcher(None, a, b).ratio() >= _SAME_LINE_RATIO


def _follow(active: list[_Track], finished: list[_Track], found: list[OcrLine], t: float) -> list[_Track]:
    """The tracks on screen at `t`: each line found extends the active track that reads the same (its best
    reading kept) or starts a new one; active tracks not found again are finished."""
    now: list[_Track] = []
    for line in found:
        key = _key(line.text)
        match = next((tr for tr in active if tr not in now and _same_line(tr.key, key)), None)
        if match is None:
            now.append(_Track(line.text, key, t, t, line.score, next(_ORDER)))
            continue
        match.end = t
        if line.score > match.score:
            match.text, match.key, match.score = line.text, key, line.score
        now.append(match)
    finished.extend(tr for tr in active if tr not in now)
    return now
