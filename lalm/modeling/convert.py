"""Language models as Qwen2: load a Qwen2-family or Llama-family causal LM (a transformers folder or a GGUF
file, dequantized to float32) and return it in Qwen2 layout, exactly.

vLLM's Qwen2-Audio builds a Qwen2ForCausalLM backbone whatever the text config says, so a Llama-family model
must become a Qwen2 one. The two architectures compute the same function when Qwen2's q/k/v biases are zero
and every other setting carries over (rope parameters, RMSNorm epsilon, head size, key/value heads, vocab);
settings Qwen2 cannot express (a head size other than hidden / heads, an o_proj or MLP bias) are refused
rather than approximated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lalm.errors import LalmError

__all__ = ["LLMError", "LLMSource", "load_llm", "to_qwen2"]

# Qwen2Config fields copied from a Llama config: everything that changes what the network computes or how
# text is tokenized around it.
_SHARED_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_parameters",
    "tie_word_embeddings", "attention_dropout", "initializer_range", "bos_token_id", "eos_token_id",
    "pad_token_id",
)


class LLMError(LalmError, ValueError):
    """An LLM source that cannot become an exact Qwen2 model; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_model")


@dataclass
class LLMSource:
    """A causal LM in Qwen2 layout: `config` holds Qwen2Config fields, `state_dict` float32 tensors in
    Qwen2ForCausalLM's names (`model.*`, `lm_head.weight`)."""

    kind: str
    family: str
    path: Path
    config: dict
    state_dict: dict[str, torch.Tensor]
    tokenizer: PreTrainedTokenizerBase

    def describe(self) -> str:
        c = self.config
        params = sum(t.numel() for k, t in self.state_dict.items() if k != "lm_head.weight" or
                     not c["tie_word_embeddings"])
        conv = "copied as Qwen2" if self.family == "qwen2" else "converted to Qwen2 layout (zero q/k/v biases)"
        return (f"{self.family} LLM from {self.kind} {self.path}, {conv}: {c['num_hidden_layers']} layers, hidden "
                f"{c['hidden_size']}, {c['num_attention_heads']} heads / {c['num_key_value_heads']} kv heads, "
                f"vocab {c['vocab_size']}, tied embeddings {c['tie_word_embeddings']}, "
                f"rope {c.get('rope_parameters')}, rms_norm_eps {c['rms_norm_eps']!r}, {params / 1e6:.1f}M parameters")


def _locate(path: Path) -> tuple[Path, str | None, str]:
    """(folder for from_pretrained, gguf file name or None, description of the source kind)."""
    if path.is_file():
        if path.suffix != ".gguf":
            raise LLMError(f"{path} is a file but not a .gguf; --llm takes a transformers folder or a GGUF file")
        return path.parent, path.name, "GGUF file"
    if not path.is_dir():
        raise LLMError(f"{path} does not exist")
    if (path / "config.json").is_file():
        return path, None, "transformers folder"
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return path, ggufs[0].name, "GGUF file"
    raise LLMError(f"{path} has no config.json and {len(ggufs)} .gguf files; name the model folder or one .gguf file")


def load_llm(path: str | Path) -> LLMSource:
    """Load the causal LM at `path` (transformers folder, .gguf file, or a folder holding one .gguf) with its
    tokenizer, and return it in Qwen2 layout."""
    folder, gguf, kind = _locate(Path(path))
    extra = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra)
    config, state = to_qwen2(model)
    return LLMSource(kind, model.config.model_type, Path(path), config, state, tokenizer)


def to_qwen2(model: PreTrainedModel) -> tuple[dict, dict[str, torch.Tensor]]:
    """The Qwen2Config fields and Qwen2ForCausalLM state dict (float32) computing what `model` computes.
    A Qwen2 model is copied; a Llama model is converted; any other family raises `LLMError`."""
    family = model.config.model_type
    if family == "qwen2":
        config = model.config.to_dict()
        for key in ("quantization_config", "architectures", "_name_or_path", "transformers_version", "dtype"):
            config.pop(key, None)
        state = _float32_state(model)
        state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
        return config, state
    if family != "llama":
        raise LLMError(f"a {family!r} language model cannot be used: lalm converts Llama-family models to Qwen2 "
                       "layout exactly and takes Qwen2-family models as they are")
    return _llama_config(model.config), _llama_state(model)


def _llama_config(lc) -> dict:
    heads, hidden = lc.num_attention_heads, lc.hidden_size
    head_dim = getattr(lc, "head_dim", None) or hidden // heads
    if head_dim * heads != hidden:
        # Qwen2 (in vLLM) derives the head size as hidden_size / num_attention_heads.
        raise LLMError(f"the Llama model's head size {head_dim} x {heads} heads != hidden size {hidden}; "
                       "Qwen2 layout cannot express it")
    if getattr(lc, "mlp_bias", False):
        raise LLMError("the Llama model has MLP biases, which Qwen2 layout has no place for")
    if (getattr(lc, "pretraining_tp", 1) or 1) != 1:
        raise LLMError("pretraining_tp != 1 changes the Llama computation; Qwen2 layout cannot express it")
    config = {field: getattr(lc, field) for field in _SHARED_FIELDS if hasattr(lc, field)}
    config.update(model_type="qwen2", use_sliding_window=False, sliding_window=None)
    return config


def _llama_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    state = _float32_state(model)
    config = model.config
    kv = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    for i in range(config.num_hidden_layers):
        attn = f"model.layers.{i}.self_attn"
        o_bias = state.pop(f"{attn}.o_proj.bias", None)
        if o_bias is not None and torch.any(o_bias != 0):
            raise LLMError(f"layer {i} has a non-zero o_proj bias, which Qwen2 layout has no place for")
        # Qwen2 always has q/k/v biases: zero ones leave the projections unchanged (Llama's own biases, when
        # attention_bias is set, carry over).
        for name, size in (("q_proj", config.hidden_size), ("k_proj", kv), ("v_proj", kv)):
            state.setdefault(f"{attn}.{name}.bias", torch.zeros(size))
    state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    return state


def _float32_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """Detached float32 copies, so the source model can be freed and tied weights become separate tensors."""
    return {k: v.detach().to(torch.float32).clone() for k, v in model.state_dict().items()}
