"""lalm.audio on damaged and unusual input that players and FFmpeg's CLI accept: WAV headers with
placeholder sizes, undecodable packets in the middle of a stream and junk a container's demuxer resyncs past
(skipped and counted, in MP3, WebM, MKV, Ogg and MP4, with and without a declared duration), truncated
files told from damaged ones, data URLs with media-type parameters, and audio too short to use (one error
code)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from media import encode, joined_mp3, mp3_with_junk, remux, streaming_wav, tone, with_junk

from lalm.audio import SAMPLE_RATE, AudioError, DecodeReport, decode_audio, decode_base64, decode_chunks

NO_LIMIT = {"max_bytes": 1 << 30, "max_seconds": 1e6}
PLACEHOLDERS = [0, 0xFFFFFFFF]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.dot(a[:n], b[:n]) / (np.linalg.norm(a[:n]) * np.linalg.norm(b[:n]) + 1e-9))


@pytest.mark.parametrize("size", PLACEHOLDERS)
@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (8000, 1), (48000, 1), (16000, 2)])
def test_placeholder_wav_sizes_decode_the_samples_that_are_there(rate: int, channels: int, size: int,
                                                                 speech: np.ndarray, tmp_path) -> None:
    clip = speech[: 2 * SAMPLE_RATE]
    data = streaming_wav(clip, rate=rate, channels=channels, size=size)
    path = tmp_path / "stream.wav"
    path.write_bytes(data)
    for source in (data, path, io.BytesIO(data)):
        audio = decode_audio(source, **NO_LIMIT)
        assert abs(audio.duration - 2.0) < 0.01, (type(source), audio.duration)
        assert _correlation(audio.samples, clip) > 0.95


def test_placeholder_wav_still_obeys_the_length_limit(speech: np.ndarray) -> None:
    data = streaming_wav(speech[: 2 * SAMPLE_RATE], size=0)
    with pytest.raises(AudioError) as err:
        decode_audio(data, max_bytes=1 << 30, max_seconds=1.0)
    assert err.value.code == "audio_too_long"


def test_joined_mp3s_decode_both_halves_and_count_the_bad_packet() -> None:
    ten = tone(10.0)
    audio = decode_audio(joined_mp3(ten), **NO_LIMIT)
    assert abs(audio.duration - 20.0) < 0.3
    assert audio.skipped.skipped_packets >= 1
    assert 0 < audio.skipped.skipped_seconds < 0.2


def test_junk_inside_an_mp3_is_skipped_and_counted() -> None:
    ten = tone(10.0)
    clean = decode_audio(encode(ten, "mp3"), **NO_LIMIT)
    damaged = decode_audio(mp3_with_junk(ten, junk=200), **NO_LIMIT)
    assert clean.skipped == DecodeReport()
    assert damaged.skipped.skipped_packets >= 1
    assert abs(damaged.duration + damaged.skipped.skipped_seconds - clean.duration) < 0.1
    assert damaged.duration > 9.8


def test_streamed_decoding_reports_skips_as_it_goes() -> None:
    report = DecodeReport()
    chunks = list(decode_chunks(mp3_with_junk(tone(10.0)), report=report, **NO_LIMIT))
    assert sum(len(c) for c in chunks) > 9.8 * SAMPLE_RATE
    assert report.skipped_packets >= 1 and report.skipped_seconds > 0


def test_too_little_surviving_audio_is_corrupt() -> None:
    data = encode(tone(10.0), "mp3")
    rng = np.random.default_rng(0)
    # 300 junk bytes after every 400: most packets carry junk and fail to decode
    damaged = data[:2000] + b"".join(data[i:i + 400] + rng.bytes(300) for i in range(2000, len(data), 400))
    with pytest.raises(AudioError) as err:
        decode_audio(damaged, **NO_LIMIT)
    assert err.value.code == "corrupt_audio"
    assert "cannot be decoded" in err.value.message


# Containers whose demuxer jumps over junk to the next cluster / page (no packet fails: only the timestamps
# tell), or whose packets after the junk fail to decode (MP4: its index points at shifted bytes).
CONTAINERS = {
    "webm opus, declared duration": lambda s: encode(s, "webm", video=False),
    "webm opus, no duration (as browsers record)": lambda s: remux(encode(s, "webm", video=False), "webm", live="1"),
    "webm opus + video": lambda s: encode(s, "webm"),
    "mkv flac": lambda s: remux(encode(s, "flac"), "matroska"),
    "mkv flac, no duration": lambda s: remux(encode(s, "flac"), "matroska", live="1"),
    "ogg opus": lambda s: encode(s, "ogg"),
    "mp4 aac, index first": lambda s: remux(encode(s, "mp4", video=False), "mp4", movflags="+faststart"),
}


@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_junk_inside_a_container_is_skipped_and_counted(kind: str) -> None:
    data = CONTAINERS[kind](tone(10.0))
    clean = decode_audio(data)
    assert clean.skipped == DecodeReport()
    damaged = decode_audio(with_junk(data, at=0.7))
    assert damaged.skipped.skipped_packets >= 1
    assert damaged.skipped.skipped_seconds > 0.3
    # what was decoded plus what was skipped is the whole recording: nothing lost without being counted
    assert damaged.duration + damaged.skipped.skipped_seconds == pytest.approx(clean.duration, abs=0.05)
    assert damaged.duration < clean.duration - 0.3


def test_junk_a_webm_demuxer_resyncs_past_is_not_called_truncated() -> None:
    # a 5 s cluster lost to 200 bytes: the data is there, so corrupt-but-usable, not "ends early"
    audio = decode_audio(with_junk(encode(tone(10.0), "webm", video=False), at=0.5))
    assert audio.skipped.skipped_seconds == pytest.approx(4.8, abs=0.1)
    assert audio.duration == pytest.approx(5.2, abs=0.1)


def test_a_recorders_hole_in_the_timestamps_is_reported_not_refused() -> None:
    # 2 s of audio, a 20 s hole (a muted speaker in a WebRTC recording), 3 s more: all 5 s served
    audio = decode_audio(remux(encode(tone(5.0), "webm", video=False), "webm", gap=(2.0, 20.0), live="1"))
    assert audio.duration == pytest.approx(5.0, abs=0.05)
    assert audio.skipped.gap_seconds == pytest.approx(20.0, abs=0.05)
    assert audio.skipped.skipped_seconds == audio.skipped.gap_seconds


@pytest.mark.parametrize("kind", ["webm opus, declared duration", "mkv flac", "mp4 aac, index first"])
def test_a_file_cut_short_of_its_declared_duration_is_truncated(kind: str) -> None:
    # the cut leaves a partial last packet that fails to decode: still truncated, not corrupt
    data = CONTAINERS[kind](tone(10.0))
    with pytest.raises(AudioError) as err:
        decode_audio(data[: int(len(data) * 0.5)])
    assert err.value.code == "truncated_audio"
    assert "declares 10.0 s" in err.value.message


def test_a_container_mostly_undecodable_after_junk_is_corrupt() -> None:
    # junk early in an MP4's samples shifts every later packet off its index: over half cannot be decoded
    data = with_junk(CONTAINERS["mp4 aac, index first"](tone(10.0)), at=0.3)
    with pytest.raises(AudioError) as err:
        decode_audio(data)
    assert err.value.code == "corrupt_audio"
    assert "cannot be decoded" in err.value.message


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "ogg"])
@pytest.mark.parametrize("seconds", [0.0005, 0.03, 0.07])  # codecs pad to their frame size
def test_audio_under_the_minimum_is_too_short_in_every_container(fmt: str, seconds: float) -> None:
    data = encode(tone(seconds), fmt)
    with pytest.raises(AudioError) as err:
        decode_audio(data, min_seconds=0.1, **NO_LIMIT)
    assert err.value.code == "audio_too_short"
    assert "0.1 s" in err.value.message


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_a_wav_without_samples_is_too_short_at_any_rate(rate: int) -> None:
    for size in (0, 44):
        header = streaming_wav(np.zeros(0, np.float32), rate=rate, size=size)
        with pytest.raises(AudioError) as err:
            decode_audio(header, **NO_LIMIT)
        assert err.value.code == "audio_too_short"


def test_audio_at_the_minimum_is_accepted() -> None:
    assert decode_audio(encode(tone(0.15), "wav"), min_seconds=0.1, **NO_LIMIT).duration == pytest.approx(0.15)


@pytest.mark.parametrize("prefix", [
    "data:audio/ogg; codecs=opus;base64,",
    "data:audio/ogg;codecs=opus;base64,",
    'data:audio/webm; codecs="opus" ;base64,',
    "data:audio/ogg ; codecs = opus ; rate=48000; base64 ,",
    "DATA:AUDIO/OGG;CODECS=OPUS;BASE64,",
    "data:;base64,",
    "data:audio/ogg;base64,",
])
def test_data_urls_with_media_type_parameters(prefix: str, speech: np.ndarray) -> None:
    ogg = encode(speech[:SAMPLE_RATE], "ogg")
    audio = decode_base64(prefix + base64.b64encode(ogg).decode(), **NO_LIMIT)
    assert abs(audio.duration - 1.0) < 0.05


@pytest.mark.parametrize("prefix", ["data:audio/ogg;codecs;base64,", "data:audio/ogg; codecs=opus,",
                                    "data:audio/ogg;codecs=\"opus;base64,"])
def test_malformed_data_urls_are_refused(prefix: str, speech: np.ndarray) -> None:
    ogg = encode(speech[:SAMPLE_RATE], "ogg")
    with pytest.raises(AudioError) as err:
        decode_base64(prefix + base64.b64encode(ogg).decode(), **NO_LIMIT)
    assert err.value.code == "invalid_base64"
