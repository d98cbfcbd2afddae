"""Sparse frames of a video's picture, decoded with PyAV one at a time (never the whole video in memory): a
probe every `probe_seconds`, with a small grey thumbnail to tell a scene change from the same picture. The
OCR step (lalm.screen_text.scan) reads only the probes whose picture changed.

Times are seconds on the audio's clock: the video's timestamps minus the audio stream's start, so a probe
at 12.0 s shows what is on screen 12 s into the samples lalm.audio decodes."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from lalm.errors import LalmError

__all__ = ["THUMB_SIZE", "FrameReport", "Probe", "VideoUnreadable", "probes", "same_picture"]

# (width, height) of the thumbnail compared between probes: a burned-in subtitle line (~600 x 40 px at 720p)
# still covers ~375 of its pixels, while encoder noise stays under `_PIXEL_CHANGE` grey levels.
THUMB_SIZE = (160, 90)
_PIXEL_CHANGE = 16
# Share of thumbnail pixels that must change for a new picture (~29 pixels).
_CHANGED_SHARE = 0.002
# A picture whose first this-many packets all fail to decode is given up on without reading the rest.
_GIVE_UP_PACKETS = 25
# The widest frame handed to OCR: a 1080p or 4K frame is scaled down first (720p text stays readable).
_MAX_OCR_WIDTH = 1280


class VideoUnreadable(LalmError):
    """The video stream cannot be read (not opened, or no frame decodes); the caller falls back to audio (a
    warning, not an error answer: the status is the one the request would get if it were surfaced)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, code="unreadable_video")


@dataclass
class FrameReport:
    """What reading the picture cost and met: probes taken, packets the codec refused, video seconds read."""

    probes: int = 0
    bad_packets: int = 0
    packets: int = 0
    seconds: float = 0.0


@dataclass
class Probe:
    """A sampled frame at `time` seconds: `thumb` is its (90, 160) uint8 grey thumbnail; `image()` gives the
    (height, width, 3) uint8 BGR picture for OCR, at most 1280 px wide."""

    time: float
    thumb: np.ndarray
    frame: av.VideoFrame = field(repr=False)

    def image(self) -> np.ndarray:
        width, height = self.frame.width, self.frame.height
        if width > _MAX_OCR_WIDTH:
            width, height = _MAX_OCR_WIDTH, round(height * _MAX_OCR_WIDTH / width) // 2 * 2
        return self.frame.to_ndarray(format="bgr24", width=width, height=height)


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two thumbnails show the same picture: fewer than 0.2% of pixels differ by more than 16 grey levels."""
    changed = np.abs(a.astype(np.int16) - b.astype(np.int16)) > _PIXEL_CHANGE
    return float(changed.mean()) < _CHANGED_SHARE


def probes(source: bytes | str | os.PathLike | BinaryIO, *, probe_seconds: float, max_seconds: float | None = None,
           report: FrameReport | None = None) -> Iterator[Probe]:
    """A probe of the video every `probe_seconds` (the first frame at or after each multiple), up to
    `max_seconds` of video. Non-reference frames are not decoded (they are never needed at this rate), and
    only probes are converted. Yields nothing for a file without a video stream (or only cover art). A
    binary file is read from its current position, which is restored afterwards. Raises VideoUnreadable
    when the picture cannot be read at all; packets the codec refuses are skipped and counted in `report`."""
    report = report if report is not None else FrameReport()
    with _opened(source) as fh:
        try:
            container = av.open(fh, mode="r", metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise VideoUnreadable(f"the file cannot be opened ({exc.strerror})") from None
        with container:
            video = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if not video:
                return
            stream = video[0]
            stream.codec_context.skip_frame = "NONREF"
            origin = _origin(container, stream)
            limit = float("inf") if max_seconds is None else max_seconds
            due, decoded = 0.0, 0
            for packet in container.demux(stream):
                if packet.dts is None and packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                report.packets += 1
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    report.bad_packets += 1
                    if decoded == 0 and report.bad_packets >= _GIVE_UP_PACKETS:
                        raise VideoUnreadable(f"its first {report.bad_packets} packets do not decode") from None
                    continue
                for frame in frames:
                    decoded += 1
                    if frame.time is None:
                        continue
                    t = frame.time - origin
                    report.seconds = max(report.seconds, t)
                    if t > limit:
                        return
                    if t + 1e-6 < due:
                        continue
                    thumb = frame.to_ndarray(format="gray", width=THUMB_SIZE[0], height=THUMB_SIZE[1])
                    report.probes += 1
                    due = (int(t / probe_seconds) + 1) * probe_seconds
                    yield Probe(max(0.0, t), thumb, frame)
            if decoded == 0 and report.packets:
                raise VideoUnreadable(f"none of its {report.packets} packets decodes")


def _origin(container: av.container.InputContainer, stream: av.video.VideoStream) -> float:
    """The time (seconds, the container's clock) of the audio's first sample: where lalm.audio's samples start."""
    audio = container.streams.audio
    ref = audio[0] if audio else stream
    if ref.start_time is not None and ref.time_base is not None:
        return float(ref.start_time * ref.time_base)
    return 0.0


@contextlib.contextmanager
def _opened(source: bytes | str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        with Path(source).open("rb") as fh:
            yield fh
    else:
        start = source.tell()
        try:
            yield source
        finally:
            source.seek(start)
