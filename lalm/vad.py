"""Voice-activity detection (VAD): where in a recording someone speaks.

The detector is Silero VAD (github.com/snakers4/silero-vad, MIT): the v6 network as an ONNX file, the copy
faster-whisper ships (`faster_whisper/assets/silero_vad_v6.onnx`; no download, no torch), run by lalm's own
onnxruntime session, so nothing here depends on how faster-whisper drives it. The network scores 32 ms frames
(512 samples at 16 kHz, each seen with the 64 samples before it) with a speech probability; a recurrent state
(`h`, `c`) carries context from frame to frame.

- `SileroVAD` / `load_model`: the network in an onnxruntime session, its inputs checked when it is loaded.
- `frame_probabilities`: the per-frame speech probabilities of a recording.
- `speech_segments`: speech spans in seconds, Silero's rules (threshold with hysteresis, minimum silence,
  minimum speech, padding), as faster-whisper 1.2's `get_speech_timestamps` applies them.
- `speech_probability`: one number for a clip (used for `no_speech_prob = 1 - speech_probability`).
- `StreamingVAD`: the same detector on live audio, fed chunk by chunk, reporting speech starts and stops
  (after Silero's own `VADIterator`).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Literal

import numpy as np

from lalm.audio import SAMPLE_RATE
from lalm.errors import LalmError

__all__ = ["FRAME", "SileroVAD", "StreamingVAD", "VadEvent", "VadOptions", "bundled_model_path",
           "frame_probabilities", "load_model", "speech_probability", "speech_segments"]

FRAME = 512  # samples the model scores at once at 16 kHz (32 ms)
_CONTEXT = 64  # samples of the previous frame the model sees with each frame
_STATE = [1, 1, 128]  # shape of each LSTM state tensor, h and c
# Frames per onnxruntime call (320 s): bounds the memory of one call on long recordings; faster-whisper's
# batch too, so long recordings are scored in the same pieces as before.
_BATCH = 10_000
# A clip holds speech if some stretch this long (in frames: ~250 ms) is scored as speech on average.
_SPEECH_SPAN_FRAMES = 8


def bundled_model_path() -> Path:
    """The Silero v6 ONNX file installed with faster-whisper (found from its distribution's file list, without
    importing it). Raises LalmError (500, vad_model_missing) when faster-whisper is not installed."""
    try:
        return Path(distribution("faster-whisper").locate_file("faster_whisper/assets/silero_vad_v6.onnx"))
    except PackageNotFoundError as exc:
        raise LalmError("the Silero VAD model ships in faster-whisper, which is not installed; install it or pass "
                        "the path of silero_vad_v6.onnx to lalm.vad.load_model", status=500,
                        code="vad_model_missing") from exc


def _invalid(path: Path, why: str) -> LalmError:
    return LalmError(f"{path} is not a Silero VAD v6 model lalm can drive: {why}", status=500,
                     code="vad_model_invalid")


class SileroVAD:
    """Silero VAD's network from the ONNX file at `path`, in an onnxruntime session on one CPU thread.

    The file must take `input` (frames, 576) float32 (each 512-sample frame after the 64 samples before it)
    and the LSTM state `h`, `c` (1, 1, 128) float32, and return (one speech probability per frame, h, c): the
    layout of Silero v6 as faster-whisper ships it, which the frames run through in order (the batch axis is
    time). Raises LalmError (500, vad_model_invalid) naming the file when it cannot be loaded or is laid out
    otherwise, so a different model file fails at load, not with wrong probabilities."""

    def __init__(self, path: str | os.PathLike) -> None:
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise _invalid(self.path, "no such file")
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 4  # load errors surface as the exception below, not as log lines too
        try:
            self._session = onnxruntime.InferenceSession(str(self.path), sess_options=options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's load errors (InvalidProtobuf, Fail, ...) derive from Exception
            raise _invalid(self.path, f"onnxruntime cannot load it ({exc})") from exc
        self._check_layout()

    def _check_layout(self) -> None:
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = self._session.get_outputs()
        expected = "inputs input (n, 576), h (1, 1, 128), c (1, 1, 128); outputs (n,), (1, 1, 128), (1, 1, 128)"
        found = (f"inputs {', '.join(f'{i.name} {i.shape}' for i in inputs.values())}; "
                 f"outputs {', '.join(str(o.shape) for o in outputs)}")
        layout_ok = (
            set(inputs) == {"input", "h", "c"}
            and all(i.type == "tensor(float)" for i in inputs.values())
            and len(inputs["input"].shape) == 2 and inputs["input"].shape[1] == FRAME + _CONTEXT
            and inputs["h"].shape == _STATE and inputs["c"].shape == _STATE
            and len(outputs) == 3 and len(outputs[0].shape) == 1
            and outputs[1].shape == _STATE and outputs[2].shape == _STATE)
        if not layout_ok:
            raise _invalid(self.path, f"expected {expected}, found {found}")

    @staticmethod
    def initial_state() -> tuple[np.ndarray, np.ndarray]:
        """The LSTM state (h, c) before the first frame: zeros of shape (1, 1, 128)."""
        return np.zeros(_STATE, np.float32), np.zeros(_STATE, np.float32)

    def score(self, frames: np.ndarray, context: np.ndarray,
              state: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Speech probabilities of consecutive `frames` (n, 512) float32 at 16 kHz, which follow the 64
        samples `context` (zeros at the start of a stream) and the state `state` (`initial_state()` at the
        start). Returns (probabilities (n,), the context and the state to continue with)."""
        if len(frames) == 0:
            return np.zeros(0, np.float32), context, state
        with_context = np.empty((len(frames), _CONTEXT + FRAME), np.float32)
        with_context[:, _CONTEXT:] = frames
        with_context[0, :_CONTEXT] = context
        with_context[1:, :_CONTEXT] = frames[:-1, -_CONTEXT:]
        h, c = state
        probs = []
        for i in range(0, len(frames), _BATCH):
            p, h, c = self._session.run(None, {"input": with_context[i:i + _BATCH], "h": h, "c": c})
            probs.append(np.asarray(p, np.float32).reshape(-1))
        return np.concatenate(probs), frames[-1, -_CONTEXT:].copy(), (h, c)


@functools.lru_cache(maxsize=4)
def load_model(path: str | os.PathLike | None = None) -> SileroVAD:
    """The `SileroVAD` of `path` (default `bundled_model_path()`), loaded once per process and path."""
    return SileroVAD(path if path is not None else bundled_model_path())


@dataclass(frozen=True)
class VadOptions:
    """Silero's rules for cutting a recording into speech (the fields of faster-whisper's `VadOptions`),
    with lalm's defaults: Silero's own threshold, a silence long enough that a sentence's inner pauses do not
    split it, padding enough that no word's onset or tail is clipped."""

    threshold: float = 0.5  # a frame at or above it is speech
    neg_threshold: float | None = None  # below it, silence; None: threshold - 0.15 (at least 0.01)
    min_speech_duration_ms: float = 250  # shorter speech is dropped
    max_speech_duration_s: float = math.inf  # longer speech is split, at a pause of >= 98 ms if there is one
    min_silence_duration_ms: float = 300  # silence that ends speech
    speech_pad_ms: float = 200  # added on each side of a span (half the gap where two spans are closer)


def _at_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    samples = np.asarray(samples, np.float32)
    if samples.ndim != 1:
        raise ValueError(f"samples must be one channel (1-D), got shape {samples.shape}")
    if sample_rate == SAMPLE_RATE:
        return samples
    import soxr

    return soxr.resample(samples, sample_rate, SAMPLE_RATE).astype(np.float32)


def _score_padded(audio: np.ndarray, padding: int, model: SileroVAD) -> np.ndarray:
    frames = np.pad(audio, (0, padding)).reshape(-1, FRAME)
    probs, _, _ = model.score(frames, np.zeros(_CONTEXT, np.float32), model.initial_state())
    return probs


def frame_probabilities(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
                        model: SileroVAD | None = None) -> np.ndarray:
    """Speech probability of each 32 ms frame of `samples` (mono float32 at `sample_rate` Hz; resampled to
    16 kHz), the last frame padded with zeros. Returns shape (ceil(n / 512),) in [0, 1]; frame i covers
    seconds [i * 0.032, (i + 1) * 0.032). `model`: default `load_model()`. Raises ValueError on
    multi-channel input."""
    audio = _at_16k(samples, sample_rate)
    return _score_padded(audio, -len(audio) % FRAME, model or load_model())


def speech_segments(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *, model: SileroVAD | None = None,
                    **options: float) -> list[tuple[float, float]]:
    """Speech spans of `samples` (mono float32 at `sample_rate` Hz), in seconds from its start, in order and
    not overlapping. `options` are `VadOptions`' fields (Silero's: `threshold`, `neg_threshold`,
    `min_speech_duration_ms`, `min_silence_duration_ms`, `speech_pad_ms`, `max_speech_duration_s`), lalm's
    defaults for the rest. `model`: default `load_model()`. Raises TypeError on an unknown option, ValueError
    on multi-channel input."""
    rules = VadOptions(**options)
    audio = _at_16k(samples, sample_rate)
    if len(audio) == 0:
        return []
    # faster-whisper's framing: always some padding, so audio that fills its last frame is followed by a
    # frame of silence; kept so the spans are those faster-whisper's `get_speech_timestamps` gives
    probs = _score_padded(audio, FRAME - len(audio) % FRAME, model or load_model())
    return [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in _speech_spans(probs, len(audio), rules)]


def _speech_spans(probs: np.ndarray, n_samples: int, o: VadOptions) -> list[list[int]]:
    """Silero's rules (faster-whisper 1.2's `get_speech_timestamps`, line for line) over frame
    probabilities: [start, end) sample spans of `n_samples` of audio, padded."""
    neg_threshold = o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)
    min_speech = SAMPLE_RATE * o.min_speech_duration_ms / 1000
    pad = SAMPLE_RATE * o.speech_pad_ms / 1000
    max_speech = SAMPLE_RATE * o.max_speech_duration_s - FRAME - 2 * pad
    min_silence = SAMPLE_RATE * o.min_silence_duration_ms / 1000
    min_silence_at_max_speech = SAMPLE_RATE * 98 / 1000  # a pause where over-long speech may be split
    spans: list[list[int]] = []
    triggered = False
    start = temp_end = prev_end = next_start = 0  # temp_end: where a silence began (0: none open)
    for i, p in enumerate(probs):
        at = FRAME * i
        if p >= o.threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = at
        if p >= o.threshold and not triggered:
            triggered, start = True, at
            continue
        if triggered and at - start > max_speech:
            if prev_end:  # split at the last long enough pause
                spans.append([start, prev_end])
                if next_start < prev_end:
                    triggered = False
                else:
                    start = next_start
                prev_end = next_start = temp_end = 0
            else:  # no pause: split right here
                spans.append([start, at])
                prev_end = next_start = temp_end = 0
                triggered = False
                continue
        if p < neg_threshold and triggered:
            if not temp_end:
                temp_end = at
            if at - temp_end > min_silence_at_max_speech:
                prev_end = temp_end
            if at - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                spans.append([start, temp_end])
            prev_end = next_start = temp_end = 0
            triggered = False
    if triggered and n_samples - start > min_speech:
        spans.append([start, n_samples])
    for i, span in enumerate(spans):
        if i == 0:
            span[0] = int(max(0, span[0] - pad))
        if i == len(spans) - 1:
            span[1] = int(min(n_samples, span[1] + pad))
            continue
        gap = spans[i + 1][0] - span[1]
        if gap < 2 * pad:  # too close for a full pad each: split the gap
            span[1] += int(gap // 2)
            spans[i + 1][0] = int(max(0, spans[i + 1][0] - gap // 2))
        else:
            span[1] = int(min(n_samples, span[1] + pad))
            spans[i + 1][0] = int(max(0, spans[i + 1][0] - pad))
    return spans


def speech_probability(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
                       model: SileroVAD | None = None) -> float:
    """How likely `samples` hold speech, in [0, 1]: the highest mean frame probability over any ~250 ms
    stretch (the whole clip if shorter). A clip that is mostly pause around one sentence still scores high;
    noise, music and silence score low. 0.0 for an empty clip."""
    probs = frame_probabilities(samples, sample_rate, model=model)
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
    stream, however it is chunked. Rules after Silero's `VADIterator`. `model`: default `load_model()`.
    """

    def __init__(self, *, threshold: float = 0.5, min_silence_ms: float = 300.0, speech_pad_ms: float = 100.0,
                 model: SileroVAD | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if min_silence_ms < 0 or speech_pad_ms < 0:
            raise ValueError("min_silence_ms and speech_pad_ms must be >= 0")
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.min_silence = int(min_silence_ms * SAMPLE_RATE / 1000)
        self.pad = int(speech_pad_ms * SAMPLE_RATE / 1000)
        self._model = model or load_model()
        self._state = self._model.initial_state()
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
        probs, self._context, self._state = self._model.score(audio[:whole].reshape(-1, FRAME), self._context,
                                                              self._state)
        events = []
        for p in probs:
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
