"""Helpers for the gateway tests: start `lalm serve` as a real process on a free loopback port, make
audio parts, check OpenAI error bodies."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from media import encode
from openai import OpenAI

from lalm.engines.vllm_process import free_port

REPO = Path(__file__).resolve().parents[2]
AUDIO_TOKENS_PER_SECOND = 25  # Qwen2-Audio: encoder stride 2, then average pooling 2, on 100 mel frames/s


@dataclass
class Gateway:
    """A running `lalm serve` process."""

    url: str
    proc: subprocess.Popen
    log: Path

    def client(self, api_key: str = "unused", **kw: object) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=kw.pop("timeout", 300), **kw)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def start_gateway(args: list[str], log: Path, *, env: dict[str, str] | None = None, timeout: float = 300,
                  lalm: list[str] | None = None, cwd: Path = REPO) -> Gateway:
    """`lalm serve ARGS` once healthy. `lalm` is the command (default `python -m lalm.cli`, run from the
    repository root so this checkout's code runs; e.g. an installed `lalm` script with another `cwd`)."""
    port = free_port()
    out = log.open("wb")
    proc = subprocess.Popen(
        [*(lalm or [sys.executable, "-m", "lalm.cli"]), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    gw = Gateway(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lalm serve exited with {proc.returncode}:\n{gw.log_tail()}")
        if gw.healthy():
            return gw
        time.sleep(0.5)
    stop_gateway(gw)
    raise TimeoutError(f"lalm serve was not healthy within {timeout} s:\n{gw.log_tail()}")


def stop_gateway(gw: Gateway) -> int:
    """SIGTERM (a clean shutdown, which also stops a vLLM child) and wait; the exit code."""
    if gw.proc.poll() is None:
        gw.proc.send_signal(signal.SIGTERM)
        try:
            gw.proc.wait(90)
        except subprocess.TimeoutExpired:
            gw.proc.kill()
            gw.proc.wait(10)
    return gw.proc.returncode


def b64(samples: np.ndarray, fmt: str = "wav") -> str:
    return base64.b64encode(encode(samples, fmt)).decode()


def input_audio(samples: np.ndarray, fmt: str = "wav") -> dict:
    return {"type": "input_audio", "input_audio": {"data": b64(samples, fmt), "format": fmt}}


def audio_url(samples: np.ndarray, fmt: str = "wav") -> dict:
    mime = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac"}[fmt]
    return {"type": "audio_url", "audio_url": {"url": f"data:{mime};base64,{b64(samples, fmt)}"}}


def user(*parts: dict | str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": p} if isinstance(p, str) else p for p in parts]}


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    """`resp` is `status` with OpenAI's error body (and the given code / param); returns the error."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def same_tokens(a: str, b: str) -> bool:
    """Whether two engines' texts come from the same tokens. The tiny model's random tokens often form
    invalid UTF-8: transformers renders an incomplete byte sequence as U+FFFD, vLLM's incremental
    detokenizer drops it; everything else must be identical."""
    return a.replace("\ufffd", "") == b.replace("\ufffd", "")
