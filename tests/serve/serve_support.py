"""Helpers for the gateway tests: the gateway in this process (`create_app` behind an in-process ASGI
transport) or as a real `lalm serve` process (lalm.serve.process), audio parts, OpenAI error bodies."""

from __future__ import annotations

import base64
from functools import cached_property
from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient
from media import encode
from openai import OpenAI

from lalm.config import Settings
from lalm.serve.app import create_app
from lalm.serve.process import GatewayProcess

REPO = Path(__file__).resolve().parents[2]
AUDIO_TOKENS_PER_SECOND = 25  # Qwen2-Audio: encoder stride 2, then average pooling 2, on 100 mel frames/s


class Gateway(GatewayProcess):
    """A running `lalm serve` process (lalm.serve.process), with an openai client and an httpx client for it."""

    def client(self, api_key: str = "unused", **kw: object) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=kw.pop("timeout", 300), **kw)

    @cached_property
    def http(self) -> httpx.Client:
        """Plain HTTP to the gateway over a loopback socket; paths are relative to `url`."""
        return httpx.Client(base_url=self.url)


class InProcessGateway:
    """The gateway app (`create_app(settings)`) in this process, for tests where the process does not matter.

    speaches' pattern (its tests/conftest.py: the real openai SDK with an httpx client whose transport calls
    the ASGI app, no socket), kept synchronous with Starlette's TestClient: an `httpx.Client` whose transport
    runs the app on an event loop in a helper thread, and which runs the app's lifespan (the engine starts on
    `start`, closes on `stop`), which httpx's own ASGITransport does not. Same interface as `Gateway`: `url`,
    `http`, `client()`, `healthy()`."""

    url = "http://testserver"

    def __init__(self, settings: Settings) -> None:
        # a bug's exception is answered by the app's ServerErrors, as in a served process, not raised here
        self.http = TestClient(create_app(settings), base_url=self.url, raise_server_exceptions=False)

    def start(self) -> InProcessGateway:
        self.http.__enter__()
        return self

    def stop(self) -> None:
        self.http.__exit__(None, None, None)

    def client(self, api_key: str = "unused", **kw: object) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=kw.pop("timeout", 300),
                      http_client=self.http, **kw)

    def healthy(self) -> bool:
        """Whether /health answers 200 now."""
        return self.http.get("/health").status_code == 200


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
