"""`lalm assemble` on tiny random sources built in the test: the Llama -> Qwen2 conversion and the Qwen2 copy
keep the text-only logits; the transformers and CTranslate2 Whisper encoders keep the per-frame encoder
output; the tokenizer, embeddings, chat template and stop tokens are what Qwen2-Audio needs; sources that
cannot be converted exactly are refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from modeling_sources import LLAMA, TEXT
from typer.testing import CliRunner

from lalm.cli import app
from lalm.modeling.assemble import NEW_TOKENS, assemble
from lalm.modeling.audio_encoder import EncoderError, frame_features, load_encoder
from lalm.modeling.checkpoint import CHAT_TEMPLATE, check_checkpoint, load_checkpoint
from lalm.modeling.convert import LLMError, to_qwen2

# Same weights, same operations in float32: only summation order can differ between the two models.
LOGIT_TOL = 1e-4


@pytest.fixture(scope="module")
def from_llama(tiny_whisper: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble(encoder=tiny_whisper, llm=tiny_llama, out=tmp_path_factory.mktemp("asm") / "llama", seed=7,
                    log=lambda _: None)


@pytest.fixture(scope="module")
def from_ct2(tiny_whisper_ct2: Path, tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble(encoder=tiny_whisper_ct2, llm=tiny_qwen2, out=tmp_path_factory.mktemp("asm") / "ct2",
                    log=lambda _: None)


def _mel(speech: np.ndarray, folder: Path) -> torch.Tensor:
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor.from_pretrained(folder)
    return torch.from_numpy(fe(speech, sampling_rate=16000, return_tensors="np").input_features)


def _text_logits_match(assembled: Path, source: Path) -> float:
    """Max |logit difference| over prompts, on every id the source vocabulary had before new tokens took
    their rows."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    src_tok = AutoTokenizer.from_pretrained(source)
    model, processor = load_checkpoint(assembled)
    tok = processor.tokenizer
    new_ids = {tok.convert_tokens_to_ids(t) for t in NEW_TOKENS if t not in src_tok.get_vocab()}
    keep = [i for i in range(src.config.vocab_size) if i not in new_ids]
    worst = 0.0
    with torch.no_grad():
        for text in TEXT:
            ids = src_tok(text, return_tensors="pt").input_ids
            assert tok(text, return_tensors="pt").input_ids.tolist() == ids.tolist(), "tokenization changed"
            theirs = src(input_ids=ids).logits[0][:, keep]
            ours = model(input_ids=ids).logits[0][:, keep]
            assert ours.argmax(-1).tolist() == theirs.argmax(-1).tolist()
            worst = max(worst, float((ours - theirs).abs().max()))
    return worst


def test_llama_converted_to_qwen2_keeps_text_logits(from_llama: Path, tiny_llama: Path) -> None:
    cfg = json.loads((from_llama / "config.json").read_text())["text_config"]
    src = json.loads((tiny_llama / "config.json").read_text())
    assert cfg["model_type"] == "qwen2"
    assert cfg["rope_parameters"] == src["rope_parameters"]
    assert cfg["rms_norm_eps"] == src["rms_norm_eps"]
    assert cfg["num_key_value_heads"] == src["num_key_value_heads"]
    diff = _text_logits_match(from_llama, tiny_llama)
    print(f"tiny Llama -> Qwen2: max |logit diff| {diff:.3g}")
    assert diff < LOGIT_TOL


def test_qwen2_llm_is_copied_with_its_biases(from_ct2: Path, tiny_qwen2: Path) -> None:
    diff = _text_logits_match(from_ct2, tiny_qwen2)
    print(f"tiny Qwen2 copy: max |logit diff| {diff:.3g}")
    assert diff < LOGIT_TOL


def test_transformers_whisper_encoder_output_is_kept(from_llama: Path, tiny_whisper: Path, speech) -> None:
    from transformers import WhisperModel

    mel = _mel(speech, from_llama)
    whisper = WhisperModel.from_pretrained(tiny_whisper, dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = whisper.encoder(mel).last_hidden_state
    model, _ = load_checkpoint(from_llama)
    ours = frame_features(model.model.audio_tower, mel)
    diff = float((ours - theirs).abs().max())
    print(f"tiny Whisper encoder: max |diff| {diff:.3g} (output scale {float(theirs.abs().max()):.3g})")
    assert ours.shape == theirs.shape == (1, 1500, 64)
    assert diff < 1e-5


@pytest.mark.parametrize("quantization", ["float16", "float32"])
def test_ctranslate2_reader_maps_every_weight_exactly(
    tiny_whisper: Path, tmp_path: Path, quantization: str
) -> None:
    import ctranslate2
    from transformers import WhisperModel

    out = tmp_path / "ct2"
    ctranslate2.converters.TransformersConverter(str(tiny_whisper)).convert(str(out), quantization=quantization)
    source = WhisperModel.from_pretrained(tiny_whisper, dtype=torch.float32).encoder.state_dict()
    enc = load_encoder(out)
    assert enc.kind == "CTranslate2"
    assert set(enc.state_dict) == set(source)
    dtype = getattr(torch, quantization)
    for name, tensor in enc.state_dict.items():
        assert tensor.dtype == torch.float32
        # fp16 -> fp32 widening is exact, so the read weight is the source rounded to the stored dtype
        assert torch.equal(tensor, source[name].to(dtype).to(torch.float32)), name


def test_ctranslate2_encoder_output_equals_the_ctranslate2_runtime(from_ct2: Path, tiny_whisper_ct2: Path,
                                                                   speech) -> None:
    import ctranslate2

    mel = _mel(speech, from_ct2)
    runtime = ctranslate2.models.Whisper(str(tiny_whisper_ct2), device="cpu", compute_type="float32")
    theirs = torch.from_numpy(np.array(runtime.encode(ctranslate2.StorageView.from_array(mel.numpy()))))
    model, _ = load_checkpoint(from_ct2)
    ours = frame_features(model.model.audio_tower, mel)
    diff = float((ours - theirs).abs().max())
    print(f"tiny CTranslate2 encoder: max |diff| {diff:.3g} (output scale {float(theirs.abs().max()):.3g})")
    assert diff < 1e-4


def test_vocabulary_template_and_stop_tokens(from_llama: Path, tiny_llama: Path) -> None:
    from transformers import AutoTokenizer, LlamaForCausalLM

    check_checkpoint(from_llama)
    model, processor = load_checkpoint(from_llama)
    tok = processor.tokenizer
    src_tok = AutoTokenizer.from_pretrained(tiny_llama)
    for t in NEW_TOKENS:
        assert t in tok.get_vocab()
        assert tok(t, add_special_tokens=False).input_ids == [tok.convert_tokens_to_ids(t)], "token was split"
    assert tok.chat_template == CHAT_TEMPLATE
    # the source embedding had 3 padding rows: two new tokens reuse them, three more rows are added
    assert model.config.text_config.vocab_size == len(src_tok) + len(NEW_TOKENS) == len(tok)
    src = LlamaForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    mean = src.model.embed_tokens.weight[:len(src_tok)].mean(0)
    embed, head = model.model.language_model.embed_tokens.weight, model.lm_head.weight
    for t in NEW_TOKENS:
        i = tok.convert_tokens_to_ids(t)
        assert torch.allclose(embed[i], mean) and torch.allclose(head[i], mean)
    gen = json.loads((from_llama / "generation_config.json").read_text())
    assert set(gen["eos_token_id"]) == {tok.convert_tokens_to_ids("</s>"), tok.convert_tokens_to_ids("<|im_end|>")}
    assert model.config.audio_token_index == tok.convert_tokens_to_ids("<|AUDIO|>")


def test_projector_is_seeded_and_at_the_embedding_scale(from_llama: Path, tiny_whisper: Path, tiny_llama: Path,
                                                        tmp_path: Path, speech) -> None:
    again = assemble(encoder=tiny_whisper, llm=tiny_llama, out=tmp_path / "again", seed=7, log=lambda _: None)
    other = assemble(encoder=tiny_whisper, llm=tiny_llama, out=tmp_path / "other", seed=8, log=lambda _: None)
    a, _ = load_checkpoint(from_llama)
    b, _ = load_checkpoint(again)
    c, _ = load_checkpoint(other)
    w = a.model.multi_modal_projector.linear.weight
    assert torch.equal(w, b.model.multi_modal_projector.linear.weight)
    assert not torch.equal(w, c.model.multi_modal_projector.linear.weight)
    with torch.no_grad():
        audio = a.model.multi_modal_projector(a.model.audio_tower(_mel(speech, from_llama)).last_hidden_state)
    embed_rms = float(a.model.language_model.embed_tokens.weight.detach().pow(2).mean().sqrt())
    audio_rms = float(audio.pow(2).mean().sqrt())
    assert 0.5 < audio_rms / embed_rms < 2


def test_conversion_refuses_what_qwen2_cannot_express(tiny_llama: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    biased = LlamaForCausalLM(LlamaConfig(vocab_size=64, attention_bias=True, **LLAMA))
    with torch.no_grad():
        biased.model.layers[0].self_attn.o_proj.bias.fill_(0.1)
    with pytest.raises(LLMError, match="o_proj bias"):
        to_qwen2(biased)
    with pytest.raises(LLMError, match="head size"):
        to_qwen2(LlamaForCausalLM(LlamaConfig(vocab_size=64, **{**LLAMA, "head_dim": 64})))
    with pytest.raises(LLMError, match="MLP biases"):
        to_qwen2(LlamaForCausalLM(LlamaConfig(vocab_size=64, mlp_bias=True, **LLAMA)))
    with pytest.raises(LLMError, match="'gpt2'"):
        gpt2 = GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
        to_qwen2(GPT2LMHeadModel(gpt2))


def test_llama_attention_biases_carry_over() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, attention_bias=True, **LLAMA))
    with torch.no_grad():
        model.model.layers[1].self_attn.k_proj.bias.fill_(0.25)
    _, state = to_qwen2(model)
    assert torch.equal(state["model.layers.1.self_attn.k_proj.bias"], torch.full((64,), 0.25))
    assert "model.layers.1.self_attn.o_proj.bias" not in state


def test_encoder_sources_that_cannot_work_are_refused(tiny_whisper: Path, tmp_path: Path) -> None:
    import ctranslate2

    int8 = tmp_path / "int8"
    ctranslate2.converters.TransformersConverter(str(tiny_whisper)).convert(str(int8), quantization="int8")
    with pytest.raises(EncoderError, match="int8"):
        load_encoder(int8)
    with pytest.raises(EncoderError, match="neither"):
        load_encoder(tmp_path)
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "model.bin").write_bytes((int8 / "model.bin").read_bytes()[:5000])
    with pytest.raises(EncoderError, match="truncated"):
        load_encoder(truncated)


def test_cli_assembles_and_reports_bad_sources(tiny_whisper: Path, tiny_llama: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["assemble", "--encoder", str(tiny_whisper), "--llm", str(tiny_llama),
                                 "--out", str(tmp_path / "m"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "transformers Whisper encoder" in result.output
    assert "llama LLM" in result.output and "converted to Qwen2 layout" in result.output
    assert "<|audio_bos|> <|AUDIO|> <|audio_eos|>" in result.output
    check_checkpoint(tmp_path / "m")
    result = runner.invoke(app, ["assemble", "--encoder", str(tmp_path / "nowhere"), "--llm", str(tiny_llama),
                                 "--out", str(tmp_path / "n")])
    assert result.exit_code == 2
    assert "is not a folder" in result.output
    result = runner.invoke(app, ["assemble", "--encoder", str(tiny_whisper), "--llm", str(tiny_whisper / "config.json"),
                                 "--out", str(tmp_path / "n")])
    assert result.exit_code == 2
    assert "not a .gguf" in result.output
