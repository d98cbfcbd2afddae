"""Qwen2-Audio checkpoint folders: the one interchange format of lalm.

A checkpoint folder holds `config.json` (model_type qwen2_audio), safetensors in the hub's key layout
(`audio_tower.*`, `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.*`), the
tokenizer with the Qwen2-Audio special tokens, the Whisper feature extractor config and the chat template.
Tiny test models, assembled models, merged LoRA models and Qwen/Qwen2-Audio-7B-Instruct all share it, so
vLLM and transformers load each of them unchanged.

transformers 5.19's `save_pretrained` writes `language_model.model.model.*` keys, which vLLM rejects, so
saving maps the in-memory names to the hub names here, explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from lalm.errors import LalmError
from lalm.modeling.locate import locate_model

__all__ = [
    "AUDIO_TOKEN",
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "CheckpointError",
    "check_checkpoint",
    "from_hub_key",
    "load_checkpoint",
    "load_processor",
    "save_checkpoint",
    "to_hub_key",
]

AUDIO_TOKEN = "<|AUDIO|>"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")

# Qwen2-Audio-Instruct's template, also matching the content parts vLLM passes ({"type": "audio"}), so
# both engines render the same prompt token for token.
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] in ['audio', 'audio_url', 'input_audio'] or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# in-memory (transformers 5) prefix -> hub prefix
_HUB_PREFIXES = (
    ("model.audio_tower.", "audio_tower."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
)
_SHARD_BYTES = 4 * 1024**3


class CheckpointError(LalmError, ValueError):
    """A folder that is not a usable Qwen2-Audio checkpoint; `problems` lists every defect found."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path} is not a usable Qwen2-Audio checkpoint: " + "; ".join(problems),
                         code="invalid_model")


def to_hub_key(name: str) -> str:
    """`model.language_model.layers.0...` -> `language_model.model.layers.0...` (the layout vLLM loads)."""
    for ours, hub in _HUB_PREFIXES:
        if name.startswith(ours):
            return hub + name[len(ours):]
    raise KeyError(f"unexpected parameter name {name!r} for a Qwen2-Audio model")


def from_hub_key(name: str) -> str:
    """The inverse of `to_hub_key`."""
    for ours, hub in _HUB_PREFIXES:
        if name.startswith(hub):
            return ours + name[len(hub):]
    raise KeyError(f"unexpected checkpoint key {name!r} for a Qwen2-Audio model")


def save_checkpoint(
    model: Qwen2AudioForConditionalGeneration,
    processor: Qwen2AudioProcessor,
    out_dir: str | Path,
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model` and `processor` to `out_dir` in the hub layout; returns the folder.

    The language model is saved untied (an explicit `lm_head`), which every loader handles the same way.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    config.text_config.tie_word_embeddings = False
    config.architectures = ["Qwen2AudioForConditionalGeneration"]
    config.audio_token_index = processor.tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
    if dtype is not None:
        config.dtype = dtype
    config.save_pretrained(out)
    _generation_config(processor).save_pretrained(out)

    tensors = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[to_hub_key(name)] = t.contiguous().clone()
    _write_shards(tensors, out)
    processor.chat_template = processor.chat_template or CHAT_TEMPLATE
    processor.save_pretrained(out)
    # preprocessor_config.json too: the hub layout (and older loaders) read the feature extractor there.
    processor.feature_extractor.save_pretrained(out)
    processor.tokenizer.chat_template = processor.chat_template
    processor.tokenizer.save_pretrained(out)
    return out


def _generation_config(processor: Qwen2AudioProcessor) -> GenerationConfig:
    """Stop tokens only: no sampling defaults, so requests get exactly the sampling they ask for from
    both engines (vLLM applies generation_config.json defaults to every request). The stop tokens are the
    tokenizer's own end-of-sequence token, `<|endoftext|>` where the vocabulary has it (an assembled LLM's
    tokenizer may not) and `<|im_end|>`, which ends every chat turn."""
    tok = processor.tokenizer
    vocab = tok.get_vocab()
    eos = list(dict.fromkeys(vocab[t] for t in ("<|endoftext|>", tok.eos_token, "<|im_end|>") if t in vocab))
    return GenerationConfig(bos_token_id=eos[0], eos_token_id=eos, pad_token_id=eos[0])


def _write_shards(tensors: dict[str, torch.Tensor], out: Path) -> None:
    for old in list(out.glob("model*.safetensors")) + list(out.glob("model.safetensors.index.json")):
        old.unlink()
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > _SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], str(out / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, fname))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )


def _checkpoint_keys(path: Path) -> set[str]:
    keys: set[str] = set()
    for f in path.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as st:
            keys.update(st.keys())
    return keys


def check_checkpoint(path: str | Path) -> Path:
    """Validate a checkpoint folder before any loader sees it; raise `CheckpointError` naming every
    problem (wrong model_type, missing weights or processor files, missing special tokens...)."""
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(root, ["the folder does not exist"])
    problems: list[str] = []
    cfg_file = root / "config.json"
    cfg: dict = {}
    if not cfg_file.is_file() and (root / "default_model.json").is_file():
        raise CheckpointError(root, [_trained_weights_hint(root)])
    if not cfg_file.is_file():
        problems.append("config.json is missing")
    else:
        cfg = json.loads(cfg_file.read_text())
        if cfg.get("model_type") != "qwen2_audio":
            problems.append(f"config.json has model_type {cfg.get('model_type')!r}; expected 'qwen2_audio'")
        if "audio_config" not in cfg:
            problems.append("config.json has no audio_config")
        text_type = cfg.get("text_config", {}).get("model_type", "qwen2")
        if text_type != "qwen2":
            problems.append(
                f"text_config.model_type is {text_type!r}; vLLM's Qwen2-Audio needs a qwen2 language model "
                "(convert it with `lalm assemble`)"
            )
    keys = _checkpoint_keys(root)
    if not keys:
        problems.append("no *.safetensors weights")
    else:
        for prefix in ("audio_tower.", "multi_modal_projector.", "language_model.model.", "language_model.lm_head."):
            if not any(k.startswith(prefix) for k in keys):
                problems.append(f"no weights named {prefix}* (the hub key layout)")
        if any(k.startswith("language_model.model.model.") for k in keys):
            problems.append("weights named language_model.model.model.* (saved by transformers 5 "
                            "save_pretrained); re-save with lalm.modeling.checkpoint.save_checkpoint")
    for fname in ("preprocessor_config.json", "tokenizer_config.json"):
        if not (root / fname).is_file():
            problems.append(f"{fname} is missing")
    if not (root / "tokenizer.json").is_file() and not (root / "vocab.json").is_file():
        problems.append("no tokenizer (tokenizer.json or vocab.json)")
    if not any((root / f).is_file() for f in ("chat_template.jinja", "chat_template.json")) and "chat_template" not in (
        json.loads((root / "tokenizer_config.json").read_text()) if (root / "tokenizer_config.json").is_file() else {}
    ):
        problems.append("no chat template (chat_template.jinja)")
    if not problems:
        problems += _tokenizer_problems(root, cfg)
        fe = json.loads((root / "preprocessor_config.json").read_text())
        mels = cfg.get("audio_config", {}).get("num_mel_bins", 128)
        if fe.get("feature_size") != mels:
            problems.append(f"the feature extractor makes {fe.get('feature_size')} mel bins; the encoder takes {mels}")
    if problems:
        raise CheckpointError(root, problems)
    return root


def _trained_weights_hint(root: Path) -> str:
    """What to do with a folder of trained default-model weights (lalm.modeling.trained_weights) given where a
    checkpoint is expected: the command that builds the checkpoint from them."""
    return (f"it holds trained default-model weights (default_model.json), not a checkpoint; build one with "
            f"`lalm assemble --encoder whisper-tiny.en --llm smollm2-135m-instruct --weights {root} "
            f"--out {root}-built` and pass that folder")


def _tokenizer_problems(root: Path, cfg: dict) -> list[str]:
    """The special tokens must be real entries of the saved tokenizer (a loader would silently add a missing
    one with an id the model has no embedding for), and the config must point at the right id."""
    problems = []
    listed: set[str] | None = None
    if (root / "tokenizer.json").is_file():
        data = json.loads((root / "tokenizer.json").read_text())
        listed = {t["content"] for t in data.get("added_tokens", [])} | set(data.get("model", {}).get("vocab", {}))
    for t in ("<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>", "<|im_start|>", "<|im_end|>"):
        if listed is not None and t not in listed:
            problems.append(f"the tokenizer has no {t} token")
    if problems:
        return problems
    vocab = AutoTokenizer.from_pretrained(root).get_vocab()
    size = cfg.get("text_config", {}).get("vocab_size", 0)
    for t in ("<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>", "<|im_start|>", "<|im_end|>"):
        if t not in vocab:
            problems.append(f"the tokenizer has no {t} token")
        elif vocab[t] >= size:
            problems.append(f"{t} has id {vocab[t]}, outside the model's vocabulary of {size}")
    audio_id = cfg.get("audio_token_index", cfg.get("audio_token_id"))
    if AUDIO_TOKEN in vocab and audio_id != vocab[AUDIO_TOKEN]:
        problems.append(
            f"config audio_token_index is {audio_id} but the tokenizer's <|AUDIO|> id is {vocab[AUDIO_TOKEN]}"
        )
    return problems


def load_processor(path: str | Path) -> Qwen2AudioProcessor:
    """The checkpoint's processor (tokenizer + Whisper feature extractor + chat template)."""
    root = Path(path)
    tok = AutoTokenizer.from_pretrained(root)
    fe = WhisperFeatureExtractor.from_pretrained(root)
    template = tok.chat_template or CHAT_TEMPLATE
    return Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok, chat_template=template)


def load_checkpoint(
    path: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor]:
    """Validate and load a checkpoint folder, or a hub id (`org/name`) that transformers fetches. Raises
    `ModelNotFoundError` for a missing folder (without asking the hub) and `CheckpointError` for a folder that
    is not a usable checkpoint."""
    root = Path(locate_model(str(path)))
    if root.exists():
        check_checkpoint(root)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(str(path), dtype=dtype).to(device)
    model.eval()
    processor = load_processor(path) if root.exists() else Qwen2AudioProcessor.from_pretrained(str(path))
    return model, processor


def new_config(audio: dict, text: dict, audio_token_index: int) -> Qwen2AudioConfig:
    """A Qwen2AudioConfig from plain dicts of encoder and qwen2 text settings."""
    return Qwen2AudioConfig(audio_config=audio, text_config={"model_type": "qwen2", **text},
                            audio_token_index=audio_token_index)
