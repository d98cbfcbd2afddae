"""What is trained, shared by SFT and DPO: the model arguments, the LoRA configuration, model loading, the
and the flags + YAML parser.

LoRA goes on the language model only. peft has no default target modules for qwen2_audio, and the Whisper
encoder has q/k/v/out_proj and fc1/fc2 too, so a plain list of names would also hit the encoder; the regex
`LORA_TARGETS` picks exactly the LLM's attention and MLP projections. The projector can stay frozen, get
LoRA, or be trained in full (then peft saves its weights next to the adapter, as `modules_to_save`).
Without LoRA, the chosen weights (the projector, or every weight for a small model trained from scratch)
are trained directly and the result is saved as a checkpoint folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "LORA_TARGETS",
    "PROJECTOR_TARGET",
    "ModelArguments",
    "load_for_training",
    "parse_config",
    "peft_config",
    "save_trained",
]

LORA_TARGETS = r".*language_model.*\.(q|k|v|o|gate|up|down)_proj"
PROJECTOR_TARGET = r".*multi_modal_projector\.linear"
PROJECTOR_MODULE = "multi_modal_projector"

# Defaults that suit audio training on any machine; a YAML file and then flags override them. Audio
# batches must reach the collator whole: no column removal, no truncation (see collator.py).
DEFAULTS: dict[str, Any] = {
    "remove_unused_columns": False,
    "max_length": None,
    "gradient_checkpointing": False,
    "bf16": False,
    "report_to": "none",
    "save_strategy": "no",
    "logging_steps": 5,
    "dataloader_num_workers": 0,
}


@dataclass
class ModelArguments:
    """The model and what of it trains."""

    model: str = field(default="", metadata={"help": "Qwen2-Audio checkpoint folder to start from."})
    dtype: str = field(default="float32", metadata={"help": "Weights dtype: float32 or bfloat16."})
    use_lora: bool = field(default=True, metadata={"help": "Train LoRA adapters on the language model."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(
        default=LORA_TARGETS, metadata={"help": "Regex (re.fullmatch) of the module names that get LoRA."}
    )
    projector: str = field(
        default="frozen", metadata={"help": "The audio projector: frozen, lora (adapters) or full (every weight)."}
    )
    train_all: bool = field(
        default=False, metadata={"help": "Train every weight, no LoRA (small models trained from scratch)."}
    )

    def __post_init__(self) -> None:
        if self.projector not in ("frozen", "lora", "full"):
            raise ValueError(f"projector must be frozen, lora or full, not {self.projector!r}")
        if self.train_all and self.use_lora:
            raise ValueError("train_all trains every weight directly: pass --use_lora false with it")
        if not (self.use_lora or self.train_all or self.projector == "full"):
            raise ValueError("nothing to train: enable use_lora, train_all, or projector=full")
        if self.projector == "lora" and not self.use_lora:
            raise ValueError("projector=lora needs use_lora")


def peft_config(args: ModelArguments):
    """The peft LoraConfig for `args`, or None when LoRA is off."""
    if not args.use_lora:
        return None
    from peft import LoraConfig

    target = args.lora_target_modules
    if args.projector == "lora":
        target = f"({target}|{PROJECTOR_TARGET})"
    return LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, target_modules=target,
        modules_to_save=[PROJECTOR_MODULE] if args.projector == "full" else None, bias="none",
        task_type="CAUSAL_LM",
    )


def load_for_training(args: ModelArguments):
    """Load the checkpoint with requires_grad set for direct (non-LoRA) training; with LoRA the trainer wraps
    the model itself from `peft_config(args)`. Returns (model, processor)."""
    from lalm.modeling.checkpoint import load_checkpoint

    if not args.model:
        raise ValueError("no model: pass --model CHECKPOINT_DIR (or `model:` in the YAML file)")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model, processor = load_checkpoint(args.model, dtype=dtype)
    if not args.use_lora:
        for name, p in model.named_parameters():
            p.requires_grad = args.train_all or PROJECTOR_MODULE in name
    return model, processor


def save_trained(trainer, processor, model_args: ModelArguments, out_dir: str | Path) -> Path:
    """Save what was trained: the peft adapter (with the projector when trained in full) and the processor,
    or, without LoRA, a whole checkpoint folder in the hub layout."""
    from lalm.modeling.checkpoint import save_checkpoint

    out = Path(out_dir)
    if model_args.use_lora:
        trainer.save_model(str(out))
        return out
    return save_checkpoint(trainer.model, processor, out)


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def parse_config(dataclass_types: tuple[type, ...], argv: Sequence[str] | None, defaults: dict[str, Any], *,
                 prog: str | None = None) -> tuple:
    """Parse `--config FILE.yaml` and flags into the dataclasses, TRL's way (TrlParser): lalm's defaults,
    then the YAML file, then flags, each overriding the one before."""
    from trl import TrlParser

    parser = TrlParser(dataclass_types, prog=prog)
    # transformers refuses `bf16: true` without an accelerator unless use_cpu is set; set it where there is
    # none, so a config that trains in bfloat16 autocast (about 1.5x faster on a CPU with avx512_bf16) runs
    # unchanged on a CPU and on a GPU
    parser.set_defaults_with_config(**{**DEFAULTS, "use_cpu": not _has_accelerator(), **defaults})
    return parser.parse_args_and_config(list(argv) if argv is not None else None)
