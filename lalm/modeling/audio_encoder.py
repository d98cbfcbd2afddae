"""Whisper encoders as Qwen2-Audio audio towers: read a CTranslate2 Whisper folder (faster-whisper's format)
or a transformers Whisper folder and return the encoder's settings and a state dict in Qwen2-Audio's
`audio_tower.*` names (without the prefix), all float32.

The Qwen2-Audio audio tower is Whisper's encoder plus an AvgPool1d(2) before the final LayerNorm, so the
weights map one to one; only the order of the last two operations differs. Whisper (and CTranslate2's
`encode`) LayerNorm every frame (1500 for 30 s); Qwen2-Audio pools pairs of frames first, then applies the
same LayerNorm. `frame_features` runs the tower the Whisper way, to compare like with like.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import WhisperFeatureExtractor

from lalm.errors import LalmError
from lalm.modeling.ctranslate2 import CT2FormatError, read_ct2

__all__ = ["EncoderError", "EncoderSource", "frame_features", "load_encoder"]

# Qwen2-Audio's processor pads every clip to 30 s of mel frames (3000), which the conv stack halves to 1500
# positions: an encoder with another position count cannot be fed by it.
_POSITIONS = 1500


class EncoderError(LalmError, ValueError):
    """An encoder source that cannot become a Qwen2-Audio audio tower; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_model")


@dataclass
class EncoderSource:
    """A Whisper encoder ready to load into `Qwen2AudioEncoder`: `config` holds Qwen2AudioEncoderConfig
    fields, `state_dict` float32 tensors in its parameter names, `kind` what was read."""

    kind: str
    path: Path
    config: dict
    state_dict: dict[str, torch.Tensor]
    feature_extractor: WhisperFeatureExtractor

    def describe(self) -> str:
        c = self.config
        params = sum(t.numel() for t in self.state_dict.values())
        return (f"{self.kind} Whisper encoder at {self.path}: {c['encoder_layers']} layers, d_model {c['d_model']}, "
                f"{c['encoder_attention_heads']} heads, ffn {c['encoder_ffn_dim']}, {c['num_mel_bins']} mel bins, "
                f"{params / 1e6:.1f}M parameters")


def load_encoder(path: str | Path) -> EncoderSource:
    """Read the encoder of a Whisper model folder: CTranslate2 (`model.bin`) or transformers (`config.json`
    with model_type whisper). Weights become float32 exactly (fp16 and bf16 widen without rounding)."""
    root = Path(path)
    if not root.is_dir():
        raise EncoderError(f"{root} is not a folder; --encoder takes a Whisper model folder "
                           "(CTranslate2 with model.bin, or transformers with config.json)")
    if (root / "model.bin").is_file():
        return _from_ctranslate2(root)
    cfg_file = root / "config.json"
    if cfg_file.is_file() and json.loads(cfg_file.read_text()).get("model_type") == "whisper":
        return _from_transformers(root)
    raise EncoderError(f"{root} holds neither a CTranslate2 model.bin nor a transformers Whisper config.json")


def _check(config: dict, root: Path) -> None:
    if config["max_source_positions"] != _POSITIONS:
        raise EncoderError(f"{root}: the encoder has {config['max_source_positions']} positions; Qwen2-Audio feeds "
                           f"30 s windows, which need {_POSITIONS}")


def _feature_extractor(root: Path, mel_bins: int) -> WhisperFeatureExtractor:
    """The folder's own feature extractor when it has one, else Whisper's standard one for `mel_bins`."""
    if (root / "preprocessor_config.json").is_file():
        fe = WhisperFeatureExtractor.from_pretrained(root)
        if fe.feature_size != mel_bins:
            raise EncoderError(f"{root}: preprocessor_config.json makes {fe.feature_size} mel bins; "
                               f"the encoder takes {mel_bins}")
        return fe
    return WhisperFeatureExtractor(feature_size=mel_bins, sampling_rate=16000)


def _from_transformers(root: Path) -> EncoderSource:
    from transformers import WhisperModel

    whisper = WhisperModel.from_pretrained(root, dtype=torch.float32)
    wc = whisper.config
    config = {
        "num_mel_bins": wc.num_mel_bins,
        "encoder_layers": wc.encoder_layers,
        "encoder_attention_heads": wc.encoder_attention_heads,
        "encoder_ffn_dim": wc.encoder_ffn_dim,
        "d_model": wc.d_model,
        "max_source_positions": wc.max_source_positions,
        "activation_function": wc.activation_function,
        "scale_embedding": wc.scale_embedding,
    }
    _check(config, root)
    # Whisper's encoder and Qwen2-Audio's tower share parameter names (k_proj without bias included).
    state = {k: v.detach().clone() for k, v in whisper.encoder.state_dict().items()}
    return EncoderSource("transformers", root, config, state, _feature_extractor(root, wc.num_mel_bins))


def _from_ctranslate2(root: Path) -> EncoderSource:
    try:
        ct2 = read_ct2(root)
    except CT2FormatError as exc:
        raise EncoderError(str(exc)) from None
    if ct2.spec != "WhisperSpec":
        raise EncoderError(f"{root}: model.bin holds a {ct2.spec}, not a Whisper model")
    if any(name.startswith("encoder/") and name.endswith("weight_scale") for name in ct2.variables):
        raise EncoderError(f"{root}: the encoder is int8-quantized; convert the Whisper model with "
                           "--quantization float16 or float32 so its weights can be read exactly")

    def var(name: str) -> torch.Tensor:
        return ct2.get(f"encoder/{name}").to(torch.float32)

    layers = sorted({int(m.group(1)) for n in ct2.variables if (m := re.match(r"encoder/layer_(\d+)/", n))})
    d_model = var("layer_norm/gamma").shape[0]
    conv1 = var("conv1/weight")
    config = {
        "num_mel_bins": conv1.shape[1],
        "encoder_layers": len(layers),
        "encoder_attention_heads": int(ct2.get("encoder/num_heads")),
        "encoder_ffn_dim": var("layer_0/ffn/linear_0/weight").shape[0],
        "d_model": d_model,
        "max_source_positions": var("position_encodings/encodings").shape[0],
        # CTranslate2's WhisperSpec always uses erf GELU, as Whisper does.
        "activation_function": "gelu",
        "scale_embedding": False,
    }
    _check(config, root)
    state = {
        "conv1.weight": conv1, "conv1.bias": var("conv1/bias"),
        "conv2.weight": var("conv2/weight"), "conv2.bias": var("conv2/bias"),
        "embed_positions.weight": var("position_encodings/encodings"),
        "layer_norm.weight": var("layer_norm/gamma"), "layer_norm.bias": var("layer_norm/beta"),
    }
    for i in layers:
        src, dst = f"layer_{i}", f"layers.{i}"
        # Q, K and V are fused along the output dimension; Whisper's K projection has no bias, which the
        # converter stored as zeros (checked, so a model with a real K bias is refused, not silently cut).
        q, k, v = var(f"{src}/self_attention/linear_0/weight").split(d_model)
        qb, kb, vb = var(f"{src}/self_attention/linear_0/bias").split(d_model)
        if torch.any(kb != 0):
            raise EncoderError(f"{root}: encoder layer {i} has a non-zero key bias, which Whisper does not have")
        state |= {
            f"{dst}.self_attn.q_proj.weight": q, f"{dst}.self_attn.q_proj.bias": qb,
            f"{dst}.self_attn.k_proj.weight": k,
            f"{dst}.self_attn.v_proj.weight": v, f"{dst}.self_attn.v_proj.bias": vb,
            f"{dst}.self_attn.out_proj.weight": var(f"{src}/self_attention/linear_1/weight"),
            f"{dst}.self_attn.out_proj.bias": var(f"{src}/self_attention/linear_1/bias"),
            f"{dst}.self_attn_layer_norm.weight": var(f"{src}/self_attention/layer_norm/gamma"),
            f"{dst}.self_attn_layer_norm.bias": var(f"{src}/self_attention/layer_norm/beta"),
            f"{dst}.fc1.weight": var(f"{src}/ffn/linear_0/weight"), f"{dst}.fc1.bias": var(f"{src}/ffn/linear_0/bias"),
            f"{dst}.fc2.weight": var(f"{src}/ffn/linear_1/weight"), f"{dst}.fc2.bias": var(f"{src}/ffn/linear_1/bias"),
            f"{dst}.final_layer_norm.weight": var(f"{src}/ffn/layer_norm/gamma"),
            f"{dst}.final_layer_norm.bias": var(f"{src}/ffn/layer_norm/beta"),
        }
    state = {k: v.contiguous() for k, v in state.items()}
    return EncoderSource("CTranslate2", root, config, state, _feature_extractor(root, config["num_mel_bins"]))


@torch.no_grad()
def frame_features(tower: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    """Per-frame encoder output the Whisper way — the tower's own forward up to its last layer, then the final
    LayerNorm on every frame, no pooling — for mel `input_features` (batch, mel_bins, 3000); returns
    (batch, 1500, d_model). This is what Whisper's encoder and CTranslate2's `Whisper.encode` return."""
    captured: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor | tuple) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = tower.layers[-1].register_forward_hook(keep)
    try:
        tower(input_features.to(tower.conv1.weight.dtype))
    finally:
        handle.remove()
    return tower.layer_norm(captured[0])
