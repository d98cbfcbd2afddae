"""Helpers for the gateway tests: start `lalm serve` as a real process (lalm.serve.process), make
audio parts, check OpenAI error bodies."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
from media import encode
from openai import OpenAI

from lalm.serve.process import GatewayProcess

REPO = Path(__file__).resolve().parents[2]
AUDIO_TOKENS_PER_SECOND = 25  # Qwen2-Audio: encoder stride 2, then average pooling 2, on 100 mel frames/s


class Gateway(GatewayProcess):
    """A running `lalm serve` process (lalm.serve.process), with an openai client for it."""

    def client(self, api_key: str = "unused", **kw: object) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=kw.pop("timeout", 300), **kw)


def start_gateway(args: list[str], log: Path, *, env: dict[str, str] | None = None, timeout: float = 300,
                  lalm: list[str] | None = None, cwd: Path = REPO) -> Gateway:
    """`lalm serve ARGS` once healthy; by default this checkout's (`python -m lalm.cli` from the repository
    root), or the command `lalm` run in `cwd` (e.g. an installed wheel's script)."""
    return Gateway.start(args, log, env=env, timeout=timeout, lalm=lalm, cwd=cwd)


def stop_gateway(gw: Gateway) -> int | None:
    """SIGTERM (a clean shutdown, which also stops a vLLM child) and wait; the exit code."""
    return gw.stop()


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
