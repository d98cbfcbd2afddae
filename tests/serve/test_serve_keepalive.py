"""After a 500 the connection stays usable: a keep-alive client's next request on the same connection gets
its answer (uvicorn used to close the connection after the 500 was sent, so that request got an empty
reply). The app runs in a real uvicorn server on loopback; the engine that fails is the seam under test
(no request from a client can make lalm fail on purpose)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import uvicorn

from lalm.config import Settings
from lalm.engines.base import Completion, Delta, Engine, Message, SamplingParams
from lalm.engines.vllm_process import free_port
from lalm.serve.app import create_app


class BrokenEngine(Engine):
    """An engine with a bug: every request raises an unexpected exception."""

    model_name = "broken"

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        raise RuntimeError("a bug in the engine")

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        raise RuntimeError("a bug in the engine")
        yield  # pragma: no cover - makes this an async generator


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    app = create_app(Settings(model="broken", served_model_name="broken"), engine=BrokenEngine())
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    srv.should_exit = True
    thread.join(30)


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_requests_after_a_500_on_the_same_keep_alive_connection_are_answered(server: int) -> None:
    chat = {"model": "broken", "messages": [{"role": "user", "content": "hi"}]}
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    try:
        status, body = _request(conn, "POST", "/v1/chat/completions", chat)
        assert status == 500
        assert body["error"]["code"] == "internal_error" and body["error"]["type"] == "server_error"
        sock = conn.sock
        assert sock is not None  # the server did not announce a close
        status, body = _request(conn, "GET", "/health")
        assert status == 200, body
        status, body = _request(conn, "POST", "/v1/chat/completions", {**chat, "stream": True})
        assert status == 500 and body["error"]["code"] == "internal_error"
        status, body = _request(conn, "GET", "/v1/models")
        assert status == 200 and body["data"][0]["id"] == "broken"
        assert conn.sock is sock  # one connection throughout
    finally:
        conn.close()
