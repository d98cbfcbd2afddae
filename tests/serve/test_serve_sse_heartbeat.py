"""Streams send SSE heartbeats (`: keep-alive` comment lines) while no event comes, the openai SDK reads
through them, a first event slower than the heartbeat no longer holds the response back (a failure after that
is the stream's error event), and a client that leaves mid-stream stops the engine's stream.

Real parts: the app in a real uvicorn server on loopback, the openai SDK and httpx over HTTP. The engine is
the seam under test: it pauses on purpose between its deltas (no real model can be made slow on request)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import httpx
import openai
import pytest
import uvicorn

from lalm.config import Settings
from lalm.engines.base import Completion, Delta, Engine, Message, SamplingParams, Usage
from lalm.engines.vllm_process import free_port
from lalm.serve.app import create_app

HEARTBEAT_S = 0.2


class PausingEngine(Engine):
    """Streams the words of `WORDS` with `pause` seconds before each; a user message "fail" makes it raise
    after its first pause instead. `closed` is set once a stream's generator has ended, `completed` only when
    it ran to its last word."""

    model_name = "pausing"
    WORDS = ("hello", " slow", " world")

    def __init__(self) -> None:
        self.pause = 0.0
        self.closed = threading.Event()
        self.completed = False

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        text = "".join([d.text async for d in self.stream(messages, params)])
        return Completion(text, "stop", Usage(1, len(self.WORDS)))

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        try:
            for i, word in enumerate(self.WORDS):
                await asyncio.sleep(self.pause)
                if "fail" in str(messages[-1].content):
                    raise RuntimeError("a bug in the engine")
                last = i == len(self.WORDS) - 1
                yield Delta(word, "stop" if last else None, Usage(1, len(self.WORDS)) if last else None)
            self.completed = True
        finally:
            self.closed.set()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, PausingEngine]]:
    engine = PausingEngine()
    port = free_port()
    settings = Settings(model="pausing", served_model_name="pausing", sse_heartbeat_s=HEARTBEAT_S)
    srv = uvicorn.Server(uvicorn.Config(create_app(settings, engine=engine), host="127.0.0.1", port=port,
                                        log_level="critical"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", engine
    srv.should_exit = True
    thread.join(30)


def _chat(content: str) -> dict:
    return {"model": "pausing", "stream": True, "messages": [{"role": "user", "content": content}]}


def test_a_slow_stream_sends_heartbeats_that_the_openai_sdk_reads_through(served) -> None:
    url, engine = served
    engine.pause = 5 * HEARTBEAT_S
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=_chat("hi"), timeout=60) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    assert lines.count(": keep-alive") >= 6  # about 4 per pause, 3 pauses
    assert lines[-2:] == ["data: [DONE]", ""]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    chunks = list(client.chat.completions.create(**_chat("hi")))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello slow world"


def test_a_failure_after_a_slow_start_is_the_streams_error_event(served) -> None:
    url, engine = served
    engine.pause = 3 * HEARTBEAT_S
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIError, match=r"Internal error \(RuntimeError\)") as raised:
        list(client.chat.completions.create(**_chat("fail")))
    assert not isinstance(raised.value, openai.APIStatusError)  # an event of a started stream, not a status
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=_chat("fail"), timeout=60) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    assert lines[0] == ": keep-alive" and '"internal_error"' in lines[-2] and lines[-1] == "data: [DONE]"
    engine.pause = 0.0  # a failure before the first heartbeat is due keeps its status code
    r = httpx.post(f"{url}/v1/chat/completions", json=_chat("fail"), timeout=60)
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"


def test_a_client_that_leaves_mid_stream_stops_the_engines_stream(served) -> None:
    url, engine = served
    engine.pause = 2.0
    engine.closed.clear()
    engine.completed = False
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=_chat("hi"), timeout=60) as r:
        assert any(line.startswith("data: ") for line in r.iter_lines())  # the first word; the next is 2 s away
    assert engine.closed.wait(10)
    assert not engine.completed  # cancelled, not run to its end for nobody
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200
