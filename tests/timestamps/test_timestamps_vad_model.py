"""lalm.vad's own driver of the Silero model file: the same speech probabilities and timestamps as
faster-whisper's `get_speech_timestamps` on real recordings (LibriVox readings from Debian's
pocketsphinx-testdata), another copy of the file accepted, a file laid out otherwise refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime.datasets
import pytest
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from lalm import vad
from lalm.audio import decode_audio
from lalm.errors import LalmError

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def readings() -> np.ndarray:
    """The five LibriVox readings (~26 s), between them pauses of 0.2-1.5 s and quiet noise."""
    rng = np.random.default_rng(0)
    parts = []
    for path in sorted(LIBRIVOX.glob("*.wav")):
        pause = np.zeros(int(rng.uniform(0.2, 1.5) * 16000), np.float32)
        parts += [decode_audio(path).samples, pause, rng.normal(0, 0.02, 8000).astype(np.float32)]
    return np.concatenate(parts)


@pytest.mark.parametrize("options", [
    {},
    {"min_silence_duration_ms": 100, "speech_pad_ms": 30},
    {"max_speech_duration_s": 2.0},
    {"threshold": 0.3, "min_speech_duration_ms": 0, "speech_pad_ms": 400},
    {"threshold": 0.7, "neg_threshold": 0.6, "min_silence_duration_ms": 50},
])
def test_timestamps_are_faster_whispers(readings, options) -> None:
    theirs = get_speech_timestamps(readings, VadOptions(**{**vars(vad.VadOptions()), **options}))
    ours = vad.speech_segments(readings, **options)
    assert len(ours) >= 2
    assert ours == [(s["start"] / 16000, s["end"] / 16000) for s in theirs]


@pytest.mark.parametrize("length", [3 * 512, 16_000, 16_000 + 470, None])
def test_probabilities_are_faster_whispers(readings, length) -> None:
    audio = readings[:length]
    theirs = np.asarray(get_vad_model()(np.pad(audio, (0, -len(audio) % 512)))).reshape(-1)
    ours = vad.frame_probabilities(audio)
    assert ours.shape == theirs.shape
    # faster-whisper scores its last frame with that frame's last 64 samples zeroed (it writes a context of
    # zeros into the audio); lalm scores the samples as they are, as StreamingVAD does
    np.testing.assert_allclose(ours[:-1], theirs[:-1], atol=1e-6)


def test_another_copy_of_the_model_file_can_be_passed(readings, tmp_path) -> None:
    copy = tmp_path / "silero.onnx"
    shutil.copyfile(vad.bundled_model_path(), copy)
    model = vad.load_model(copy)
    assert model.path == copy and model is not vad.load_model()
    np.testing.assert_array_equal(vad.frame_probabilities(readings, model=model), vad.frame_probabilities(readings))
    assert vad.speech_segments(readings, model=model) == vad.speech_segments(readings)


def test_a_model_file_laid_out_otherwise_is_refused_by_name(tmp_path) -> None:
    other = Path(onnxruntime.datasets.get_example("sigmoid.onnx"))
    with pytest.raises(LalmError, match=rf"{other}.*expected inputs input \(n, 576\)") as err:
        vad.SileroVAD(other)
    assert err.value.code == "vad_model_invalid" and err.value.status == 500
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(LalmError, match=rf"{garbage}.*onnxruntime cannot load it"):
        vad.SileroVAD(garbage)
    with pytest.raises(LalmError, match=rf"{tmp_path / 'missing.onnx'}.*no such file"):
        vad.SileroVAD(tmp_path / "missing.onnx")
