"""The offline dataset: AIR-Bench's layout, known answers, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from evals.airbench.aggregate import GROUP_OF_TASK
from evals.airbench.fixture import make_fixture
from evals.airbench.layout import CHAT_FIELDS, FOUNDATION_TASKS, audio_path, load_meta, split_dir
from lalm.audio import decode_audio


def test_layout_matches_air_bench(airbench_root: Path) -> None:
    assert (airbench_root / "Foundation" / "Foundation_meta.json").is_file()
    assert (airbench_root / "Chat" / "Chat_meta.json").is_file()
    assert split_dir(airbench_root / "Chat", "chat") == airbench_root / "Chat"  # --root may be the split itself
    foundation = load_meta(airbench_root, "foundation")
    assert {it["task_name"] for it in foundation} <= set(FOUNDATION_TASKS)
    assert len({it["uniq_id"] for it in foundation}) == len(foundation) == 18
    for item in foundation:
        path = audio_path(airbench_root, "foundation", item)
        assert path.parent.name == f"{item['task_name']}_{item['dataset_name']}"
        assert path.is_file(), path
        assert item["answer_gt"] in [item.get(k) for k in ("choice_a", "choice_b", "choice_c", "choice_d")]
        info = sf.info(path)
        assert info.samplerate == 16000 and info.channels == 1
        assert 0.2 < info.duration <= 30
        if item["task_name"] == "Audio_Grounding":
            assert item["path"].endswith(".wav") and path.suffix == ".flac" and info.format == "FLAC"
            assert not path.with_suffix(".wav").exists()
        if item["task_name"] == "Speaker_Gender_Recognition":
            assert "choice_c" not in item  # a two-choice item
    chat = load_meta(airbench_root, "chat")
    assert {it["task_name"] for it in chat} == set(GROUP_OF_TASK)  # every task of every category
    for item in chat:
        assert set(CHAT_FIELDS) - {"response"} <= set(item)
        decode_audio(audio_path(airbench_root, "chat", item))
    dialogue = next(it for it in chat if it["task_name"] == "speech_dialogue_QA")
    assert [turn["speaker"] for turn in json.loads(dialogue["meta_info"])][:2] == ["speaker 1", "speaker 2"]


def _contents(root: Path) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """(every non-audio file's bytes, every audio file's 16-bit samples), by path relative to `root`."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    texts = {str(p.relative_to(root)): p.read_bytes() for p in files if p.suffix not in (".wav", ".flac")}
    audio = {str(p.relative_to(root)): sf.read(p, dtype="int16")[0] for p in files if p.suffix in (".wav", ".flac")}
    return texts, audio


def test_deterministic_for_a_seed(airbench_root: Path, tmp_path: Path) -> None:
    """A seed fixes the items, their answers, the files and their audio. The audio is compared sample by
    sample to within one 16-bit step rather than byte for byte: it passes through FFmpeg's floating-point
    resampler (espeak-ng's 22.05 kHz and the 44.1 kHz Sonic Pi samples to 16 kHz), whose last bit may differ
    between processes and machines, and a 1-ulp difference rounds to the other 16-bit value now and then."""
    texts, audio = _contents(make_fixture(tmp_path / "same", seed=0, per_task=2))
    texts_ref, audio_ref = _contents(airbench_root)
    assert texts == texts_ref  # meta (questions, choices, answers), README
    assert audio.keys() == audio_ref.keys() and len(audio) == 34
    for name, samples in audio.items():
        ref = audio_ref[name]
        assert samples.shape == ref.shape, name
        assert np.abs(samples.astype(np.int32) - ref).max() <= 1, name
    other = make_fixture(tmp_path / "other", seed=1, per_task=2)
    assert load_meta(other, "foundation") != load_meta(airbench_root, "foundation")
