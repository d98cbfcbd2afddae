"""Fold a LoRA adapter (and a projector trained with it) into the base weights and write a Qwen2-Audio
checkpoint folder again, in the hub key layout vLLM loads (vLLM 0.32 cannot serve LoRA on Qwen2-Audio).

```bash
lalm train merge --adapter runs/dpo --out runs/dpo-merged            # base read from the adapter
lalm train merge --adapter runs/dpo --base runs/sft-merged --out runs/dpo-merged
```
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["adapter_base", "load_with_adapter", "merge_adapter"]


def adapter_base(adapter_dir: str | Path) -> str:
    """The base checkpoint an adapter was trained on, as peft recorded it."""
    cfg = Path(adapter_dir) / "adapter_config.json"
    if not cfg.is_file():
        raise ValueError(f"{adapter_dir} is not a peft adapter folder (no adapter_config.json)")
    base = json.loads(cfg.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{cfg} does not name its base model: pass --base CHECKPOINT_DIR")
    return base


def load_with_adapter(adapter_dir: str | Path, base: str | Path | None = None, *, dtype: torch.dtype = torch.float32):
    """(the base model with the adapter applied, unmerged, as a peft model; the processor)."""
    from peft import PeftModel

    from lalm.modeling.checkpoint import load_checkpoint

    model, processor = load_checkpoint(base or adapter_base(adapter_dir), dtype=dtype)
    return PeftModel.from_pretrained(model, str(adapter_dir)).eval(), processor


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, base: str | Path | None = None, *,
                  dtype: torch.dtype = torch.float32) -> Path:
    """Merge `adapter_dir` into its base (or `base`) and save the result to `out_dir`; returns the folder."""
    from lalm.modeling.checkpoint import check_checkpoint, save_checkpoint

    model, processor = load_with_adapter(adapter_dir, base, dtype=dtype)
    merged = model.merge_and_unload()
    return check_checkpoint(save_checkpoint(merged, processor, out_dir, dtype=dtype))
