"""Trained default-model weights as committed files (the format), and the checkpoint built from them.

`models/default/` holds only what training made (a few MB, float16 safetensors): the audio head
(`head.safetensors`: new encoder layers, the tower's final LayerNorm and the projector, under Qwen2-Audio hub key
names), the LoRA weights (`lora.safetensors`, peft names, with their rank and alpha in `default_model.json`) and
the CTC scorer that later training resumes with (`scorer.safetensors`), plus `default_model.json`: the recipe
config, seed, steps per stage, the held-out figures, the sha256 of every committed file and of each input
package file. `build_default_model` assembles the base model from the pinned packages (lalm.modeling.assemble),
adds the new encoder layers, loads the head, merges the LoRA weights into the LLM (W += alpha/r * B A) and
saves a plain Qwen2-Audio checkpoint that vLLM serves.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lalm.errors import LalmError
from lalm.modeling.assets import ASSETS, sha256_file

__all__ = ["DefaultModelError", "build_default_model", "export_weights", "read_weights"]

FILES = ("head.safetensors", "lora.safetensors", "scorer.safetensors")


class DefaultModelError(LalmError, RuntimeError):
    """Committed default-model weights that are missing or whose bytes are not the recorded ones: the
    installation is incomplete, not the request (status 500)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=500, code="model_asset")


def export_weights(out: str | Path, *, head_state: dict[str, torch.Tensor], lora_state: dict[str, torch.Tensor],
                   scorer_state: dict[str, torch.Tensor], info: dict[str, Any]) -> Path:
    """Write the trained weights (float16) and `default_model.json` (`info` plus file and input sha256s) to
    `out`; returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, state in zip(FILES, (head_state, lora_state, scorer_state), strict=True):
        save_file({k: v.detach().to(torch.float16).cpu().contiguous() for k, v in state.items()}, out / name)
    record = {
        **info,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "files": {name: sha256_file(out / name) for name in FILES},
        "inputs": {a.name: {"package": a.requirement, "file": a.file, "sha256": a.sha256} for a in ASSETS.values()},
    }
    (out / "default_model.json").write_text(json.dumps(record, indent=2) + "\n")
    return out


def read_weights(folder: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """(the record, {file stem: float32 tensors}) after checking every file's sha256 against the record."""
    folder = Path(folder)
    record_path = folder / "default_model.json"
    if not record_path.is_file():
        raise DefaultModelError(f"{folder} holds no default_model.json: not a default-model weights folder")
    record = json.loads(record_path.read_text())
    tensors = {}
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise DefaultModelError(f"{path} is missing")
        if sha256_file(path) != record["files"][name]:
            raise DefaultModelError(f"{path} has another sha256 than default_model.json records: refusing it")
        tensors[name.removesuffix(".safetensors")] = {k: v.float() for k, v in load_file(path).items()}
    return record, tensors


def build_default_model(weights: str | Path, out: str | Path, *, base: str | Path | None = None,
                        log=print) -> Path:
    """Build the default model's checkpoint in `out` from the committed `weights` folder: the base is
    assembled from the pinned packages (or read from `base`, an assembled folder), then the head and the
    merged LoRA weights are applied. Returns the checked folder."""
    from transformers import Qwen2AudioForConditionalGeneration

    from lalm.modeling.assemble import assemble
    from lalm.modeling.checkpoint import check_checkpoint, from_hub_key, load_checkpoint, save_checkpoint

    record, tensors = read_weights(weights)
    with tempfile.TemporaryDirectory(prefix="lalm-base-") as tmp:
        if base is None:
            base = assemble(encoder="whisper-tiny.en", llm="smollm2-135m-instruct", out=Path(tmp) / "base", log=log)
        model, processor = load_checkpoint(base)
    config = model.config
    config.audio_config.encoder_layers += int(record["extra_layers"])
    grown = Qwen2AudioForConditionalGeneration(config).eval()
    missing = grown.load_state_dict(model.state_dict(), strict=False).missing_keys
    head = {from_hub_key(k): v for k, v in tensors["head"].items()}
    if set(missing) - set(head):
        raise DefaultModelError(f"the head weights lack {sorted(set(missing) - set(head))[:3]}")
    grown.load_state_dict(head, strict=False)
    scale = record["lora_alpha"] / record["lora_r"]
    lora = tensors["lora"]
    with torch.no_grad():
        for key, a in lora.items():
            if ".lora_A." not in key:
                continue
            b = lora[key.replace(".lora_A.", ".lora_B.")]
            target = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
            grown.get_parameter(target).add_(scale * (b @ a))
    folder = save_checkpoint(grown, processor, out, dtype=torch.float32)
    check_checkpoint(folder)
    log(f"default model built in {folder} from {weights} ({record.get('stage')} step {record.get('step')})")
    return folder
