"""`lalm serve` as a child process: the one launcher the tests, the evals' fixtures and the benchmarks use
(beside lalm/engines/vllm_process.py, which does the same for a vLLM server).

It starts `python -m lalm.cli serve` (or another `lalm` command, e.g. a wheel's script) on a free loopback
port, waits until /health answers 200, and stops it with SIGTERM (a clean shutdown, which also stops a vLLM
child it started), killing it only if that does not end it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from lalm.engines.vllm_process import free_port

__all__ = ["GatewayProcess"]


@dataclass
class GatewayProcess:
    """A running `lalm serve` at `url` (http://127.0.0.1:PORT), its output in `log`."""

    url: str
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, args: list[str], log: Path, *, env: dict[str, str] | None = None, timeout: float = 300,
              lalm: list[str] | None = None, cwd: Path | None = None) -> GatewayProcess:
        """Start `lalm serve ARGS` on 127.0.0.1 and a free port and return it once healthy. `lalm`: the command
        (default `python -m lalm.cli`, so the checkout in `cwd` runs); `env` is added to this environment.
        Raises RuntimeError when it exits, TimeoutError when it is not healthy within `timeout` seconds."""
        port = free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*(lalm or [sys.executable, "-m", "lalm.cli"]), "serve", "--host", "127.0.0.1", "--port", str(port),
                 *args],
                cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        gw = cls(f"http://127.0.0.1:{port}", proc, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"lalm serve exited with {proc.returncode}:\n{gw.log_tail()}")
            if gw.healthy():
                return gw
            time.sleep(0.5)
        gw.stop()
        raise TimeoutError(f"lalm serve was not healthy within {timeout:g} s:\n{gw.log_tail()}")

    def healthy(self) -> bool:
        """Whether /health answers 200 now."""
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self, timeout: float = 90) -> int | None:
        """SIGTERM and wait up to `timeout` seconds, then SIGKILL; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
