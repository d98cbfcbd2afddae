"""The trainable audio head of the default model, in Qwen2-Audio's own modules so it exports unchanged.

On top of the frozen Whisper layers (their outputs are cached, features.py) the head is what the Qwen2-Audio
format can hold: `extra_layers` new encoder layers (appended to `audio_tower.layers`), the tower's AvgPool1d(2)
and final LayerNorm, and the projector's one Linear into the LLM's embedding space. New layers start as the
identity (their attention output and second feed-forward projection are zero), so training starts from the
assembled model's behaviour.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Qwen2AudioEncoderConfig
from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoderLayer

__all__ = ["AudioHead", "output_lengths"]


def output_lengths(frames: torch.Tensor) -> torch.Tensor:
    """Audio tokens for clips of `frames` 50 Hz encoder frames: Qwen2-Audio's `_get_feat_extract_output_lengths`
    second value, (frames - 2) // 2 + 1 (the AvgPool1d(2) drops an odd last frame)."""
    return (frames - 2) // 2 + 1


class AudioHead(nn.Module):
    """Cached 50 Hz encoder frames (B, T, d_audio) -> audio embeddings (B, T // 2, d_text) for the LLM.

    `first_layer` is the index the new layers take in `audio_tower.layers` (the frozen layer count)."""

    def __init__(self, audio_config: Qwen2AudioEncoderConfig, d_text: int, *, extra_layers: int,
                 first_layer: int) -> None:
        super().__init__()
        config = Qwen2AudioEncoderConfig(**{**audio_config.to_dict(), "dropout": 0.0, "attention_dropout": 0.0,
                                            "activation_dropout": 0.0})
        config._attn_implementation = "sdpa"
        self.first_layer = first_layer
        self.layers = nn.ModuleList(Qwen2AudioEncoderLayer(config) for _ in range(extra_layers))
        self.pool = nn.AvgPool1d(2, stride=2)
        self.layer_norm = nn.LayerNorm(config.d_model)
        self.projector = nn.Linear(config.d_model, d_text)
        with torch.no_grad():
            for layer in self.layers:
                for linear in (layer.self_attn.out_proj, layer.fc2):
                    linear.weight.zero_()
                    linear.bias.zero_()

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`frames` (B, T, d_audio) float32, right-padded; `lengths` (B,) valid frames. Returns the projected
        audio embeddings (B, T // 2, d_text) and their valid counts (B,) (output_lengths)."""
        batch, steps, _ = frames.shape
        valid = torch.arange(steps, device=frames.device)[None, :] < lengths[:, None]
        mask = None
        if not bool(valid.all()):
            mask = torch.zeros(batch, 1, 1, steps, dtype=frames.dtype, device=frames.device)
            mask.masked_fill_(~valid[:, None, None, :], torch.finfo(frames.dtype).min)
        x = frames
        for layer in self.layers:
            x = layer(x, mask)
        x = self.pool(x.transpose(1, 2)).transpose(1, 2)
        return self.projector(self.layer_norm(x)), output_lengths(lengths)

    def load_from_checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        """Take the LayerNorm and projector (and any new layers already there) from a Qwen2-Audio state dict
        in hub key names (`audio_tower.layer_norm.weight`, `multi_modal_projector.linear.weight`, ...)."""
        own = {k: state[v] for k, v in self.export_names().items() if v in state}
        missing = self.load_state_dict(own, strict=False).missing_keys
        if any(not k.startswith("layers.") for k in missing):
            raise KeyError(f"the checkpoint lacks {missing}")

    def export_names(self) -> dict[str, str]:
        """This module's parameter names -> the Qwen2-Audio hub key names they are saved under."""
        names = {}
        for key in self.state_dict():
            if key.startswith("layers."):
                index, rest = key.removeprefix("layers.").split(".", 1)
                names[key] = f"audio_tower.layers.{self.first_layer + int(index)}.{rest}"
            elif key.startswith("layer_norm."):
                names[key] = f"audio_tower.{key}"
            elif key.startswith("projector."):
                names[key] = f"multi_modal_projector.linear.{key.removeprefix('projector.')}"
        return names

    def export_state(self) -> dict[str, torch.Tensor]:
        """The head's weights under their Qwen2-Audio hub key names (float32 copies)."""
        state = self.state_dict()
        return {hub: state[own].detach().float().clone() for own, hub in self.export_names().items()}
