"""Flags and YAML for `lalm train sft|dpo` (TRL's parser: lalm's defaults, then the file, then flags), the
shipped example configs, and preference pairs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lalm.metrics import score_clip
from lalm.tasks import NO_SPEECH
from lalm.train_dpo.data import read_manifest
from lalm.train_dpo.dpo import parse_args as dpo_args
from lalm.train_dpo.model_args import LORA_TARGETS, ModelArguments, peft_config
from lalm.train_dpo.pairs import PairsConfig, chosen_answer, make_pairs, synthetic_rejects
from lalm.train_dpo.sft import parse_args as sft_args

ROOT = Path(__file__).parents[2]


def test_yaml_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text("model: m\ntrain_pairs: p.jsonl\nbeta: 0.3\nloss_type: [sigmoid, sft]\nlearning_rate: 1.0e-5\n"
                   "projector: full\n")
    script, model, train = dpo_args(["--config", str(cfg), "--beta", "0.2", "--output_dir", str(tmp_path)])
    assert script.train_pairs == "p.jsonl" and model.model == "m" and model.projector == "full"
    assert train.beta == 0.2  # the flag beats the file
    assert train.loss_type == ["sigmoid", "sft"] and train.learning_rate == 1e-5
    # lalm's defaults for audio: nothing truncated or dropped, no reference log-probs precomputed
    assert train.max_length is None and train.remove_unused_columns is False
    assert train.precompute_ref_log_probs is False and train.gradient_checkpointing is False and not train.bf16


def test_bf16_autocast_parses_where_there_is_no_accelerator(tmp_path: Path) -> None:
    import torch

    # transformers refuses bf16 without a GPU unless use_cpu is set; lalm sets it only where there is no CUDA or
    # Apple (MPS) device
    _, _, train = dpo_args(["--model", "m", "--train_pairs", "p", "--output_dir", str(tmp_path), "--bf16", "true"])
    accelerator = torch.cuda.is_available() or torch.backends.mps.is_available()
    assert train.bf16 and train.use_cpu == (not accelerator)


@pytest.mark.parametrize("name", ["sft", "dpo"])
def test_shipped_configs_parse(name: str) -> None:
    parse = sft_args if name == "sft" else dpo_args
    _, model, train = parse(["--config", str(ROOT / "configs" / f"{name}.yaml")])
    assert model.use_lora and model.lora_target_modules == LORA_TARGETS
    assert train.output_dir == f"runs/{name}"
    if name == "dpo":
        assert train.loss_type == ["sigmoid", "sft"] and train.loss_weights == [1.0, 0.5]


def test_lora_regex_targets_only_the_language_model(tiny_model: Path) -> None:
    from peft import get_peft_model

    from lalm.modeling.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_model)
    names = {n for n, _ in model.named_modules()}
    assert any("audio_tower" in n and n.endswith("q_proj") for n in names)  # the encoder has q_proj too
    peft = get_peft_model(model, peft_config(ModelArguments(model="x", projector="lora")))
    wrapped = {n.split(".lora_A")[0] for n, _ in peft.named_parameters() if ".lora_A." in n}
    assert wrapped and not any("audio_tower" in n for n in wrapped)
    assert {n.rsplit(".", 1)[-1] for n in wrapped} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                      "up_proj", "down_proj", "linear"}
    assert any("multi_modal_projector" in n for n in wrapped)


def test_bad_model_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="projector"):
        ModelArguments(projector="half")
    with pytest.raises(ValueError, match="nothing to train"):
        ModelArguments(use_lora=False)
    with pytest.raises(ValueError, match="use_lora false"):
        ModelArguments(train_all=True)


def test_train_help_lists_trl_fields() -> None:
    out = subprocess.run([sys.executable, "-m", "lalm.cli", "train", "dpo", "--help"], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout
    assert "lalm train dpo" in out and "--loss_type" in out and "--train_pairs" in out and "--projector" in out


def test_synthetic_rejects_all_insert_words() -> None:
    rng = np.random.default_rng(0)
    ref = "the quick brown fox jumps"
    rejects = synthetic_rejects(ref, rng, n=6)
    assert len(rejects) >= 3 and len({t for t, _ in rejects}) == len(rejects)
    assert {k for _, k in rejects} <= {"appended", "inserted", "repetition"}
    for text, _ in rejects:
        s = score_clip(ref, text)
        assert s.insertions >= 1 and s.deletions == 0 and s.substitutions == 0  # the words said all stay
    silent = synthetic_rejects("", rng, n=2)
    assert silent and all(score_clip("", t).insertions >= 1 for t, _ in silent)


def test_edited_chosen_differs_from_the_rejected_by_its_insertions_alone() -> None:
    ref = "Keep your laws off my body!"
    assert chosen_answer(ref, "Keep your long tack off my budget.") == ref  # chosen = reference by default
    edited = chosen_answer(ref, "Keep your long tack off my budget.", "edited")
    assert edited == "Keep your tack off my budget."
    assert chosen_answer("", "Thank you.", "edited") == NO_SPEECH
    # "twenty five" against "25": dropping "five" would cost a hit once normalized, so the reference is chosen
    assert chosen_answer("I have 25 apples.", "I have twenty five green apples.", "edited") == "I have 25 apples."
    for bad in (lambda: PairsConfig(chosen="gold"), lambda: chosen_answer(ref, ref + " yes", "gold")):
        with pytest.raises(ValueError, match="chosen must be one of reference, edited"):
            bad()


def test_edited_pairs_from_synthetic_rejects(clips: Path, tmp_path: Path) -> None:
    path, _ = make_pairs(clips, tmp_path / "pairs.jsonl", cfg=PairsConfig(synthetic=2, chosen="edited"))
    rows = read_manifest(path)
    assert any(not r.reference for r in rows) and any(r.reference for r in rows)
    for r in rows:  # a synthetic reject is the reference plus insertions: the edit gives the reference's words
        assert score_clip(r.reference, r.meta["rejected"]).insertions >= 1
        if r.reference:
            assert score_clip(r.reference, r.meta["chosen"]).errors == 0
        else:
            assert r.meta["chosen"] == NO_SPEECH


def test_pairs_cli_refuses_an_unknown_chosen_side(clips: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "lalm.cli", "train", "pairs", "--manifest", str(clips), "--out",
                          str(tmp_path / "p.jsonl"), "--chosen", "gold"], capture_output=True, text=True)
    assert out.returncode == 2 and "chosen must be one of reference, edited" in out.stderr
    assert not (tmp_path / "p.jsonl").exists()


def test_pairs_from_the_models_own_samples(tiny_model: Path, clips: Path, tmp_path: Path) -> None:
    cfg = PairsConfig(samples=2, synthetic=1, max_tokens=12, max_per_clip=3)
    path, counts = make_pairs(clips, tmp_path / "pairs.jsonl", model=tiny_model, cfg=cfg)
    again, _ = make_pairs(clips, tmp_path / "again.jsonl", model=tiny_model, cfg=cfg)
    assert path.read_text().replace(str(tmp_path), "") == again.read_text().replace(str(tmp_path), "")  # seeded
    rows = read_manifest(path)
    clip_rows = read_manifest(clips)
    assert counts.get("sampled", 0) > 0 and counts.get("synthetic", 0) > 0
    assert sum(counts.values()) == len(rows)
    for r in rows:
        assert r.meta["chosen"] == (r.reference or NO_SPEECH)
        assert score_clip(r.reference, r.meta["rejected"]).insertions >= 1
        assert r.meta["source"] == "sampled" or r.meta["source"].startswith("synthetic:")
    by_audio = {}
    for r in rows:
        by_audio.setdefault(r.audio, []).append(r)
    assert set(by_audio) <= {r.audio for r in clip_rows}
    assert all(len(v) <= 3 for v in by_audio.values())
    # the same answers with edited chosen ones: each the rejected less its insertions, its hits and
    # substitutions kept, so the model's own wrong words stay (chosen != reference)
    edited_path, _ = make_pairs(clips, tmp_path / "edited.jsonl", model=tiny_model,
                                cfg=PairsConfig(samples=2, synthetic=1, max_tokens=12, max_per_clip=3, chosen="edited"))
    edited = read_manifest(edited_path)
    assert [r.meta["rejected"] for r in edited] == [r.meta["rejected"] for r in rows]
    own = [r for r in edited if r.meta["source"] == "sampled" and r.meta["chosen"] != r.reference]
    assert own
    for r in own:
        before, after = score_clip(r.reference, r.meta["rejected"]), score_clip(r.reference, r.meta["chosen"])
        assert after.insertions == 0 and (after.hits, after.substitutions) == (before.hits, before.substitutions)
