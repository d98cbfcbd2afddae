"""Voice-activity detection (VAD): where in a recording someone speaks.

The detector is Silero VAD (github.com/snakers4/silero-vad, MIT) run through onnxruntime, with the model and
the speech-timestamp rules that faster-whisper bundles (`faster_whisper/assets/silero_vad_v6.onnx`,
`faster_whisper.vad.get_speech_timestamps`): no download, no torch. The network scores 32 ms frames (512
samples at 16 kHz, each seen with the 64 samples before it) with a speech probability; a recurrent state
carries context from frame to frame.

- `frame_probabilities`: the per-frame speech probabilities of a recording.
- `speech_segments`: speech spans in seconds, Silero's rules (threshold with hysteresis, minimum silence,
  minimum speech, padding).
- `speech_probability`: one number for a clip (used for `no_speech_prob = 1 - speech_probability`).
- `StreamingVAD`: the same detector on live audio, fed chunk by chunk, reporting speech starts and stops
  (after Silero's own `VADIterator`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from lalm.audio import SAMPLE_RATE

__all__ = ["FRAME", "StreamingVAD", "VadEvent", "frame_probabilities", "speech_probability", "speech_segments"]

FRAME = 512  # samples the model scores at once at 16 kHz (32 ms)
_CONTEXT = 64  # samples of the previous frame the model sees with each frame
# Defaults for cutting a recording into speech: Silero's own threshold, and a silence long enough that a
# sentence's inner pauses do not split it, padding enough that no word's onset or tail is clipped.
DEFAULTS = {"threshold": 0.5, "min_speech_duration_ms": 250, "min_silence_duration_ms": 300, "speech_pad_ms": 200}
# A clip holds speech if some stretch this long (in frames: ~250 ms) is scored as speech on average.
_SPEECH_SPAN_FRAMES = 8


def _at_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    samples = np.asarray(samples, np.float32)
    if samples.ndim != 1:
        raise ValueError(f"samples must be one channel (1-D), got shape {samples.shape}")
    if sample_rate == SAMPLE_RATE:
        return samples
    import soxr

    return soxr.resample(samples, sample_rate, SAMPLE_RATE).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _session():
    """The onnxruntime session of faster-whisper's Silero model (one thread, loaded once per process)."""
    return get_vad_model().session


def frame_probabilities(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speech probability of each 32 ms frame of `samples` (mono float32 at `sample_rate` Hz; resampled to
    16 kHz). Returns shape (ceil(n / 512),) in [0, 1]; frame i covers seconds [i * 0.032, (i + 1) * 0.032)."""
    audio = _at_16k(samples, sample_rate)
    if len(audio) == 0:
        return np.zeros(0, np.float32)
    padded = np.pad(audio, (0, -len(audio) % FRAME))
    return np.asarray(get_vad_model()(padded), np.float32).reshape(-1)


def speech_segments(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, **options: float) -> list[tuple[float, float]]:
    """Speech spans of `samples` (mono float32 at `sample_rate` Hz), in seconds from its start, in order and
    not overlapping. `options` are Silero's (`faster_whisper.vad.VadOptions`): `threshold` (0.5),
    `neg_threshold`, `min_speech_duration_ms` (250), `min_silence_duration_ms` (300), `speech_pad_ms`
    (200), `max_speech_duration_s`; lalm's defaults are in `DEFAULTS`. Raises TypeError on an unknown
    option, ValueError on multi-channel input."""
    audio = _at_16k(samples, sample_rate)
    if len(audio) == 0:
        return []
    spans = get_speech_timestamps(audio, VadOptions(**{**DEFAULTS, **options}), sampling_rate=SAMPLE_RATE)
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in spans]


def speech_probability(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """How likely `samples` hold speech, in [0, 1]: the highest mean frame probability over any ~250 ms
    stretch (the whole clip if shorter). A clip that is mostly pause around one sentence still scores high;
    noise, music and silence score low. 0.0 for an empty clip."""
    probs = frame_probabilities(samples, sample_rate)
    if len(probs) == 0:
        return 0.0
    span = min(_SPEECH_SPAN_FRAMES, len(probs))
    means = np.convolve(probs, np.full(span, 1.0 / span), mode="valid")
    return float(np.clip(means.max(), 0.0, 1.0))


@dataclass(frozen=True)
class VadEvent:
    """A change in a live stream: speech started or stopped at `time` seconds from the stream's start.
    Unpacks as a tuple: `kind, time = event`."""

    kind: Literal["speech_started", "speech_stopped"]
    time: float

    def __iter__(self):
        return iter((self.kind, self.time))


class StreamingVAD:
    """Silero VAD on live 16 kHz audio, fed in chunks of any size.

    `feed(chunk)` returns the `VadEvent`s that chunk completes: `speech_started` at the first frame whose
    probability reaches `threshold` (moved `speech_pad_ms` earlier), `speech_stopped` once the probability
    has stayed below `threshold - 0.15` for `min_silence_ms` (at the start of that silence plus
    `speech_pad_ms`). `finish()` closes speech still open at the end of the stream. Starts and stops
    alternate, and times never decrease. The frame probabilities equal `frame_probabilities` of the whole
    stream, however it is chunked. Rules after Silero's `VADIterator`.
    """

    def __init__(self, *, threshold: float = 0.5, min_silence_ms: float = 300.0, speech_pad_ms: float = 100.0) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if min_silence_ms < 0 or speech_pad_ms < 0:
            raise ValueError("min_silence_ms and speech_pad_ms must be >= 0")
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.min_silence = int(min_silence_ms * SAMPLE_RATE / 1000)
        self.pad = int(speech_pad_ms * SAMPLE_RATE / 1000)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)
        self._rest = np.zeros(0, np.float32)
        self._position = 0  # samples scored so far
        self._last_event = 0  # sample of the last event, so a padded start never precedes the last stop
        self.speaking = False
        self._silence_from: int | None = None

    def feed(self, chunk: np.ndarray) -> list[VadEvent]:
        """Add 16 kHz mono float32 samples; return the events they complete, in order."""
        audio = np.concatenate([self._rest, np.asarray(chunk, np.float32).reshape(-1)])
        whole = len(audio) - len(audio) % FRAME
        self._rest = audio[whole:]
        if whole == 0:
            return []
        frames = audio[:whole].reshape(-1, FRAME)
        contexts = np.concatenate([self._context[None], frames[:-1, -_CONTEXT:]])
        self._context = frames[-1, -_CONTEXT:].copy()
        probs, self._h, self._c = _session().run(
            None, {"input": np.concatenate([contexts, frames], axis=1), "h": self._h, "c": self._c})
        events = []
        for p in np.asarray(probs).reshape(-1):
            events += self._step(float(p))
        return events

    def finish(self) -> list[VadEvent]:
        """End of stream: a `speech_stopped` at its end if speech is still open, else nothing."""
        if not self.speaking:
            return []
        self.speaking = False
        end = self._position + len(self._rest)
        return [self._event("speech_stopped", end)]

    def _event(self, kind: Literal["speech_started", "speech_stopped"], sample: int) -> VadEvent:
        sample = max(sample, self._last_event)
        self._last_event = sample
        return VadEvent(kind, sample / SAMPLE_RATE)

    def _step(self, p: float) -> list[VadEvent]:
        start = self._position
        self._position += FRAME
        if p >= self.threshold:
            self._silence_from = None
            if not self.speaking:
                self.speaking = True
                return [self._event("speech_started", max(0, start - self.pad))]
        elif p < self.neg_threshold and self.speaking:
            if self._silence_from is None:
                self._silence_from = start
            if self._position - self._silence_from >= self.min_silence:
                self.speaking = False
                stop = min(self._silence_from + self.pad, self._position)
                self._silence_from = None
                return [self._event("speech_stopped", stop)]
        return []
