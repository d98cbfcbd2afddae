"""WAV headers: the chunk list of a RIFF/WAVE file (the layout of Microsoft's spec, as Python's `wave` reads
it), walked by one iterator, and the two questions the decoder (lalm.audio) asks of it. Is the file lalm's own
format with exact sizes (16 kHz mono 16-bit PCM, passed on as it came)? Does its header carry placeholder
sizes (a streaming writer's, read to the end of the file)? Only chunk headers are read, never the samples.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["PLACEHOLDER_SIZES", "Chunk", "PCM16Wav", "chunks", "has_placeholder_sizes", "is_pcm16_wav",
           "is_wav", "pcm16_wav"]

# Chunk sizes that streaming writers put in a header before they know the length (RFC 2361 leaves the size
# field as the only length; writers that cannot seek back write 0 or 0xFFFFFFFF).
PLACEHOLDER_SIZES = (0, 0xFFFFFFFF)
# The `fmt ` chunk of lalm's own format: WAVE_FORMAT_PCM, 1 channel, 16000 Hz, 32000 bytes/s, block align 2,
# 16 bits per sample.
_PCM16_FMT = b"\x01\x00\x01\x00" + (16_000).to_bytes(4, "little") + (32_000).to_bytes(4, "little") + b"\x02\x00\x10\x00"
# `RIFF`, the RIFF chunk's size, `WAVE`: the chunks follow.
_HEADER = 12
# fmt, fact, LIST, ... before data: a handful in practice; a header with more is not walked further.
_MAX_CHUNKS = 64


@dataclass(frozen=True)
class Chunk:
    """One chunk of a WAV file: its four-byte `tag` (b"fmt ", b"LIST", b"data", ...), the `size` of its body
    in bytes as the header declares it (perhaps a placeholder), and the `offset` of the body in bytes from the
    file's `RIFF` tag."""

    tag: bytes
    size: int
    offset: int


@dataclass(frozen=True)
class PCM16Wav:
    """A 16 kHz mono 16-bit PCM WAV with exact sizes (lalm's own format, `pcm16_wav`): the file `data`, whose
    samples are `frames` little-endian int16 starting at byte `offset`."""

    data: bytes
    offset: int
    frames: int


def is_wav(head: bytes | bytearray | memoryview) -> bool:
    """Whether a file's first bytes (12 or more) announce a RIFF/WAVE file."""
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def chunks(fh: BinaryIO) -> Iterator[Chunk]:
    """The chunks of the WAV file that starts at `fh`'s position (its `RIFF` tag), in order, up to and
    including the `data` chunk: what follows the samples is never needed, and a placeholder size leaves no way
    to find it. Ends early at the end of the file (a cut-off header) or after 64 chunks. Each chunk's header is
    read at its own offset (odd-sized bodies padded to even, as RIFF writes them), so a consumer may read the
    body of the chunk it holds before asking for the next."""
    start, pos = fh.tell(), _HEADER
    for _ in range(_MAX_CHUNKS):
        fh.seek(start + pos)
        header = fh.read(8)
        if len(header) < 8:
            return
        chunk = Chunk(header[:4], int.from_bytes(header[4:8], "little"), pos + 8)
        yield chunk
        if chunk.tag == b"data":
            return
        pos = chunk.offset + chunk.size + (chunk.size & 1)


def pcm16_wav(data: bytes | bytearray | memoryview) -> PCM16Wav | None:
    """`data` as a `PCM16Wav` if it is a 16 kHz mono 16-bit PCM WAV whose sizes are all exact (RIFF size =
    file size - 8; the `data` chunk's size even, not a placeholder and within the file), else None."""
    data = data if isinstance(data, bytes) else bytes(data)
    if len(data) < _HEADER or not is_wav(data) or int.from_bytes(data[4:8], "little") != len(data) - 8:
        return None
    pcm16 = False
    for chunk in chunks(io.BytesIO(data)):  # BytesIO shares a bytes object's buffer: no copy
        if chunk.tag == b"fmt ":
            pcm16 = chunk.size >= 16 and data[chunk.offset:chunk.offset + 16] == _PCM16_FMT
        elif chunk.tag == b"data":
            # a 0 `data` size under an exact RIFF size is a streaming writer's placeholder: the general
            # decoder reads such a file to its end
            exact = (pcm16 and chunk.size not in PLACEHOLDER_SIZES and chunk.size % 2 == 0
                     and chunk.offset + chunk.size <= len(data))
            return PCM16Wav(data, chunk.offset, chunk.size // 2) if exact else None
    return None


def is_pcm16_wav(data: bytes | bytearray | memoryview) -> bool:
    """Whether `data` is a 16 kHz mono 16-bit PCM WAV with exact sizes, the form `lalm.audio.encode_wav` writes
    and most clients send: it decodes without resampling, in well under a millisecond per 30 s, and passes on
    as it is (`lalm.audio.Audio.wav`), since every WAV reader (libsndfile here and in vLLM) reads the same
    samples from it."""
    return pcm16_wav(data) is not None


def has_placeholder_sizes(fh: BinaryIO) -> bool:
    """Whether the WAV file at `fh`'s position (its `RIFF` tag) has a placeholder (0 or 0xFFFFFFFF) as its
    RIFF or `data` chunk size. Reads up to the `data` chunk's header and leaves `fh` anywhere in between."""
    start = fh.tell()
    if int.from_bytes(fh.read(_HEADER)[4:8], "little") in PLACEHOLDER_SIZES:
        return True
    fh.seek(start)
    return any(chunk.size in PLACEHOLDER_SIZES for chunk in chunks(fh) if chunk.tag == b"data")
