"""Test media made at test time: audio encoded into every container lalm accepts (video ones with a real
video stream), so no binary fixtures live in git."""

from __future__ import annotations

import io
import struct
import tempfile
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np

from lalm.synth_video import Slide, slide_video

# format -> (container format, audio codec, sample rate, video codec or None)
FORMATS: dict[str, tuple[str, str, int, str | None]] = {
    "wav": ("wav", "pcm_s16le", 16000, None),
    "flac": ("flac", "flac", 44100, None),
    "mp3": ("mp3", "libmp3lame", 44100, None),
    "ogg": ("ogg", "libopus", 48000, None),
    "opus": ("opus", "libopus", 48000, None),
    "m4a": ("ipod", "aac", 44100, None),
    "aac": ("adts", "aac", 44100, None),
    "webm": ("webm", "libopus", 48000, "libvpx"),
    "mp4": ("mp4", "aac", 44100, "libx264"),
    "mkv": ("matroska", "libopus", 48000, "libx264"),
    "mov": ("mov", "aac", 44100, "libx264"),
}


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(samples, 16000, rate).astype(np.float32) if rate != 16000 else samples


def encode(samples: np.ndarray, fmt: str, *, stereo: bool = False, video: bool | None = None) -> bytes:
    """Encode 16 kHz mono float32 `samples` as `fmt` (a key of FORMATS). Video containers get a small
    moving-colour video track so they are real videos, not audio in a video-named box."""
    container_fmt, codec, rate, vcodec = FORMATS[fmt]
    if video is False:
        vcodec = None
    data = _resample(np.asarray(samples, np.float32), rate)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_fmt) as out:
        vstream = None
        if vcodec is not None:
            vstream = out.add_stream(vcodec, rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream(codec, rate=rate, layout="stereo" if stereo else "mono")
        frame_size = astream.codec_context.frame_size or 1024
        fmt_name = astream.codec_context.format.name
        pcm = np.stack([data, data * 0.5]) if stereo else data[None, :]
        pts = 0
        for start in range(0, pcm.shape[1], frame_size):
            block = pcm[:, start:start + frame_size]
            if block.shape[1] < frame_size and codec in ("libopus", "aac", "libmp3lame"):
                block = np.pad(block, ((0, 0), (0, frame_size - block.shape[1])))
            frame = _audio_frame(block, fmt_name, stereo, rate)
            frame.pts, frame.time_base = pts, Fraction(1, rate)
            pts += block.shape[1]
            for packet in astream.encode(frame):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
        if vstream is not None:
            for i in range(int(len(data) / rate * 10) + 1):
                img = np.full((48, 64, 3), (i * 25) % 255, np.uint8)
                vframe = av.VideoFrame.from_ndarray(img, format="rgb24")
                for packet in vstream.encode(vframe):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
    return buf.getvalue()


def _audio_frame(block: np.ndarray, fmt_name: str, stereo: bool, rate: int) -> av.AudioFrame:
    """A frame in the encoder's own sample format (PyAV encoders do not convert)."""
    layout = "stereo" if stereo else "mono"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate
    if fmt_name == "fltp":
        return frame
    (converted,) = av.AudioResampler(format=fmt_name, layout=layout, rate=rate).resample(frame)
    return converted


def tone(seconds: float, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """A sine tone at 16 kHz."""
    t = np.arange(int(seconds * 16000)) / 16000
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def streaming_wav(samples: np.ndarray, *, rate: int = 16000, channels: int = 1, size: int = 0) -> bytes:
    """16-bit PCM WAV of 16 kHz `samples` (resampled to `rate`, copied to `channels`) whose RIFF and `data`
    sizes are both `size`: the placeholder (0 or 0xFFFFFFFF) that streaming writers put in the header."""
    pcm = np.round(np.clip(_resample(np.asarray(samples, np.float32), rate), -1, 1) * 32767).astype("<i2")
    body = np.repeat(pcm[:, None], channels, axis=1).tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (b"RIFF" + struct.pack("<I", size) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", size) + body)


def joined_mp3(samples: np.ndarray) -> bytes:
    """Two MP3s of `samples` joined byte for byte, as `cat a.mp3 b.mp3 > c.mp3` makes them."""
    one = encode(samples, "mp3")
    return one + one


def mp3_with_junk(samples: np.ndarray, junk: int = 200, seed: int = 0) -> bytes:
    """An MP3 of `samples` with `junk` random bytes inserted in the middle (a damaged download)."""
    return with_junk(encode(samples, "mp3"), junk=junk, seed=seed)


def with_junk(data: bytes, *, at: float = 0.5, junk: int = 200, seed: int = 0) -> bytes:
    """`data` with `junk` random bytes inserted at the fraction `at` of its length."""
    cut = int(len(data) * at)
    return data[:cut] + np.random.default_rng(seed).bytes(junk) + data[cut:]


def remux(data: bytes, container_fmt: str, *, gap: tuple[float, float] | None = None, **options: str) -> bytes:
    """The audio stream of `data` copied, packets unchanged, into a `container_fmt` container written with
    the muxer's `options`: e.g. ("webm", live="1") for WebM as browsers record it (no duration, no cues),
    ("matroska") for FLAC in MKV, ("mp4", movflags="+faststart") for the index before the samples.
    `gap` (at, seconds): packets from `at` seconds on are stamped `seconds` later, a hole in the timestamps
    such as a WebRTC recorder leaves while a speaker is muted."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out"  # +faststart rewrites the file by name, so not a BytesIO
        with av.open(io.BytesIO(data)) as src, av.open(str(path), "w", format=container_fmt, options=options) as out:
            stream = out.add_stream_from_template(src.streams.audio[0])
            for packet in src.demux(src.streams.audio[0]):
                if packet.dts is None:
                    continue
                if gap is not None and packet.pts * packet.time_base >= gap[0]:
                    shift = int(gap[1] / packet.time_base)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = stream
                out.mux(packet)
        return path.read_bytes()


# The slide video of the screen-text tests: three slides of rare names and terms, a burned-in subtitle over part
# of the first, a black stretch at the end, and one espeak-ng sentence inside each slide, apart enough that each
# is its own audio window. Nothing on screen is spoken.
SLIDES = (
    Slide(0.0, 10.0, ("Zorblax Quintavell", "Fjordheim glacier ablation")),
    Slide(4.0, 7.0, ("Nakamura-Holt reagent",), bottom=True),
    Slide(10.0, 20.0, ("Przemysl Kelvinator tessellation", "Oksanavich Brumley")),
    Slide(20.0, 28.0, ("Quillfeather Dynamics", "Vexillology symposium")),
)
SLIDE_SPEECH = ((3.0, "The meeting starts at nine thirty on Monday."),
          (13.0, "Please send the report before Friday."),
          (23.0, "Can you hear me now? Yes, I can hear you."))
SLIDE_SECONDS = 32.0  # 28-32 s: a black screen


@cache
def slide_mp4() -> bytes:
    """The slide video as a 960x540 MP4."""
    return slide_video(SLIDES, SLIDE_SPEECH, seconds=SLIDE_SECONDS, fmt="mp4", size=(960, 540))


@cache
def broken_picture_mkv() -> bytes:
    """The slide video's sound in Matroska beside a video stream whose packets are random bytes (a corrupt
    MJPEG stream): the sound is fine, no picture decodes."""
    rng = np.random.default_rng(0)
    src = av.open(io.BytesIO(slide_mp4()))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="matroska") as out:
        video = out.add_stream("mjpeg", rate=10)
        video.width, video.height, video.pix_fmt = 320, 240, "yuvj420p"
        audio = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
        for i in range(int(SLIDE_SECONDS * 10)):
            packet = av.Packet(rng.bytes(2000))
            packet.stream, packet.pts, packet.dts, packet.time_base = video, i, i, Fraction(1, 10)
            out.mux(packet)
    src.close()
    return buf.getvalue()
