"""`lalm train dpo-default-lalm` on the tiny checkpoint: clips of the default model's training side only, pairs
from the model's own samples and the synthetic rejects, one DPO step that moves only the LoRA'd weights, a
merged checkpoint; bad configs are one-line errors. vLLM serving the merged folder: test_train_vllm.py."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from lalm.default_model.corpus import HELD_OUT_VARIANTS
from lalm.default_model.dpo import load_recipe_config, run_dpo_recipe
from lalm.metrics import score_clip
from lalm.tasks import NO_SPEECH
from lalm.train_dpo.data import read_manifest
from lalm.train_dpo.model_args import LORA_TARGETS

ROOT = Path(__file__).parents[2]


def _variant(row) -> str | None:
    voice = row.meta.get("voice", "")
    return voice.split("+", 1)[1] if row.meta.get("engine") == "espeak" else None


def test_clips_are_of_the_training_side_and_the_heldout_manifests_of_the_other(recipe_run) -> None:
    out = recipe_run.outputs
    train = read_manifest(out.train)
    assert len(train) == 4 and all(r.meta["split"] == "train" and r.meta["index"] >= 12000 for r in train)
    assert all(_variant(r) not in HELD_OUT_VARIANTS for r in train)
    speech = read_manifest(out.heldout["speech"])
    assert len(speech) == 2 and all(_variant(r) in HELD_OUT_VARIANTS and r.reference for r in speech)
    quiet = read_manifest(out.heldout["non_speech"])
    assert len(quiet) == 1 and not quiet[0].reference
    assert "real" not in out.heldout  # real_recordings: false
    assert str(out.heldout["speech"]) in recipe_run.stdout  # the command says where they are


def test_pairs_hold_the_models_own_answers_and_the_synthetic_rejects(recipe_run) -> None:
    out = recipe_run.outputs
    rows = read_manifest(out.pairs)
    assert out.pair_counts.get("sampled", 0) > 0 and out.pair_counts.get("synthetic", 0) > 0
    assert sum(out.pair_counts.values()) == len(rows)
    for r in rows:
        assert r.meta["chosen"] == (r.reference or NO_SPEECH)
        assert score_clip(r.reference, r.meta["rejected"]).insertions >= 1


def test_one_dpo_step_moves_only_the_lora_weights_and_merges(recipe_run, tiny_model: Path) -> None:
    out = recipe_run.outputs
    losses = [row["loss"] for row in map(json.loads, (out.adapter.parent / "dpo_log.jsonl").read_text().splitlines())
              if "loss" in row]
    assert len(losses) == 1 and math.isfinite(losses[0])
    adapter = load_file(out.adapter / "adapter_model.safetensors")
    assert adapter and all(".lora_" in k and "language_model" in k for k in adapter)
    base, merged = load_file(tiny_model / "model.safetensors"), load_file(out.merged / "model.safetensors")
    assert base.keys() == merged.keys()
    changed = {k for k in base if not (base[k] == merged[k]).all()}
    targets = {k for k in base if re.fullmatch(LORA_TARGETS + r"\.weight", k)}
    assert targets and changed == targets  # every LoRA'd projection, and nothing else (encoder, projector, norms)


def test_a_rerun_skips_the_stages_that_are_done(recipe_run) -> None:
    weights = recipe_run.outputs.merged / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = run_dpo_recipe(load_recipe_config(recipe_run.config), progress=False, log=lambda _m: None)
    assert again == recipe_run.outputs and weights.stat().st_mtime_ns == before


def test_a_workdir_of_another_config_is_refused(recipe_run) -> None:
    cfg = load_recipe_config(recipe_run.config, train_clips=5)
    with pytest.raises(ValueError, match="train_clips"):
        run_dpo_recipe(cfg, progress=False)


@pytest.mark.parametrize(("text", "message"), [
    ("trian_clips: 4\n", "unknown config keys"),
    ("pairs: {sample: 2}\n", "sample"),
    ("dpo: {output_dir: x}\n", "set by the recipe"),
    ("model: /nonexistent/folder\n", "neither default-lalm nor a checkpoint folder"),
    ("dpo: {max_steps: 2}\nstop_step: 3\n", "stop_step must be a whole number from 1 to dpo.max_steps"),
    ("pairs: {chosen: gold}\n", "chosen must be one of reference, edited"),
])
def test_bad_configs_are_one_line_errors(text: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"workdir: {tmp_path / 'run'}\n{text}")
    run = subprocess.run([sys.executable, "-m", "lalm.cli", "train", "dpo-default-lalm", "--config", str(config)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and message in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_the_shipped_config_parses_into_the_recipe_and_dpo_arguments(tmp_path: Path) -> None:
    import yaml

    from lalm.train_dpo.dpo import parse_args

    cfg = load_recipe_config(ROOT / "configs" / "dpo_default_lalm.yaml")
    assert cfg.model == "default-lalm" and cfg.sampler == "vllm" and cfg.corpus.seed == 0
    assert cfg.first_clip >= 12000 and cfg.pairs.samples > 1 and cfg.pairs.temperature > 0
    args = tmp_path / "dpo.yaml"
    args.write_text(yaml.safe_dump({**cfg.dpo, "model": "m", "train_pairs": "p", "output_dir": str(tmp_path)}))
    _, model, train = parse_args(["--config", str(args)])
    assert model.use_lora and train.loss_type == ["sigmoid", "sft"] and train.max_steps == cfg.dpo["max_steps"]
    assert cfg.stop_step is not None and 1 <= cfg.stop_step < train.max_steps  # stopped inside the schedule
