"""Source models for `lalm assemble` tests, built here in seconds with no download: a tiny random Llama (a
transformers folder whose tokenizer lacks every Qwen2-Audio token and whose embedding has padding rows), a
tiny random Qwen2, and a tiny random Whisper with every parameter random (biases and norms too, so a weight
mapped to the wrong place changes the output)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from modeling_sources import LLAMA, PADDED_ROWS, llama_tokenizer
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    WhisperConfig,
    WhisperForConditionalGeneration,
)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LlamaForCausalLM folder, vocab padded beyond the tokenizer, tied embeddings, GQA, head 32."""
    out = tmp_path_factory.mktemp("llama") / "llama"
    tok = llama_tokenizer()
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tok) + PADDED_ROWS, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, initializer_range=0.2, **LLAMA)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # RMSNorm weights start at 1: make them random so a dropped norm shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Qwen2ForCausalLM folder with non-zero q/k/v biases."""
    out = tmp_path_factory.mktemp("qwen2") / "qwen2"
    tok = llama_tokenizer()
    torch.manual_seed(2)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=False,
                         initializer_range=0.2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.bias"):
                p.normal_(0, 0.2)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random WhisperForConditionalGeneration folder (80 mel bins, 1500 positions, d_model 64) with a
    tokenizer, so CTranslate2's converter can read it too."""
    out = tmp_path_factory.mktemp("whisper") / "whisper"
    tok = llama_tokenizer()
    config = WhisperConfig(vocab_size=len(tok) + 16, num_mel_bins=80, encoder_layers=2, encoder_attention_heads=4,
                           decoder_layers=1, decoder_attention_heads=4, d_model=64, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, max_source_positions=1500, max_target_positions=64,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.eos_token_id, decoder_start_token_id=tok.bos_token_id)
    model = WhisperForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            # norms around 1, everything else around 0: random, yet activations stay in a sane range
            p.copy_(1 + 0.3 * noise if "layer_norm.weight" in name else 0.15 * noise)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_whisper_ct2(tiny_whisper: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_whisper` converted by CTranslate2's own converter to a float16 CTranslate2 folder, like
    faster-whisper's models."""
    import ctranslate2

    out = tmp_path_factory.mktemp("ct2") / "whisper-ct2"
    ctranslate2.converters.TransformersConverter(str(tiny_whisper)).convert(str(out), quantization="float16")
    return out
