"""Videos with known on-screen text and speech, made offline: slides drawn with Pillow (its bundled
FreeType font, no system fonts), speech from espeak-ng (lalm.synth), encoded with PyAV. The source of the
screen-text tests and benchmark (lalm.screen_text); nothing binary lives in git."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from lalm.audio import SAMPLE_RATE
from lalm.synth import espeak

__all__ = ["VIDEO_FORMATS", "Slide", "slide_video"]

# format -> (container, video codec, audio codec, audio rate)
VIDEO_FORMATS: dict[str, tuple[str, str, str, int]] = {
    "mp4": ("mp4", "libx264", "aac", 44100),
    "mov": ("mov", "libx264", "aac", 44100),
    "mkv": ("matroska", "libx264", "libopus", 48000),
    "webm": ("webm", "libvpx", "libopus", 48000),
}


@dataclass(frozen=True)
class Slide:
    """`lines` drawn on screen from `start` to `end` seconds; the first is a title, drawn larger. `bottom`
    lines are drawn low, like burned-in subtitles. No lines: a black screen."""

    start: float
    end: float
    lines: tuple[str, ...] = ()
    bottom: bool = False


def _draw(slides: Sequence[Slide], size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    background = (24, 32, 72) if any(s.lines for s in slides) else (0, 0, 0)
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    scale = height / 720
    for slide in slides:
        y = int((height - 80 * scale) if slide.bottom else 90 * scale)
        for i, line in enumerate(slide.lines):
            font = ImageFont.load_default(size=int((56 if i == 0 and not slide.bottom else 42) * scale))
            x = (width - draw.textlength(line, font=font)) / 2 if slide.bottom else 80 * scale
            draw.text((x, y), line, fill=(255, 255, 255), font=font)
            y += int(110 * scale)
    return np.asarray(image)


def slide_video(slides: Sequence[Slide], speech: Sequence[tuple[float, str]], *, seconds: float,
                fmt: str = "mp4", size: tuple[int, int] = (1280, 720), fps: int = 10,
                voice: str = "en-us", say: Callable[[str], np.ndarray] | None = None) -> bytes:
    """A `fmt` video (a key of VIDEO_FORMATS) `seconds` long at `size` (width, height) and `fps`: the
    slides on screen over their spans (overlapping spans are drawn together; none: black) and each
    `(start, text)` of `speech` said from `start` seconds, silence elsewhere: by `say(text)` (16 kHz mono
    float32 samples; another synthesiser, lalm.synth.festival) or else by espeak-ng `voice`."""
    container_fmt, vcodec, acodec, rate = VIDEO_FORMATS[fmt]
    audio = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    for start, text in speech:
        clip = (say(text) if say else espeak(text, voice=voice))[: len(audio) - int(start * SAMPLE_RATE)]
        audio[int(start * SAMPLE_RATE):int(start * SAMPLE_RATE) + len(clip)] += clip
    import soxr

    pcm = soxr.resample(audio, SAMPLE_RATE, rate).astype(np.float32)[None, :]
    pictures: dict[tuple[int, ...], np.ndarray] = {}
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_fmt) as out:
        vstream = out.add_stream(vcodec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = size[0], size[1], "yuv420p"
        vstream.options = {"preset": "ultrafast"} if vcodec == "libx264" else {"deadline": "realtime", "cpu-used": "8"}
        astream = out.add_stream(acodec, rate=rate, layout="mono")
        frame_size = astream.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format=astream.codec_context.format.name, layout="mono", rate=rate)
        for i, start in enumerate(range(0, pcm.shape[1], frame_size)):
            block = pcm[:, start:start + frame_size]
            block = np.pad(block, ((0, 0), (0, frame_size - block.shape[1])))
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, i * frame_size, Fraction(1, rate)
            for converted in resampler.resample(frame):
                for packet in astream.encode(converted):
                    out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
        for n in range(int(seconds * fps)):
            t = n / fps
            on = tuple(k for k, s in enumerate(slides) if s.start <= t < s.end)
            if on not in pictures:
                pictures[on] = _draw([slides[k] for k in on], size)
            vframe = av.VideoFrame.from_ndarray(pictures[on], format="rgb24")
            vframe.pts, vframe.time_base = n, Fraction(1, fps)
            for packet in vstream.encode(vframe):
                out.mux(packet)
        for packet in vstream.encode(None):
            out.mux(packet)
    return buf.getvalue()
