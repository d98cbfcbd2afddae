"""Direct preference optimisation of a Qwen2-Audio checkpoint against hallucinated insertions, with TRL's
DPOTrainer and the audio preference collator.

The data is a pairs file from `lalm train pairs`: a manifest whose rows also carry `chosen` (the faithful
answer: the reference, or the no-speech answer on non-speech) and `rejected` (an answer with insertions:
the model's own sampled output, or a synthetic one). With LoRA (the default) the reference policy is the
same model with the adapter switched off, so no second copy is held in memory. `--loss_type sigmoid sft`
adds an SFT term on the chosen answers (RPO-style), which keeps the chosen likelihood from sinking.

TRL has no audio path (huggingface/trl#2097), so the rows reach the collator raw: `remove_unused_columns`
is off, nothing is truncated (`max_length` None) and reference log-probs are computed on the fly
(`precompute_ref_log_probs` False): see collator.py.

# LoRA DPO
```bash
lalm train dpo --model runs/sft-merged --train_pairs runs/pairs.jsonl --output_dir runs/dpo \\
    --learning_rate 5e-6 --beta 0.1 --num_train_epochs 1 --per_device_train_batch_size 4
```

# From a YAML file, with the combined DPO + SFT loss
```bash
lalm train dpo --config configs/dpo.yaml --loss_type sigmoid sft --loss_weights 1.0 0.5
```

Then fold the adapter into a servable checkpoint: `lalm train merge --adapter runs/dpo --out runs/dpo-merged`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lalm.train_dpo.model_args import (
    ModelArguments,
    load_for_training,
    parse_config,
    peft_config,
    save_trained,
)

__all__ = ["DPOScriptArguments", "build_dpo_trainer", "main", "pairs_dataset", "parse_args", "train_dpo"]


@dataclass
class DPOScriptArguments:
    """The data."""

    train_pairs: str = field(default="", metadata={"help": "Pairs JSONL (from `lalm train pairs`) to train on."})
    eval_pairs: str | None = field(default=None, metadata={"help": "Pairs JSONL for the eval loss."})


def pairs_dataset(path: str | Path):
    """A `datasets.Dataset` of a pairs file: `audio` (absolute path), `prompt`, `chosen`, `rejected`."""
    from datasets import Dataset

    from lalm.train_dpo.collator import default_prompt
    from lalm.train_dpo.data import read_manifest

    rows = read_manifest(path)
    if not rows:
        raise ValueError(f"{path} has no pairs")
    missing = [i for i, r in enumerate(rows, 1) if "chosen" not in r.meta or "rejected" not in r.meta]
    if missing:
        raise ValueError(f"{path}: rows {missing[:5]} have no chosen/rejected answers; make pairs with "
                         "`lalm train pairs`")
    return Dataset.from_list([
        {"audio": str(r.audio), "prompt": r.prompt or default_prompt(), "chosen": r.meta["chosen"],
         "rejected": r.meta["rejected"]}
        for r in rows
    ])


def _audio_dpo_trainer():
    from trl import DPOTrainer

    class AudioDPOTrainer(DPOTrainer):
        """DPOTrainer over raw audio rows: the collator renders, tokenizes and computes features per batch,
        so TRL's text-only dataset tokenization is skipped (TRL does the same for image datasets)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    return AudioDPOTrainer


def build_dpo_trainer(script_args: DPOScriptArguments, model_args: ModelArguments, training_args):
    """The DPOTrainer (model loaded, LoRA applied, audio preference collator in place) and the processor."""
    from lalm.train_dpo.collator import AudioPreferenceCollator

    if not script_args.train_pairs:
        raise ValueError("no data: pass --train_pairs FILE.jsonl (or `train_pairs:` in the YAML file)")
    if training_args.precompute_ref_log_probs:
        raise ValueError("precompute_ref_log_probs must stay false: audio batches are built on the fly")
    if training_args.max_length is not None:
        raise ValueError("max_length must stay unset: truncation can cut <|AUDIO|> placeholders")
    model, processor = load_for_training(model_args)
    ref_model = None
    if not model_args.use_lora:
        # Without an adapter to switch off, the reference policy is a frozen copy of the starting weights.
        ref_model, _ = load_for_training(ModelArguments(model=model_args.model, dtype=model_args.dtype,
                                                        use_lora=False, train_all=True))
        ref_model.requires_grad_(False)
    trainer = _audio_dpo_trainer()(
        model=model,
        ref_model=ref_model,
        args=training_args,
        data_collator=AudioPreferenceCollator(processor),
        train_dataset=pairs_dataset(script_args.train_pairs),
        eval_dataset=pairs_dataset(script_args.eval_pairs) if script_args.eval_pairs else None,
        processing_class=processor,
        peft_config=peft_config(model_args),
    )
    return trainer, processor


def train_dpo(script_args: DPOScriptArguments, model_args: ModelArguments, training_args) -> Path:
    """Train and save; returns the output folder (an adapter with LoRA, else a checkpoint folder)."""
    trainer, processor = build_dpo_trainer(script_args, model_args, training_args)
    trainer.train()
    return save_trained(trainer, processor, model_args, training_args.output_dir)


def parse_args(argv: Sequence[str] | None = None) -> tuple:
    """(script args, model args, DPOConfig) from flags and `--config FILE.yaml`."""
    from trl import DPOConfig

    return parse_config((DPOScriptArguments, ModelArguments, DPOConfig), argv,
                        {"learning_rate": 5e-6, "precompute_ref_log_probs": False}, prog="lalm train dpo")


def main(argv: Sequence[str] | None = None) -> Path:
    """Entry point of `lalm train dpo`: parse flags / YAML, train, save."""
    out = train_dpo(*parse_args(argv))
    print(f"saved to {out}")
    return out
