"""The one error family (lalm.errors.LalmError): every domain error carries its HTTP status, code and param,
and the gateway's one mapping turns each into OpenAI's error body, counting 5xx engine failures."""

from __future__ import annotations

import pytest

from lalm.audio import AudioError
from lalm.engines.base import EngineError
from lalm.errors import LalmError
from lalm.serve.errors import count_failure, to_api_error
from lalm.serve.fetch import FetchError
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
    err = to_api_error(exc, None if isinstance(exc, TaskError) else "file")
    assert err.status_code == status
    assert err.body() == {"error": {"message": str(exc), "type": err.type, "param": param, "code": code}}
    assert err.type == ("invalid_request_error" if status in (400, 413) else "server_error")


def test_only_server_side_failures_are_counted():
    metrics = Metrics()
    count_failure(metrics, EngineError("gone", 502, "upstream_error"))
    count_failure(metrics, EngineError("too long", 400, "audio_too_long"))
    count_failure(metrics, AudioError("corrupt_audio", "bad"))
    count_failure(metrics, RuntimeError("not ours"))
    assert metrics.upstream_errors.labels(code="upstream_error")._value.get() == 1
    assert metrics.upstream_errors.labels(code="audio_too_long")._value.get() == 0
