"""`lalm assemble`: a new Qwen2-Audio checkpoint from a Whisper encoder and a causal LLM, joined by a freshly
initialised projector.

The encoder (audio_encoder.py) and the LLM (convert.py) are taken over exactly; what is new is the projector
(one Linear, Qwen2-Audio's format), the five chat/audio special tokens the LLM's tokenizer may lack (their
embedding rows start at the mean embedding), the chat template and the stop tokens. The result is saved with
`save_checkpoint`, so vLLM and transformers load it unchanged. Until the projector is trained the model
ignores what it hears; its text-only behaviour is the source LLM's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AddedToken, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

from lalm.modeling.assets import ASSETS, asset_path
from lalm.modeling.audio_encoder import EncoderSource, load_encoder
from lalm.modeling.checkpoint import AUDIO_TOKEN, CHAT_TEMPLATE, check_checkpoint, new_config, save_checkpoint
from lalm.modeling.convert import LLMSource, load_llm

__all__ = ["NEW_TOKENS", "assemble", "assemble_from", "resolve_source"]

NEW_TOKENS = ("<|im_start|>", "<|im_end|>", "<|audio_bos|>", AUDIO_TOKEN, "<|audio_eos|>")


def resolve_source(source: str | Path) -> Path:
    """A path as given, or the verified installed path of a named asset (see lalm.modeling.assets)."""
    path = Path(source)
    if path.exists() or str(source) not in ASSETS:
        return path
    return asset_path(str(source))


def assemble(
    *,
    encoder: str | Path,
    llm: str | Path,
    out: str | Path,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Path:
    """Build a Qwen2-Audio checkpoint in `out` from the Whisper encoder folder `encoder` and the LLM `llm`
    (a transformers folder or a GGUF file; either may be an asset name such as "whisper-tiny.en"), with a
    projector initialised from `seed`. Reports each step through `log`; returns the checked folder."""
    start = time.monotonic()
    enc = load_encoder(resolve_source(encoder))
    log(f"encoder ({time.monotonic() - start:.1f} s): {enc.describe()}")
    step = time.monotonic()
    lm = load_llm(resolve_source(llm))
    log(f"llm ({time.monotonic() - step:.1f} s): {lm.describe()}")
    folder = assemble_from(enc, lm, out=out, seed=seed, log=log)
    log(f"saved and checked {folder} ({time.monotonic() - start:.1f} s in all)")
    return folder


def assemble_from(enc: EncoderSource, lm: LLMSource, *, out: str | Path, seed: int = 0,
                  log: Callable[[str], None] = print) -> Path:
    """`assemble` from sources already read (load_encoder, load_llm). `lm` is changed in place (its
    vocabulary grows). Returns the checked folder."""
    tokenizer = lm.tokenizer
    added = _extend_vocabulary(lm)
    log(f"tokenizer: added {' '.join(added) or 'nothing'} -> {len(tokenizer)} tokens, "
        f"embedding rows {lm.config['vocab_size']}" + (" (new rows = mean embedding)" if added else ""))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = lm.config["max_position_embeddings"]

    config = new_config(audio=enc.config, text={**lm.config, "tie_word_embeddings": False},
                        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN))
    model = Qwen2AudioForConditionalGeneration(config).eval()
    _load_weights(model, enc, lm)
    std = _init_projector(model, seed)
    log(f"projector: Linear({enc.config['d_model']} -> {lm.config['hidden_size']}), seed {seed}, "
        f"weights ~ N(0, {std:.4g}^2) so its outputs start at the LLM's embedding scale, bias 0")

    processor = Qwen2AudioProcessor(feature_extractor=enc.feature_extractor, tokenizer=tokenizer,
                                    chat_template=CHAT_TEMPLATE)
    folder = save_checkpoint(model, processor, out, dtype=torch.float32)
    check_checkpoint(folder)
    return folder


def _extend_vocabulary(lm: LLMSource) -> list[str]:
    """Add the Qwen2-Audio tokens the tokenizer lacks and give each an embedding row (input and output) set
    to the mean of the real tokens' rows: a neutral start for <|audio_bos|>/<|audio_eos|>, and in the output
    matrix a logit equal to the mean logit, below the maximum, so greedy decoding never picks them. Rows
    beyond the tokenizer (padded vocabularies) are reused before the matrix grows. Returns the added tokens."""
    tok = lm.tokenizer
    before = len(tok)
    added = [t for t in NEW_TOKENS if t not in tok.get_vocab()]
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in added], special_tokens=True)
    ids = [tok.convert_tokens_to_ids(t) for t in added]
    rows = max(lm.config["vocab_size"], len(tok))
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        old = lm.state_dict[key]
        new = torch.cat([old, old.new_zeros(rows - old.shape[0], old.shape[1])])
        new[ids] = old[:min(before, old.shape[0])].mean(0)
        lm.state_dict[key] = new
    lm.config["vocab_size"] = rows
    return added


def _load_weights(model: Qwen2AudioForConditionalGeneration, enc: EncoderSource, lm: LLMSource) -> None:
    """Copy the encoder and LLM weights in, strictly: every parameter of both parts must be provided."""
    model.model.audio_tower.load_state_dict(enc.state_dict, strict=True)
    language = {k.removeprefix("model."): v for k, v in lm.state_dict.items() if k.startswith("model.")}
    model.model.language_model.load_state_dict(language, strict=True)
    with torch.no_grad():
        model.lm_head.weight.copy_(lm.state_dict["lm_head.weight"])


@torch.no_grad()
def _init_projector(model: Qwen2AudioForConditionalGeneration, seed: int) -> float:
    """N(0, std^2) weights and zero bias, std chosen so that the encoder's LayerNorm'd frames (per-dimension
    second moment ~ gamma^2 + beta^2) map to vectors with the RMS of the LLM's input embeddings: audio then
    enters the LLM at the scale of text. Seeded with its own generator, so `seed` alone fixes it."""
    norm = model.model.audio_tower.layer_norm
    frame_sq = float((norm.weight**2 + norm.bias**2).sum())
    embed_rms = float(model.model.language_model.embed_tokens.weight.pow(2).mean().sqrt())
    std = embed_rms / max(frame_sq, 1e-12) ** 0.5
    linear = model.model.multi_modal_projector.linear
    generator = torch.Generator().manual_seed(seed)
    linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * std)
    linear.bias.zero_()
    return std
