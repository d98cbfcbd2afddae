"""Fixtures for the AIR-Bench runner: the offline dataset, the endpoint under test, a scripted
OpenAI-compatible server for the seams a real model cannot drive on demand (a 500 then a success, a judge
that replies "8 7" then words), and a proxy in front of the real endpoint that holds its answers after the
first N until the test releases them (an interruption at a known point, whatever the machine's speed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lalm.serve.process import GatewayProcess

Script = Callable[[dict[str, Any]], tuple[int, str]]


class _LoopbackServer:
    """An HTTP server on a free loopback port, answering in threads; `url` is its /v1 base."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ScriptedServer(_LoopbackServer):
    """/v1/chat/completions on 127.0.0.1 answering with `script(request) -> (status, content)`; every
    request body is kept in `requests`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: Script = lambda req: (200, "A")
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    status, content = server.script(body)
                if status == 200:
                    payload = {"id": "x", "object": "chat.completion", "created": int(time.time()),
                               "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": content}}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                else:
                    payload = {"error": {"message": content, "type": "error", "param": None, "code": status}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._serve(Handler)



@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


class HoldingProxy(_LoopbackServer):
    """A loopback proxy to the OpenAI-compatible endpoint at `upstream` (a base URL ending in /v1) that
    forwards the first `answer` POSTs as they come and holds every later one until `release()`: `holding`
    is set once a request is held, so a test knows its client is waiting on an answer that cannot come."""

    def __init__(self, upstream: str, answer: int) -> None:
        self.holding = threading.Event()
        self._released = threading.Event()
        self._count = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with proxy._lock:
                    proxy._count += 1
                    held = proxy._count > answer
                if held:
                    proxy.holding.set()
                    proxy._released.wait()
                try:
                    resp = httpx.post(upstream.removesuffix("/v1") + self.path, content=body, timeout=300,
                                      headers={"Content-Type": self.headers["Content-Type"]})
                    status, kind, data = resp.status_code, resp.headers["content-type"], resp.content
                except httpx.HTTPError as exc:  # released after the endpoint stopped
                    status, kind, data = 502, "text/plain", str(exc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client was interrupted meanwhile
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._serve(Handler)

    def release(self) -> None:
        """Answer the held requests (and every later one) at once."""
        self._released.set()

    def close(self) -> None:
        self.release()
        super().close()


@pytest.fixture
def holding_proxy() -> Iterator[Callable[[str, int], HoldingProxy]]:
    """`holding_proxy(upstream, answer)`: a HoldingProxy, released and closed after the test."""
    made: list[HoldingProxy] = []

    def make(upstream: str, answer: int) -> HoldingProxy:
        made.append(HoldingProxy(upstream, answer))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture(scope="session")
def airbench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline dataset in AIR-Bench's layout (2 items for each of 9 Foundation and 8 Chat tasks)."""
    from evals.airbench.fixture import make_fixture

    return make_fixture(tmp_path_factory.mktemp("airbench") / "AIR-Bench", seed=0, per_task=2)


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airbench_endpoint(vllm_server, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """(base URL, model name) of the real endpoint the runner is tested against: `lalm serve` (vLLM engine,
    upstream the session vLLM server on the tiny checkpoint)."""
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    args = ["--model", str(tiny_model), "--engine", "vllm", "--upstream", vllm_server.url,
            "--served-model-name", "tiny"]
    try:
        gateway = GatewayProcess.start(args, log, timeout=180, cwd=REPO)
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"lalm serve did not become healthy: {exc}")
    try:
        yield f"{gateway.url}/v1", "tiny"
    finally:
        gateway.stop(30)
