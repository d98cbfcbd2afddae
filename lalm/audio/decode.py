"""Containers and codecs to 16 kHz mono float32: `decode_audio` / `decode_chunks` (the package docstring,
lalm.audio, says what they accept, survive and refuse).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soundfile as sf

from lalm.audio.wav import PCM16Wav, has_placeholder_sizes, is_wav, pcm16_wav
from lalm.errors import LalmError

__all__ = ["SAMPLE_RATE", "SUPPORTED_FORMATS", "Audio", "AudioError", "DecodeReport", "decode_audio",
           "decode_chunks"]

SAMPLE_RATE = 16_000
SUPPORTED_FORMATS = ("wav", "flac", "mp3", "ogg", "opus", "m4a", "aac", "webm", "mp4", "mkv", "mov")
_SUPPORTED_TEXT = ", ".join(SUPPORTED_FORMATS)
# A container may declare a duration and then end early (a cut-off download). Below this share of the
# declared duration the file is reported as truncated rather than served half-heard.
_TRUNCATED_SHARE = 0.8
# Packets the codec cannot decode are skipped; beyond this share of the stream skipped, the file is refused.
_MAX_SKIPPED_SHARE = 0.5


class AudioError(LalmError, ValueError):
    """Audio that cannot be used. `code` is one of: empty_audio (no data at all), invalid_base64,
    file_too_large, unsupported_format, no_audio_stream, corrupt_audio, truncated_audio, audio_too_long,
    audio_too_short (decoded, but no samples or fewer than the caller's minimum)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, status=413 if code == "file_too_large" else 400, code=code)


@dataclass
class DecodeReport:
    """What decoding had to skip, filled in as decoding goes: `skipped_packets` packets, about
    `skipped_seconds` seconds of audio (from the packets' durations and timestamps). Of these, `gap_seconds`
    were jumps in the timestamps (audio the demuxer jumped over, or that a recorder never wrote); the rest
    packets the codec could not decode."""

    skipped_packets: int = 0
    skipped_seconds: float = 0.0
    gap_seconds: float = 0.0


@dataclass(frozen=True)
class Audio:
    """Decoded audio: `samples` is a 1-D float32 array at `SAMPLE_RATE` Hz, mono; `skipped` says what
    undecodable audio was left out. `wav` is the source itself when it already is the lossless form lalm
    hands on (`encode_wav`'s 16-bit case: a 16 kHz mono 16-bit PCM WAV holding exactly `samples`), so it can
    be sent on as it came instead of encoded again; else None."""

    samples: np.ndarray
    skipped: DecodeReport = field(default_factory=DecodeReport)
    wav: bytes | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / SAMPLE_RATE


Source = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO


def decode_audio(source: Source | PCM16Wav, *, max_bytes: int | None = None, max_seconds: float | None = None,
                 min_seconds: float = 0.0) -> Audio:
    """Decode `source` (raw bytes, a file path, or a readable binary file object) to 16 kHz mono float32.
    A `PCM16Wav` (lalm.audio.wav.pcm16_wav: bytes the caller has already found to be lalm's own format) is read
    without parsing its header again.

    `max_bytes` / `max_seconds` are the caller's limits (the gateway passes its settings'); None is no limit,
    e.g. for a local file. Nothing here reads settings of its own. Audio shorter than `min_seconds` raises
    `audio_too_short`. Raises `AudioError` for anything unusable.
    """
    wav = source if isinstance(source, PCM16Wav) else (
        pcm16_wav(source) if isinstance(source, bytes | bytearray | memoryview) else None)
    if wav is not None:
        # lalm's own format with exact sizes: the samples are the PCM as it lies (scaled by 1/32768, as
        # libsndfile and FFmpeg read it), and the file itself is their lossless form
        limits = resolve_limits(max_bytes, max_seconds)
        _check_size(len(wav.data), limits[0])
        if wav.frames > limits[1] * SAMPLE_RATE:
            raise _too_long(None, limits[1])
        _check_min_length(wav.frames, min_seconds)
        samples = np.frombuffer(wav.data, "<i2", count=wav.frames, offset=wav.offset).astype(np.float32)
        samples *= np.float32(1 / 32768)  # a power of two: exact, the same as dividing
        return Audio(samples, DecodeReport(), wav.data)
    report = DecodeReport()
    chunks = list(decode_chunks(source, max_bytes=max_bytes, max_seconds=max_seconds, min_seconds=min_seconds,
                                report=report))
    return Audio(np.concatenate(chunks) if len(chunks) > 1 else chunks[0], report)


def decode_chunks(source: Source, *, max_bytes: int | None = None, max_seconds: float | None = None,
                  min_seconds: float = 0.0, chunk_seconds: float = 1.0,
                  report: DecodeReport | None = None) -> Iterator[np.ndarray]:
    """Decode like `decode_audio`, but yield the samples in pieces of about `chunk_seconds` as they are
    decoded, so audio of any length is handled in constant memory (long uploads, lalm.longform.windows).
    Skipped packets are counted in `report` as they are met.

    Problems visible in the header (size, format, declared duration) raise on the first `next()`; damage
    further in raises when it is reached, after the chunks before it were yielded (so does audio shorter
    than `min_seconds`, or with more than half of it undecodable, at the end).
    """
    max_bytes, max_seconds = resolve_limits(max_bytes, max_seconds)
    report = report if report is not None else DecodeReport()
    total = 0
    with _open_checked(source, max_bytes) as fh:
        for piece in _decode(fh, max_seconds, max(1, int(chunk_seconds * SAMPLE_RATE)), report):
            total += len(piece)
            yield piece
    _check_min_length(total, min_seconds)


def _check_min_length(samples: int, min_seconds: float) -> None:
    if samples == 0 or samples < min_seconds * SAMPLE_RATE:
        # one code for every recording too short to use, whatever its container or sample rate
        raise AudioError("audio_too_short", f"The audio is {samples / SAMPLE_RATE:.3f} s long; at least "
                                            f"{max(min_seconds, 1 / SAMPLE_RATE):.3g} s is needed.")


@contextlib.contextmanager
def _open_checked(source: Source, max_bytes: float) -> Iterator[BinaryIO]:
    """A binary file for `source` positioned at its start, after checking its size against `max_bytes`."""
    if isinstance(source, bytes | bytearray | memoryview):
        _check_size(len(source), max_bytes)
        yield io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise AudioError("empty_audio", f"No audio file at {path}.")
        _check_size(path.stat().st_size, max_bytes)
        with path.open("rb") as fh:
            yield fh
    elif source.seekable():
        start = source.tell()
        size = source.seek(0, os.SEEK_END) - start
        source.seek(start)
        _check_size(size, max_bytes)
        yield source
    else:
        data = source.read() if max_bytes == math.inf else source.read(int(max_bytes) + 1)
        _check_size(len(data), max_bytes)
        yield io.BytesIO(data)


def resolve_limits(max_bytes: int | None, max_seconds: float | None) -> tuple[float, float]:
    """The caller's limits, None (no limit) as infinity."""
    return (math.inf if max_bytes is None else max_bytes), (math.inf if max_seconds is None else max_seconds)


def _check_size(size: int, max_bytes: float) -> None:
    if size == 0:
        raise AudioError("empty_audio", "The audio file is empty.")
    if size > max_bytes:
        raise AudioError("file_too_large", f"The audio file is {size} bytes; the limit is {max_bytes} bytes.")


def _too_long(seconds: float | None, max_seconds: float) -> AudioError:
    """`seconds`: the declared length, or None when decoding stopped as soon as the limit was passed."""
    if seconds is None:
        return AudioError("audio_too_long", f"The audio is longer than the limit of {max_seconds:g} s.")
    return AudioError("audio_too_long", f"The audio is {seconds:.1f} s long; the limit is {max_seconds:g} s.")


def _sniff(head: bytes) -> str | None:
    """The container a file's first bytes announce, if it is one lalm reads: tells a damaged file of a
    known kind (corrupt or truncated) from a file of a kind lalm does not read."""
    if is_wav(head):
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return "MP4/MOV"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3/AAC"
    return None


def _decode(fh: BinaryIO, max_seconds: float, chunk: int, report: DecodeReport) -> Iterator[np.ndarray]:
    start = fh.tell()
    head = fh.read(16)
    fh.seek(start)
    native = _native_wav(fh, head)
    if native is not None:
        yield from _read_native_wav(native, max_seconds, chunk)
        return
    try:
        container = av.open(fh, mode="r", metadata_errors="ignore")
    except av.FFmpegError:
        kind = _sniff(head)
        if kind is not None:
            raise AudioError(
                "corrupt_audio", f"The file starts like {kind} but cannot be read: it is corrupt or truncated."
            ) from None
        raise AudioError(
            "unsupported_format",
            f"The file is not audio or video that lalm can read. Supported: {_SUPPORTED_TEXT}.",
        ) from None
    with container:
        if not container.streams.audio:
            raise AudioError("no_audio_stream", "The file has no audio stream (a video without sound?).")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_seconds + 1.0:
            raise _too_long(declared, max_seconds)
        total = 0
        for piece in _decode_stream(container, stream, max_seconds, chunk, report):
            total += len(piece)
            yield piece
    seconds = total / SAMPLE_RATE
    # skipped audio is in the file, only damaged: what is missing beyond it is missing at the end
    accounted = seconds + report.skipped_seconds
    undecodable = report.skipped_seconds - report.gap_seconds
    if report.skipped_packets and undecodable >= _MAX_SKIPPED_SHARE * (seconds + undecodable):
        raise AudioError(
            "corrupt_audio",
            f"The audio is corrupt: {undecodable:.1f} s of it cannot be decoded and only {seconds:.1f} s can"
            + (f" of the {declared:.1f} s it declares." if declared is not None else "."),
        )
    if declared is not None and accounted < _TRUNCATED_SHARE * declared and declared - accounted > 0.5:
        raise AudioError(
            "truncated_audio",
            f"The file ends early: it declares {declared:.1f} s of audio but holds {accounted:.1f} s. "
            "Upload the complete file.",
        )


def _native_wav(fh: BinaryIO, head: bytes) -> sf.SoundFile | None:
    """The file opened with libsndfile if it is a WAV already in lalm's format (16 kHz mono), else None
    (and the file rewound). Such files — what most clients send — need no resampling: libsndfile reads
    them ~30x faster than the PyAV frame loop, with identical samples (PCM scaled by 1/32768, as FFmpeg
    does). Anything else goes through PyAV."""
    if not is_wav(head):
        return None
    start = fh.tell()
    if has_placeholder_sizes(fh):
        # libsndfile believes a data size of 0 (and reads nothing); FFmpeg reads to the end of the file.
        fh.seek(start)
        return None
    fh.seek(start)
    try:
        f = sf.SoundFile(fh)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        fh.seek(start)
        return None
    if f.samplerate == SAMPLE_RATE and f.channels == 1:
        return f
    f.close()
    fh.seek(start)
    return None


def _read_native_wav(f: sf.SoundFile, max_seconds: float, chunk: int) -> Iterator[np.ndarray]:
    """Blocks of a 16 kHz mono WAV. Its header's length is not trusted (see the module docstring): the
    limit is checked on the samples actually read."""
    limit = max_seconds * SAMPLE_RATE  # a float: infinite without a limit
    total = 0
    with f:
        try:
            for block in f.blocks(blocksize=chunk, dtype="float32"):
                total += len(block)
                if total > limit:
                    raise _too_long(None, max_seconds)
                yield block
        except sf.LibsndfileError as exc:
            raise AudioError("corrupt_audio", f"The WAV audio is corrupt and cannot be decoded ({exc}).") from None


def _declared_seconds(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _decode_stream(container: av.container.InputContainer, stream: av.audio.AudioStream,
                   max_seconds: float, chunk: int, report: DecodeReport) -> Iterator[np.ndarray]:
    """Decode packet by packet, resampling as we go, in pieces of at least `chunk` samples (the last may
    be shorter); stop as soon as `max_seconds` is passed. A packet the codec refuses is skipped and
    counted in `report`, as FFmpeg's CLI does (it logs the error and decodes on)."""
    limit = max_seconds * SAMPLE_RATE  # a float: infinite without a limit
    pending: list[np.ndarray] = []
    held = total = 0
    try:
        for piece in _resampled(_frames(container, stream, report)):
            pending.append(piece)
            held += len(piece)
            total += len(piece)
            if total > limit:
                raise _too_long(None, max_seconds)
            if held >= chunk:
                yield np.concatenate(pending) if len(pending) > 1 else pending[0]
                pending, held = [], 0
    except av.FFmpegError as exc:
        raise AudioError("corrupt_audio", f"The audio is corrupt and cannot be decoded ({exc.strerror}).") from None
    if pending:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


def _frames(container: av.container.InputContainer, stream: av.audio.AudioStream,
            report: DecodeReport) -> Iterator[av.AudioFrame]:
    """The stream's decoded frames, skipping (and counting) packets the codec refuses, and counting the
    audio missing where the timestamps jump: where a packet should start (the previous one's pts plus its
    duration) to where it does. Damage a demuxer resyncs past leaves no packet to fail, only this jump;
    players keep the timestamps and play on after it. Jumps under half a packet are timestamp rounding
    (WebM's millisecond ticks), not lost audio; backward jumps (chained Ogg streams, timestamps wrapping)
    lose nothing."""
    tick = float(stream.time_base) if stream.time_base else 0.0  # floats: Fractions cost ~5 us a packet
    expected = length = None  # where the next packet should start, and the last packet's length (seconds)
    for packet in container.demux(stream):
        if packet.size and packet.pts is not None and packet.duration and tick:
            start = packet.pts * tick
            if expected is not None and start - expected > length / 2:
                report.skipped_packets += max(1, round((start - expected) / length))  # packets as long as the last
                report.skipped_seconds += start - expected
                report.gap_seconds += start - expected
            length = packet.duration * tick
            expected = start + length
        try:
            frames = packet.decode()
        except av.FFmpegError:
            report.skipped_packets += 1
            report.skipped_seconds += packet.duration * tick if packet.duration else 0.0
            continue
        yield from frames


def _resampled(frames: Iterator[av.AudioFrame]) -> Iterator[np.ndarray]:
    """16 kHz mono float32 pieces of `frames`. The input's rate, layout or sample format may change
    mid-stream (MP3s of different rates joined, a damaged stream's stray frame): the resampler is then
    flushed and a new one made for the new input, as FFmpeg's CLI reconfigures its filters."""
    resampler, setup = None, None
    for frame in frames:
        this = (frame.format.name, frame.layout.name, frame.sample_rate)
        if this != setup:
            if resampler is not None:
                yield from (out.to_ndarray().reshape(-1) for out in resampler.resample(None))
            resampler, setup = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE), this
        yield from (out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    if resampler is not None:
        yield from (out.to_ndarray().reshape(-1) for out in resampler.resample(None))
