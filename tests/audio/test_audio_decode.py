"""lalm.audio: every accepted container decodes to the same speech; every kind of bad input raises AudioError
with its code and a message a user understands; limits stop decoding early; memory stays bounded."""

from __future__ import annotations

import base64
import io
import tracemalloc

import av
import numpy as np
import pytest
from media import FORMATS, encode, tone

from lalm.audio import SAMPLE_RATE, AudioError, decode_audio, decode_base64, encode_wav

NO_LIMIT = {"max_bytes": 1 << 30, "max_seconds": 1e6}


def _similar(a: np.ndarray, b: np.ndarray) -> float:
    """Peak normalised cross-correlation within +-150 ms: codecs add delay (raw AAC keeps its priming) and
    change samples, not content."""
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    best = 0.0
    for lag in range(-2400, 2401, 4):
        x, y = (a[lag:], b[:n - lag]) if lag >= 0 else (a[:n + lag], b[-lag:])
        best = max(best, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9)))
    return best


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_decodes_to_the_same_speech(fmt: str, speech: np.ndarray) -> None:
    audio = decode_audio(encode(speech, fmt), **NO_LIMIT)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration - len(speech) / SAMPLE_RATE) < 0.15  # codec padding only
    assert _similar(audio.samples, speech) > 0.9


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "mov", "webm"])
def test_video_containers_give_their_audio_track(fmt: str, speech: np.ndarray) -> None:
    data = encode(speech, fmt)
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video, "the fixture must be a real video"
    assert _similar(decode_audio(data, **NO_LIMIT).samples, speech) > 0.9


def test_stereo_is_mixed_to_mono(speech: np.ndarray) -> None:
    audio = decode_audio(encode(speech, "flac", stereo=True), **NO_LIMIT)
    assert audio.samples.ndim == 1 and _similar(audio.samples, speech) > 0.9


def test_resamples_to_16k() -> None:
    data = encode(tone(2.0, 1000.0), "ogg")  # encoded at 48 kHz
    samples = decode_audio(data, **NO_LIMIT).samples
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(samples)
    assert abs(peak_hz - 1000.0) < 5


def test_inputs_bytes_path_fileobj_base64_and_data_url(tmp_path, speech: np.ndarray) -> None:
    data = encode(speech, "mp3")
    path = tmp_path / "a.mp3"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    results = [
        decode_audio(data, **NO_LIMIT),
        decode_audio(path, **NO_LIMIT),
        decode_audio(str(path), **NO_LIMIT),
        decode_audio(io.BytesIO(data), **NO_LIMIT),
        decode_base64(b64, **NO_LIMIT),
        decode_base64(f"data:audio/mpeg;base64,{b64}", **NO_LIMIT),
        decode_base64("\n".join(b64[i:i + 76] for i in range(0, len(b64), 76)), **NO_LIMIT),  # MIME line breaks
    ]
    for r in results[1:]:
        np.testing.assert_array_equal(r.samples, results[0].samples)


def test_non_seekable_file_object(speech: np.ndarray) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b) -> int:
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    data = encode(speech, "wav")
    np.testing.assert_array_equal(decode_audio(Pipe(data), **NO_LIMIT).samples, decode_audio(data, **NO_LIMIT).samples)


def test_encode_wav_round_trips_exactly(speech: np.ndarray) -> None:
    np.testing.assert_array_equal(decode_audio(encode_wav(speech), **NO_LIMIT).samples, speech)


def _png() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="image2pipe") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 8, 8, "rgb24"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def _silent_video() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


BAD = {
    "empty": (lambda s: b"", "empty_audio", "empty"),
    "text file": (lambda s: b"this is a text file, not audio\n" * 20, "unsupported_format", "Supported: wav"),
    "random bytes": (lambda s: b"\x00" + np.random.default_rng(1).bytes(4096), "unsupported_format",
                     "not audio or video"),
    "png image": (lambda s: _png(), "no_audio_stream", "no audio stream"),
    "video without sound": (lambda s: _silent_video(), "no_audio_stream", "no audio stream"),
    "truncated flac": (lambda s: encode(s, "flac")[:4000], "corrupt_audio", "corrupt or truncated"),
    "truncated mp4": (lambda s: encode(s, "mp4")[:5000], "corrupt_audio", "corrupt or truncated"),
    "truncated ogg": (lambda s: encode(s, "ogg")[:3000], "corrupt_audio", "corrupt or truncated"),
    "truncated mp3": (lambda s: encode(s, "mp3")[:3000], "truncated_audio", "ends early"),
    "wav header only": (lambda s: encode(s, "wav")[:44], "corrupt_audio", "WAV"),
    "WAV header, garbage body": (lambda s: b"RIFF\xff\x0f\x00\x00WAVE" + np.random.default_rng(2).bytes(4000),
                                 "corrupt_audio", "WAV"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_raises_typed_error(kind: str, speech: np.ndarray) -> None:
    make, code, words = BAD[kind]
    with pytest.raises(AudioError) as err:
        decode_audio(make(speech), **NO_LIMIT)
    assert err.value.code == code
    assert words.lower() in err.value.message.lower()
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not base64 at all!!", "invalid_base64"),
        ("QUJD=QUJD", "invalid_base64"),
        ("data:audio/wav,UklGRg==", "invalid_base64"),  # not a base64 data URL
        ("data:;base64,@@@@", "invalid_base64"),
        ("", "empty_audio"),
        ("   ", "empty_audio"),
        ("data:audio/wav;base64,", "empty_audio"),
        ("QUJDRA==", "unsupported_format"),  # valid base64 of "ABCD"
    ],
)
def test_bad_base64(text: str, code: str) -> None:
    with pytest.raises(AudioError) as err:
        decode_base64(text, **NO_LIMIT)
    assert err.value.code == code


def test_size_limit_is_checked_before_decoding(speech: np.ndarray) -> None:
    data = encode(speech, "wav")
    with pytest.raises(AudioError) as err:
        decode_audio(data, max_bytes=len(data) - 1, max_seconds=1e6)
    assert err.value.code == "file_too_large" and str(len(data) - 1) in err.value.message
    with pytest.raises(AudioError) as err:
        decode_base64(base64.b64encode(data).decode(), max_bytes=1000, max_seconds=1e6)
    assert err.value.code == "file_too_large"


def test_duration_limit_from_header_and_while_decoding(speech: np.ndarray) -> None:
    long = np.tile(speech, 10)  # ~29 s
    with pytest.raises(AudioError) as err:
        decode_audio(encode(long, "flac"), max_bytes=1 << 30, max_seconds=10)
    assert err.value.code == "audio_too_long" and "limit is 10 s" in err.value.message
    # a stream that declares no duration (webm) is stopped while decoding
    with pytest.raises(AudioError) as err:
        decode_audio(encode(long, "webm"), max_bytes=1 << 30, max_seconds=10)
    assert err.value.code == "audio_too_long"


def test_limits_come_from_the_caller_only(monkeypatch, speech: np.ndarray) -> None:
    """Without limits from the caller there are none: the settings (here a 1 s limit in the environment) are
    the gateway's to pass, never read by the decoder."""
    from lalm.config import get_settings

    monkeypatch.setenv("LALM_MAX_AUDIO_SECONDS", "1")
    monkeypatch.setenv("LALM_MAX_UPLOAD_BYTES", "10")
    get_settings.cache_clear()
    try:
        data = encode(speech, "wav")
        assert decode_audio(data).duration > 2
        assert decode_audio(io.BytesIO(data)).duration > 2
        with pytest.raises(AudioError) as err:
            decode_audio(data, max_seconds=1)
        assert err.value.code == "audio_too_long"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("fmt", ["flac", "mp3", "mkv"])
def test_peak_memory_is_about_twice_the_output(tmp_path, fmt: str) -> None:
    """Decoding streams packets: Python-side peak stays ~2x the decoded float32 array, whatever the
    container (chunks plus the final array; no whole-file intermediate copies)."""
    rng = np.random.default_rng(0)
    samples = (0.1 * rng.standard_normal(SAMPLE_RATE * 120)).astype(np.float32)  # 2 minutes
    path = tmp_path / f"long.{fmt}"
    path.write_bytes(encode(samples, fmt))
    tracemalloc.start()
    audio = decode_audio(path, **NO_LIMIT)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= 2.3 * audio.samples.nbytes, f"peak {peak / 1e6:.1f} MB for {audio.samples.nbytes / 1e6:.1f} MB"
