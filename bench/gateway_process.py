"""The gateway as the benchmarks run it: `lalm serve --engine vllm --upstream URL` in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lalm.engines.vllm_process import free_port

ROOT = Path(__file__).resolve().parents[1]


def start_gateway(upstream: str, model: str, log: Path, *extra: str,
                  env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a gateway in front of the vLLM server at `upstream` (extra `lalm serve` flags, extra environment)
    and return the process and its URL once /health answers 200."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lalm.cli", "serve", "--engine", "vllm", "--upstream", upstream, "--model", model,
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
