"""The servers the benchmarks start: a vLLM server on a checkpoint, and `lalm serve` in front of it (or on the
transformers engine), each a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lalm.engines.vllm_process import VLLMProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


def start_vllm(model: str | None, work: Path) -> tuple[VLLMProcess, str]:
    """A vLLM server on `model` (default: a tiny random checkpoint built in `work`), started and healthy; returns
    it and the model folder."""
    if model is None:
        from lalm.modeling.tiny import make_tiny

        model = str(make_tiny(work / "tiny"))
    vllm = VLLMProcess(model, served_model_name="tiny", dtype="float32", max_model_len=4096,
                       log_path=work / "vllm.log")
    print(f"starting vLLM on {model} (log: {work / 'vllm.log'})", flush=True)
    vllm.start(timeout=900)
    return vllm, model


def start_gateway(upstream: str | None, model: str, log: Path, *extra: str,
                  env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a gateway in front of the vLLM server at `upstream`, or on the transformers engine when `upstream`
    is None (extra `lalm serve` flags, extra environment), and return the process and its URL once /health
    answers 200."""
    port = free_port()
    engine = ["--engine", "vllm", "--upstream", upstream] if upstream else ["--engine", "hf"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lalm.cli", "serve", *engine, "--model", model,
         "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         *extra],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited; see {log}")
        time.sleep(0.5)
    raise TimeoutError("the gateway did not become healthy")


def stop_gateway(proc: subprocess.Popen) -> None:
    """SIGTERM (a clean shutdown) and wait; kill if it does not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
