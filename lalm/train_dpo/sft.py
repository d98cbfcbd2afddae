"""Supervised fine-tuning of a Qwen2-Audio checkpoint on a JSONL manifest, with TRL's SFTTrainer.

Each manifest row becomes one turn: the audio and the instruction (the row's `prompt`, else the transcribe
task's), answered with the reference (or the no-speech answer for non-speech clips). The loss is on the
assistant reply only. By default LoRA adapters train on the language model (see model_args.py); the
projector can get LoRA or be trained in full; `--use_lora false --train_all` trains every weight (small
models trained from scratch). Flags and a YAML file both work (`--config`), TRL's way; every SFTConfig
field (learning_rate, num_train_epochs, per_device_train_batch_size, ...) is accepted.

Output: with LoRA, a peft adapter folder (plus the projector weights when trained in full), which
`lalm train merge` folds into a servable checkpoint; without LoRA, a checkpoint folder.

# LoRA on the language model
```bash
lalm train sft --model models/tiny --train_manifest data/train/manifest.jsonl --output_dir runs/sft \\
    --learning_rate 2e-4 --num_train_epochs 1 --per_device_train_batch_size 8
```

# From a YAML file, with overrides
```bash
lalm train sft --config configs/sft.yaml --learning_rate 1e-4
```

# LoRA plus the projector trained in full
```bash
lalm train sft --config configs/sft.yaml --projector full
```

# Every weight (a small model trained from scratch), saved as a checkpoint folder
```bash
lalm train sft --config configs/sft.yaml --use_lora false --train_all
```
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

__all__ = ["SFTScriptArguments", "build_sft_trainer", "main", "manifest_dataset", "parse_args", "train_sft"]


@dataclass
class SFTScriptArguments:
    """The data."""

    train_manifest: str = field(default="", metadata={"help": "JSONL manifest to train on."})
    eval_manifest: str | None = field(default=None, metadata={"help": "JSONL manifest for the eval loss."})
    prompt: str | None = field(
        default=None, metadata={"help": "Instruction for rows without a prompt (default: the transcribe task's)."}
    )


def manifest_dataset(path: str | Path, *, prompt: str | None = None):
    """A `datasets.Dataset` of a manifest: `audio` (absolute path), `prompt` (the row's, else `prompt`, else
    the transcribe instruction) and `completion` (the reference, or the no-speech answer on non-speech)."""
    from datasets import Dataset

    from lalm.tasks import NO_SPEECH
    from lalm.train_dpo.collator import default_prompt
    from lalm.train_dpo.data import read_manifest

    rows = read_manifest(path)
    if not rows:
        raise ValueError(f"{path} has no examples")
    return Dataset.from_list([
        {"audio": str(r.audio), "prompt": r.prompt or prompt or default_prompt(),
         "completion": NO_SPEECH if r.non_speech else r.reference}
        for r in rows
    ])


def build_sft_trainer(script_args: SFTScriptArguments, model_args: ModelArguments, training_args):
    """The SFTTrainer (model loaded, LoRA applied, audio collator in place) and the processor."""
    from trl import SFTTrainer

    from lalm.train_dpo.collator import AudioSFTCollator

    if not script_args.train_manifest:
        raise ValueError("no data: pass --train_manifest FILE.jsonl (or `train_manifest:` in the YAML file)")
    model, processor = load_for_training(model_args)
    # The collator renders and tokenizes on the fly; TRL must not tokenize the raw columns itself.
    training_args.dataset_kwargs = {"skip_prepare_dataset": True}
    eval_ds = manifest_dataset(script_args.eval_manifest, prompt=script_args.prompt) \
        if script_args.eval_manifest else None
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        data_collator=AudioSFTCollator(processor),
        train_dataset=manifest_dataset(script_args.train_manifest, prompt=script_args.prompt),
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=peft_config(model_args),
    )
    return trainer, processor


def train_sft(script_args: SFTScriptArguments, model_args: ModelArguments, training_args) -> Path:
    """Train and save; returns the output folder (an adapter with LoRA, else a checkpoint folder)."""
    trainer, processor = build_sft_trainer(script_args, model_args, training_args)
    trainer.train()
    return save_trained(trainer, processor, model_args, training_args.output_dir)


def parse_args(argv: Sequence[str] | None = None) -> tuple:
    """(script args, model args, SFTConfig) from flags and `--config FILE.yaml`."""
    from trl import SFTConfig

    return parse_config((SFTScriptArguments, ModelArguments, SFTConfig), argv, {"learning_rate": 2e-4},
                        prog="lalm train sft")


def main(argv: Sequence[str] | None = None) -> Path:
    """Entry point of `lalm train sft`: parse flags / YAML, train, save."""
    out = train_sft(*parse_args(argv))
    print(f"saved to {out}")
    return out
