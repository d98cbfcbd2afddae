"""One SFT step and one DPO step on the tiny checkpoint: a finite loss is logged and only the LoRA weights
(and a projector trained in full) change; merging an adapter gives the same logits as applying it."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from lalm.modeling.checkpoint import check_checkpoint, load_checkpoint
from lalm.train_dpo.collator import AudioPreferenceCollator
from lalm.train_dpo.dpo import pairs_dataset
from lalm.train_dpo.merge import load_with_adapter, merge_adapter
from lalm.train_dpo.model_args import save_trained
from lalm.train_dpo.sft import build_sft_trainer
from lalm.train_dpo.sft import parse_args as sft_args


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


def _logged_losses(trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_dpo_step_changes_only_lora_weights(dpo_step) -> None:
    trainer, before, adapter = dpo_step.trainer, dpo_step.before, dpo_step.adapter
    losses = _logged_losses(trainer)
    assert len(losses) == 1 and math.isfinite(losses[0])
    changed = _changed(trainer.model, before)
    assert changed, "the step changed nothing"
    assert all(".lora_" in n and "language_model" in n for n in changed), sorted(changed)[:5]
    # LoRA B starts at zero, so the first step moves every B matrix (A gets no gradient yet)
    lora_b = {n for n in before if ".lora_B." in n}
    assert lora_b and lora_b <= changed
    assert not any("audio_tower" in n for n in before if ".lora_" in n)  # the encoder gets no adapters
    assert (adapter / "adapter_model.safetensors").is_file()


def test_sft_step_changes_only_lora_and_projector(tiny_model: Path, clips: Path, tmp_path: Path,
                                                  one_step_argv) -> None:
    sargs, margs, targs = sft_args(one_step_argv(tiny_model, tmp_path / "sft", "--train_manifest", str(clips),
                                                 "--projector", "full"))
    trainer, processor = build_sft_trainer(sargs, margs, targs)
    before = _snapshot(trainer.model)
    trainer.train()
    losses = _logged_losses(trainer)
    assert len(losses) == 1 and math.isfinite(losses[0]) and losses[0] > 0
    changed = _changed(trainer.model, before)
    lora = {n for n in changed if ".lora_" in n}
    projector = {n for n in changed if "multi_modal_projector.modules_to_save" in n}
    assert lora and projector and changed == lora | projector
    assert all("language_model" in n for n in lora)

    # the adapter folder carries the trained projector, and merging puts it into the checkpoint
    adapter = save_trained(trainer, processor, margs, tmp_path / "sft")
    merged = merge_adapter(adapter, tmp_path / "merged")
    merged_model, _ = load_checkpoint(merged)
    trained = dict(trainer.model.named_parameters())
    got = merged_model.model.multi_modal_projector.linear.weight
    want = trained["base_model.model.model.multi_modal_projector.modules_to_save.default.linear.weight"]
    assert torch.equal(got, want.detach())
    original = load_checkpoint(tiny_model)[0].model.multi_modal_projector.linear.weight
    assert not torch.equal(got, original)


def test_merged_logits_equal_the_adapter_applied_model(dpo_step, tiny_model: Path, pairs: Path) -> None:
    check_checkpoint(dpo_step.merged)
    with_adapter, processor = load_with_adapter(dpo_step.adapter)
    merged, _ = load_checkpoint(dpo_step.merged)
    plain, _ = load_checkpoint(tiny_model)
    batch = AudioPreferenceCollator(processor)(list(pairs_dataset(pairs).select(range(3))))
    inputs = {k: v for k, v in batch.items() if k != "completion_mask"}
    with torch.no_grad():
        a, m, p = (model(**inputs).logits for model in (with_adapter, merged, plain))
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(m[real], a[real], rtol=1e-4, atol=1e-4)  # float32 rounding of W + BA
    assert (a[real] - p[real]).abs().max() > 1e-2  # the adapter does change the model, far beyond rounding
