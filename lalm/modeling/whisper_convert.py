"""Convert a faster-whisper / CTranslate2 Whisper folder into a Hugging Face `WhisperForConditionalGeneration`
folder (safetensors, config, tokenizer, feature extractor, generation config) that transformers and vLLM load;
and back with CTranslate2's own converter.

The weights map one to one except CTranslate2's fused projections: self-attention's `linear_0` holds Q, K, V
stacked by rows, cross-attention's `linear_1` K and V; Whisper's key projections have no bias, so the K part of
a fused bias holds zeros and is dropped. Weights keep their stored float type (faster-whisper's float16
widens to float32 exactly at load). The tokenizer is the folder's own tokenizer.json (byte-level BPE and
Whisper's special tokens) plus the 1,501 timestamp tokens `<|0.00|>`..`<|30.00|>` that follow them, which
faster-whisper's vocabulary.txt lists but its tokenizer.json lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from lalm.modeling.whisper import WhisperFolderError, read_whisper_folder
from lalm.vllm_plugin import ENGLISH_ONLY_ARCHITECTURE, MULTILINGUAL_ARCHITECTURE

__all__ = ["convert_ct2_to_hf", "convert_hf_to_ct2"]

_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in steps of 0.02 s
# openai-whisper's decoding options: the first timestamp may be at most 1.0 s (50 steps of 0.02 s)
_MAX_INITIAL_TIMESTAMP_INDEX = 50


def convert_ct2_to_hf(src: str | Path, dst: str | Path, *, log: Callable[[str], None] = print) -> Path:
    """Write the CTranslate2 Whisper folder `src` as a transformers folder `dst` (written in a temporary folder
    beside it, then renamed into place; `dst` must not exist). config.json names lalm's vLLM architecture
    (lalm.vllm_plugin), which fixes vLLM's Whisper prompts; transformers loads it as WhisperForConditionalGeneration.

    Raises WhisperFolderError when `src` is not a float CTranslate2 Whisper folder or `dst` exists."""
    from lalm.modeling.ctranslate2 import read_ct2

    src, dst = Path(src), Path(dst)
    info = read_whisper_folder(src)
    if info.layout != "ct2":
        raise WhisperFolderError(f"{src} is already a transformers Whisper folder")
    if dst.exists():
        raise WhisperFolderError(f"{dst} exists; give a new folder")
    model = read_ct2(src)
    state = _state_dict(model, info.d_model, info.encoder_layers, info.decoder_layers)
    ct2_config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    tokenizer = _tokenizer(src / "tokenizer.json", info.vocab_size)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}-", dir=dst.parent))
    try:
        _save(tmp, model, state, ct2_config, tokenizer, info)
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"converted {src} ({info.encoder_layers}+{info.decoder_layers} layers, d_model {info.d_model}, "
        f"{'multilingual' if info.multilingual else 'English-only'}) to {dst}")
    return dst


def _state_dict(model, d: int, encoder_layers: int, decoder_layers: int) -> dict[str, torch.Tensor]:
    """CTranslate2 WhisperSpec variables -> WhisperForConditionalGeneration parameter names (proj_out is tied
    to the token embedding and not stored)."""
    floats = {v.dtype for v in model.variables.values() if v.dim() > 0}
    if not floats <= {torch.float16, torch.bfloat16, torch.float32} or len(floats) != 1:
        raise WhisperFolderError(f"the model's weights are {sorted(map(str, floats))}; only an unquantized "
                                 "CTranslate2 model (one of float16, bfloat16, float32) converts exactly")
    get = model.get
    out = {}

    def linear(hf: str, ct2: str) -> None:
        out[f"{hf}.weight"], out[f"{hf}.bias"] = get(f"{ct2}/weight"), get(f"{ct2}/bias")

    def norm(hf: str, ct2: str) -> None:
        out[f"{hf}.weight"], out[f"{hf}.bias"] = get(f"{ct2}/gamma"), get(f"{ct2}/beta")

    def self_attention(hf: str, ct2: str) -> None:
        w, b = get(f"{ct2}/linear_0/weight"), get(f"{ct2}/linear_0/bias")
        out[f"{hf}.q_proj.weight"], out[f"{hf}.k_proj.weight"], out[f"{hf}.v_proj.weight"] = w.split(d)
        out[f"{hf}.q_proj.bias"], _, out[f"{hf}.v_proj.bias"] = b.split(d)
        linear(f"{hf}.out_proj", f"{ct2}/linear_1")

    def ffn(hf: str, ct2: str) -> None:
        linear(f"{hf}.fc1", f"{ct2}/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct2}/layer_norm")

    for side in ("encoder", "decoder"):
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        out[f"model.{side}.embed_positions.weight"] = get(f"{side}/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    out["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    for i in range(encoder_layers):
        hf, ct2 = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
        norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        ffn(hf, f"{ct2}/ffn")
    for i in range(decoder_layers):
        hf, ct2 = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
        norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
        w, b = get(f"{ct2}/attention/linear_1/weight"), get(f"{ct2}/attention/linear_1/bias")
        out[f"{hf}.encoder_attn.k_proj.weight"], out[f"{hf}.encoder_attn.v_proj.weight"] = w.split(d)
        out[f"{hf}.encoder_attn.v_proj.bias"] = b[d:]
        linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
        norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        ffn(hf, f"{ct2}/ffn")
    return {k: v.contiguous() for k, v in out.items()}


def _tokenizer(file: Path, vocab_size: int):
    """A WhisperTokenizer from faster-whisper's tokenizer.json: its BPE vocabulary and merges, its special
    tokens in id order, then the timestamp tokens up to `vocab_size`. Raises WhisperFolderError when the ids do
    not come out as the model's."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    data = json.loads(file.read_text(encoding="utf-8"))
    bpe = data["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in bpe["merges"]]
    tokenizer = WhisperTokenizer(vocab=bpe["vocab"], merges=merges, model_max_length=448)
    special = sorted(data["added_tokens"], key=lambda t: t["id"])
    tokenizer.add_special_tokens({"additional_special_tokens": [
        AddedToken(t["content"], lstrip=False, rstrip=False, normalized=False, special=True) for t in special]})
    tokenizer.set_prefix_tokens()  # the post-processor's <|startoftranscript|><|notimestamps|>, now they exist
    first = special[-1]["id"] + 1
    tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False,
                                     special=False) for i in range(vocab_size - first)])
    wrong = [t["content"] for t in special if tokenizer.convert_tokens_to_ids(t["content"]) != t["id"]]
    if wrong or len(tokenizer) != vocab_size or vocab_size - first != _TIMESTAMPS:
        raise WhisperFolderError(f"{file} does not give the model's token ids (vocab {vocab_size}, "
                                 f"{len(tokenizer)} tokens, {vocab_size - first} timestamps, misplaced: {wrong[:5]})")
    return tokenizer


def _save(out: Path, model, state: dict[str, torch.Tensor], ct2_config: dict, tokenizer, info) -> None:
    from safetensors.torch import save_file
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperProcessor

    ids = tokenizer.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    languages = {} if not info.multilingual else {f"<|{code}|>": ids(f"<|{code}|>") for code in info.languages}
    ffn = {side: state[f"model.{side}.layers.0.fc1.weight"].shape[0] for side in ("encoder", "decoder")}
    suppress = {"suppress_tokens": ct2_config["suppress_ids"],
                "begin_suppress_tokens": ct2_config["suppress_ids_begin"]}
    config = WhisperConfig(
        vocab_size=info.vocab_size, num_mel_bins=info.n_mels, d_model=info.d_model,
        encoder_layers=info.encoder_layers, decoder_layers=info.decoder_layers,
        encoder_attention_heads=int(model.get("encoder/num_heads")),
        decoder_attention_heads=int(model.get("decoder/num_heads")),
        encoder_ffn_dim=ffn["encoder"], decoder_ffn_dim=ffn["decoder"],
        max_source_positions=state["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state["model.decoder.embed_positions.weight"].shape[0],
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot,
        tie_word_embeddings=True, **suppress,
    )
    config.architectures = [MULTILINGUAL_ARCHITECTURE if info.multilingual else ENGLISH_ONLY_ARCHITECTURE]
    config.dtype = next(iter(state.values())).dtype
    config.save_pretrained(out)
    generation = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot,
        max_length=config.max_target_positions, is_multilingual=info.multilingual,
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=_MAX_INITIAL_TIMESTAMP_INDEX, return_timestamps=False,
        alignment_heads=ct2_config["alignment_heads"], **suppress,
        **({"lang_to_id": languages, "task_to_id": {t: ids(f"<|{t}|>") for t in ("transcribe", "translate")}}
           if info.multilingual else {}),
    )
    generation.save_pretrained(out)
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    features = WhisperFeatureExtractor(feature_size=info.n_mels)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    # the files older readers look for: faster-whisper and CTranslate2's converter read preprocessor_config.json,
    # slow BPE tokenizers vocab.json and merges.txt
    features.save_pretrained(out)
    tokenizer.save_vocabulary(str(out))
    for file in out.iterdir():
        file.chmod(0o644)
    out.chmod(0o755)


def convert_hf_to_ct2(src: str | Path, dst: str | Path, *, quantization: str = "float16") -> Path:
    """Write the transformers Whisper folder `src` as a faster-whisper / CTranslate2 folder `dst` with
    CTranslate2's own converter (offline: the folder only), keeping its tokenizer.json and
    preprocessor_config.json. `quantization` as CTranslate2's (float16, float32, int8, ...).

    Raises WhisperFolderError when `src` is not a transformers Whisper folder or `dst` exists."""
    import ctranslate2

    src, dst = Path(src), Path(dst)
    if read_whisper_folder(src).layout != "hf":
        raise WhisperFolderError(f"{src} is already a CTranslate2 folder")
    if dst.exists():
        raise WhisperFolderError(f"{dst} exists; give a new folder")
    files = [f for f in ("tokenizer.json", "preprocessor_config.json") if (src / f).is_file()]
    converter = ctranslate2.converters.TransformersConverter(str(src), copy_files=files)
    return Path(converter.convert(str(dst), quantization=quantization))
