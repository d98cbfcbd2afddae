"""Fixtures of the training tests: a few synthetic clips (speech and non-speech) and their preference pairs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of 6 short clips: 4 espeak sentences and 2 non-speech clips (empty reference)."""
    from lalm.train_dpo.data import SynthConfig, read_manifest, synth_manifest

    path = synth_manifest(tmp_path_factory.mktemp("clips"), SynthConfig(
        n=6, seed=11, non_speech_share=0.34, festival_share=0.0, tail_share=0.0, max_seconds=5.0,
    ), progress=False)
    rows = read_manifest(path)
    assert any(r.non_speech for r in rows) and any(not r.non_speech for r in rows)
    return path


@pytest.fixture(scope="session")
def pairs(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic preference pairs for `clips` (two rejects per clip)."""
    from lalm.train_dpo.pairs import PairsConfig, make_pairs

    path, _ = make_pairs(clips, tmp_path_factory.mktemp("pairs") / "pairs.jsonl", cfg=PairsConfig(synthetic=2))
    return path


def _one_step_argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size",
            "2", "--logging_steps", "1", "--learning_rate", "1e-2", "--disable_tqdm", "true", *extra]


@pytest.fixture(scope="session")
def one_step_argv() -> Callable[..., list[str]]:
    """`argv(model, out, *extra)`: training flags for one optimizer step of batch 2, at a learning rate large
    enough to move every LoRA B matrix."""
    return _one_step_argv


@dataclass
class DPOStep:
    trainer: Any
    before: dict[str, torch.Tensor]  # every parameter before the step
    adapter: Path  # the saved LoRA adapter
    merged: Path  # the adapter merged into a checkpoint folder


@pytest.fixture(scope="session")
def dpo_step(tiny_model: Path, pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> DPOStep:
    """One DPO step with LoRA and the combined sigmoid + sft loss on the tiny checkpoint, saved and merged."""
    from lalm.train_dpo.dpo import build_dpo_trainer, parse_args
    from lalm.train_dpo.merge import merge_adapter
    from lalm.train_dpo.model_args import save_trained

    out = tmp_path_factory.mktemp("dpo")
    sargs, margs, targs = parse_args(_one_step_argv(tiny_model, out / "adapter", "--train_pairs", str(pairs),
                                                   "--loss_type", "sigmoid", "sft", "--beta", "0.1"))
    assert targs.loss_type == ["sigmoid", "sft"] and targs.max_length is None and not targs.remove_unused_columns
    trainer, processor = build_dpo_trainer(sargs, margs, targs)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    adapter = save_trained(trainer, processor, margs, out / "adapter")
    return DPOStep(trainer, before, adapter, merge_adapter(adapter, out / "merged"))


@dataclass
class RecipeRun:
    config: Path  # the recipe YAML the run used
    stdout: str  # what `lalm train dpo-default-lalm` printed
    outputs: Any  # lalm.default_model.dpo.RecipeOutputs


@pytest.fixture(scope="session")
def recipe_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    """`lalm train dpo-default-lalm` end to end on the tiny checkpoint: 4 training clips of the default model's
    corpus, 2 sampled answers each, one DPO step of batch 2 (a learning rate that moves every LoRA B; the schedule
    spans 3 steps, stop_step ends it after 1), merged.
    `outputs` is what running the recipe again in process returns (every stage done, so nothing reruns)."""
    import subprocess
    import sys

    from lalm.default_model.dpo import load_recipe_config, run_dpo_recipe

    root = tmp_path_factory.mktemp("recipe")
    config = root / "recipe.yaml"
    config.write_text(
        f"model: {tiny_model}\nworkdir: {root / 'run'}\ntrain_clips: 4\nheldout_speech: 2\nheldout_non_speech: 1\n"
        "real_recordings: false\nsampler: transformers\ncorpus: {seed: 0}\n"
        "pairs: {samples: 2, max_tokens: 12, synthetic: 1, max_per_clip: 3}\n"
        "dpo: {max_steps: 3, per_device_train_batch_size: 2, learning_rate: 1.0e-2, logging_steps: 1, "
        "beta: 0.1, loss_type: [sigmoid, sft], disable_tqdm: true}\nstop_step: 1\n")
    run = subprocess.run([sys.executable, "-m", "lalm.cli", "train", "dpo-default-lalm", "--config", str(config),
                          "--no-progress"], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stderr[-4000:]
    outputs = run_dpo_recipe(load_recipe_config(config), progress=False, log=lambda _m: None)
    return RecipeRun(config, run.stdout, outputs)
