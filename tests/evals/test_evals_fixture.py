"""The offline dataset: AIR-Bench's layout, known answers, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def test_deterministic_for_a_seed(airbench_root: Path, tmp_path: Path) -> None:
    assert _digest(make_fixture(tmp_path / "same", seed=0, per_task=2)) == _digest(airbench_root)
    other = make_fixture(tmp_path / "other", seed=1, per_task=2)
    assert load_meta(other, "foundation") != load_meta(airbench_root, "foundation")
