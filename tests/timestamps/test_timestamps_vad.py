"""lalm.vad (Silero VAD through onnxruntime) on espeak-ng speech, silence, noise and tones made at test time."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lalm import vad
from lalm.synth import espeak

SR = 16000


def _noise(seconds: float, amplitude: float = 0.05, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, amplitude, int(seconds * SR))).astype(np.float32)


def _chord(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.1 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))).astype(np.float32)


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Silence, a sentence, noise, a chord, another sentence, silence; with the sentences' spans in s."""
    a = espeak("The quick brown fox jumps over the lazy dog.")
    b = espeak("Please call Stella and ask her to bring these things.", voice="en-us+f3")
    parts = [np.zeros(SR, np.float32), a, _noise(2.0), _chord(2.0), b, np.zeros(SR, np.float32)]
    starts = np.cumsum([0] + [len(p) for p in parts]) / SR
    return np.concatenate(parts), [(starts[1], starts[2]), (starts[4], starts[5])]


def _overlap(spans: list[tuple[float, float]], a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in spans)


def test_speech_segments_cover_the_speech_and_not_the_noise(scene) -> None:
    audio, truth = scene
    spans = vad.speech_segments(audio)
    assert spans == sorted(spans) and all(s < e for s, e in spans)
    assert all(e0 <= s1 for (_, e0), (s1, _) in itertools.pairwise(spans))
    speech_seconds = sum(e - s for s, e in truth)
    assert sum(_overlap(spans, s, e) for s, e in truth) >= 0.95 * speech_seconds
    # between the sentences lie 4 s of noise and a chord: at most the padding of each side is sent
    noise_from, noise_to = truth[0][1], truth[1][0]
    assert _overlap(spans, noise_from, noise_to) <= 0.6


@pytest.mark.parametrize("clip", ["silence", "noise", "chord"])
def test_non_speech_has_no_segments_and_low_probability(clip: str) -> None:
    audio = {"silence": np.zeros(3 * SR, np.float32), "noise": _noise(3.0, 0.1), "chord": _chord(3.0)}[clip]
    assert vad.speech_segments(audio) == []
    assert vad.speech_probability(audio) < 0.2


def test_speech_probability_is_high_for_speech_with_pauses(speech) -> None:
    padded = np.concatenate([np.zeros(2 * SR, np.float32), speech, np.zeros(2 * SR, np.float32)])
    assert vad.speech_probability(padded) > 0.8
    assert vad.speech_probability(np.zeros(0, np.float32)) == 0.0


def test_other_sample_rates_are_resampled(speech) -> None:
    import soxr

    at_8k = soxr.resample(np.concatenate([np.zeros(SR, np.float32), speech]), SR, 8000).astype(np.float32)
    (start, end), = vad.speech_segments(at_8k, sample_rate=8000, min_silence_duration_ms=1000)
    assert abs(start - 1.0) < 0.4 and abs(end - (1 + len(speech) / SR)) < 0.5


def test_options_are_silero_options(scene) -> None:
    audio, _ = scene
    assert len(vad.speech_segments(audio, threshold=0.99)) <= len(vad.speech_segments(audio, threshold=0.3))
    with pytest.raises(TypeError):
        vad.speech_segments(audio, no_such_option=1)
    with pytest.raises(ValueError, match="one channel"):
        vad.speech_segments(np.zeros((2, SR), np.float32))


def _stream(audio: np.ndarray, chunk: int, **options) -> list[tuple[str, float]]:
    detector = vad.StreamingVAD(**options)
    events = []
    for i in range(0, len(audio), chunk):
        events += detector.feed(audio[i:i + chunk])
    return [tuple(e) for e in events + detector.finish()]


def test_streaming_events_follow_the_speech_whatever_the_chunk_size(scene) -> None:
    audio, truth = scene
    events = _stream(audio, 320)
    assert events == _stream(audio, 4096) == _stream(audio, len(audio))
    kinds = [k for k, _ in events]
    assert kinds == ["speech_started", "speech_stopped"] * (len(kinds) // 2) and kinds
    times = [t for _, t in events]
    assert times == sorted(times)
    starts, stops = times[0::2], times[1::2]
    # each sentence starts a speech turn near its onset and ends one near its end
    for s, e in truth:
        assert min(abs(t - s) for t in starts) < 0.3
        assert min(abs(t - e) for t in stops) < 0.6
    # no turn lies inside the noise and chord between the sentences
    assert not any(truth[0][1] + 0.6 < t < truth[1][0] - 0.3 for t in starts)


def test_streaming_closes_open_speech_at_the_end(speech) -> None:
    events = _stream(np.concatenate([np.zeros(SR // 2, np.float32), speech[: SR]]), 1000)
    assert [k for k, _ in events] == ["speech_started", "speech_stopped"]
    assert events[-1][1] == pytest.approx(1.5, abs=0.04)


def test_streaming_options_are_checked() -> None:
    with pytest.raises(ValueError):
        vad.StreamingVAD(threshold=1.5)
    with pytest.raises(ValueError):
        vad.StreamingVAD(min_silence_ms=-1)
