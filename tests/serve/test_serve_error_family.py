"""The one error family (lalm.errors.LalmError): every domain error carries its HTTP status, code and param,
and the gateway's one mapping turns each into OpenAI's error body, counting 5xx engine failures."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from lalm.audio import AudioError
from lalm.config import Settings
from lalm.engines.base import EngineError
from lalm.errors import LalmError
from lalm.modeling.audio_encoder import EncoderError
from lalm.modeling.checkpoint import CheckpointError
from lalm.modeling.convert import LLMError
from lalm.modeling.ctranslate2 import CT2FormatError
from lalm.modeling.trained_weights import DefaultModelError
from lalm.serve.errors import as_lalm_error, count_failure, error_body, error_type, install_error_handlers
from lalm.serve.fetch import FetchError
from lalm.serve.limits import Limits
from lalm.serve.prometheus import Metrics
from lalm.tasks import TaskError


@pytest.mark.parametrize(("exc", "status", "code", "param"), [
    (AudioError("corrupt_audio", "bad"), 400, "corrupt_audio", "file"),
    (AudioError("file_too_large", "big"), 413, "file_too_large", "file"),
    (TaskError("no such task"), 400, "invalid_task", "task"),
    (EngineError("down", 503, "upstream_unavailable"), 503, "upstream_unavailable", "file"),
    (FetchError("nope", 400, "forbidden_address"), 400, "forbidden_address", "file"),
])
def test_each_error_maps_to_its_openai_body(exc, status, code, param):
    assert isinstance(exc, LalmError)
    # the caller's param names the field; TaskError knows its own
    err = as_lalm_error(exc, None if isinstance(exc, TaskError) else "file")
    assert err.status == status
    assert error_body(err) == {"error": {"message": str(exc), "type": error_type(status), "param": param,
                                         "code": code}}
    assert error_type(status) == ("invalid_request_error" if status in (400, 413) else "server_error")


def test_what_is_not_a_lalm_error_still_gets_a_status():
    assert as_lalm_error(TimeoutError()).status == 504
    bug = as_lalm_error(KeyError("x"))
    assert (bug.status, bug.code) == (500, "internal_error") and "KeyError" in bug.message


@pytest.mark.parametrize("exc", [
    EncoderError("not a Whisper folder"), LLMError("a gpt2 model"), CT2FormatError("truncated"),
    CheckpointError("ckpt", ["no config.json"]), DefaultModelError("weights missing"),
])
def test_model_making_errors_are_lalm_errors(exc):
    """`lalm assemble` and `lalm serve` catch LalmError alone: each model-source error must be one."""
    assert isinstance(exc, LalmError) and exc.code and exc.message == str(exc)


def test_only_server_side_failures_are_counted():
    metrics = Metrics()
    count_failure(metrics, EngineError("gone", 502, "upstream_error"))
    count_failure(metrics, EngineError("too long", 400, "audio_too_long"))
    count_failure(metrics, AudioError("corrupt_audio", "bad"))
    count_failure(metrics, RuntimeError("not ours"))
    assert metrics.upstream_errors.labels(code="upstream_error")._value.get() == 1
    assert metrics.upstream_errors.labels(code="audio_too_long")._value.get() == 0


class _Body(BaseModel):
    text: str


def test_a_body_passing_the_limit_while_fastapi_reads_it_is_a_413():
    """A chunked body (no Content-Length) that grows past the limit makes the limiter raise inside FastAPI's
    body parsing, which turns any exception there into a 400 "There was an error parsing the body": the answer
    is still the limiter's 413 (in-process: the ASGI app, no socket)."""
    app = FastAPI()
    app.state.metrics = Metrics()
    install_error_handlers(app)

    @app.post("/v1/echo")
    async def echo(body: _Body) -> dict:
        return {"text": body.text}

    limited = Limits(app, Settings(max_request_bytes=1000))

    async def post(size: int) -> httpx.Response:
        async def chunks():
            for _ in range(size // 100):
                yield b" " * 100
            yield b'{"text": "hi"}'

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://app") as client:
            return await client.post("/v1/echo", content=chunks(), headers={"content-type": "application/json"})

    small, big = asyncio.run(post(500)), asyncio.run(post(1500))
    assert small.status_code == 200 and small.json() == {"text": "hi"}
    assert "content-length" not in big.request.headers
    assert big.status_code == 413
    assert big.json() == {"error": {"message": "The request body is larger than the limit of 1000 bytes.",
                                    "type": "invalid_request_error", "param": None, "code": "request_too_large"}}
