"""lalm.audio.wav: one walk of a WAV's chunk list, the same over bytes and over a file on disk, serving both the
16-bit pass-through (`pcm16_wav`) and the placeholder-size check (`has_placeholder_sizes`); a header parsed
once is decoded without parsing it again."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lalm.audio import AudioError, decode_audio
from lalm.audio.wav import Chunk, PCM16Wav, chunks, has_placeholder_sizes, pcm16_wav


def _wav(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _with_chunks(wav: bytes, data_size: int | None = None, riff_size: int | None = None) -> bytes:
    """`wav` (a 44-byte header) with a LIST chunk of odd size (so padded) before `data` and a chunk after the
    samples; the RIFF and `data` sizes exact unless given."""
    pcm = wav[44:]
    body = (wav[12:36] + b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00"
            + b"data" + (len(pcm) if data_size is None else data_size).to_bytes(4, "little") + pcm
            + b"id3 " + (4).to_bytes(4, "little") + b"tags")
    return b"RIFF" + (len(body) + 4 if riff_size is None else riff_size).to_bytes(4, "little") + b"WAVE" + body


def test_chunks_are_the_same_over_bytes_and_a_file_and_end_at_data(speech: np.ndarray, tmp_path: Path) -> None:
    wav = _with_chunks(_wav(speech))
    pcm_bytes = 2 * len(speech)
    expected = [Chunk(b"fmt ", 16, 20), Chunk(b"LIST", 5, 44), Chunk(b"data", pcm_bytes, 58)]
    assert list(chunks(io.BytesIO(wav))) == expected
    path = tmp_path / "a.wav"
    path.write_bytes(b"junk before" + wav)
    with path.open("rb") as fh:
        fh.seek(len(b"junk before"))
        assert list(chunks(fh)) == expected
    assert wav[58:58 + pcm_bytes] == _wav(speech)[44:]


def test_a_cut_off_header_ends_the_walk() -> None:
    assert list(chunks(io.BytesIO(b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00"))) == []


@pytest.mark.parametrize(("data_size", "riff_size", "placeholder"), [
    (None, None, False), (0, None, True), (0xFFFFFFFF, None, True), (None, 0, True), (None, 0xFFFFFFFF, True),
])
def test_placeholder_sizes_are_found_behind_other_chunks(speech: np.ndarray, tmp_path: Path, data_size: int | None,
                                                         riff_size: int | None, placeholder: bool) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(_with_chunks(_wav(speech), data_size, riff_size))
    with path.open("rb") as fh:
        assert has_placeholder_sizes(fh) is placeholder


def test_a_parsed_header_decodes_as_the_bytes_do(speech: np.ndarray) -> None:
    wav = _with_chunks(_wav(speech))
    parsed = pcm16_wav(wav)
    assert parsed == PCM16Wav(wav, 58, len(speech))
    from_bytes, from_parsed = decode_audio(wav), decode_audio(parsed)
    assert from_parsed.wav == from_bytes.wav == wav
    np.testing.assert_array_equal(from_parsed.samples, from_bytes.samples)
    for limits, code in [({"max_bytes": len(wav) - 1}, "file_too_large"), ({"max_seconds": 1.0}, "audio_too_long"),
                         ({"min_seconds": 10.0}, "audio_too_short")]:
        with pytest.raises(AudioError) as err:
            decode_audio(parsed, **limits)
        assert err.value.code == code


def test_a_zero_data_size_under_an_exact_riff_size_is_read_to_the_end(speech: np.ndarray) -> None:
    """A streaming writer's 0 `data` size is a placeholder even when the RIFF size is exact: the file is not
    passed through as empty (refused as too short) but decoded to its end."""
    wav = _with_chunks(_wav(speech), data_size=0)
    assert pcm16_wav(wav) is None
    decoded = decode_audio(wav)
    # read to the end: the 12-byte chunk after the samples reads as 6 more (a placeholder size leaves no way
    # to know where the samples stop)
    assert len(decoded.samples) == len(speech) + 6
    np.testing.assert_array_equal(decoded.samples[:len(speech)], decode_audio(_wav(speech)).samples)
