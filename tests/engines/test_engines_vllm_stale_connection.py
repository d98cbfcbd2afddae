"""The vLLM engine's HTTP seam: a request sent on a pooled keep-alive connection that the server closes at that
moment is sent again on a new connection; a request the server drops on a fresh connection, or seconds after
it was sent, is not.

The upstream is a small HTTP/1.1 server on 127.0.0.1 (asyncio streams) that answers only the first request of
each connection and closes the connection when a second one arrives on it, without an answer: what a server
whose keep-alive timer runs out just as the client reuses the connection looks like to the client. No model is
needed: the seam is the connection handling, not the answer."""

from __future__ import annotations

import asyncio
import json

import pytest

from lalm.engines.base import EngineError, Message, SamplingParams
from lalm.engines.vllm import VLLMEngine

QUESTION = [Message("user", "Say hello.")]
GREEDY = SamplingParams(temperature=0, max_tokens=4)

_COMPLETION = {"choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
_CHUNKS = [{"choices": [{"delta": {"content": "hello"}, "finish_reason": "stop"}]},
           {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}]


class OneRequestPerConnection:
    """Answers the first POST of each connection (keep-alive); `drop_first` drops every POST instead. GETs
    (health checks) are always answered."""

    def __init__(self, *, drop_first: bool = False, drop_after_s: float = 0.0) -> None:
        self.drop_first = drop_first
        self.drop_after_s = drop_after_s  # how long a dropped request seems to run before the connection closes
        self.connections = 0
        self.requests = 0
        self.answered = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        seen = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                if head.startswith(b"GET "):  # a health check: always answered
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
                    await writer.drain()
                    continue
                body = json.loads(body)
                self.requests += 1
                seen += 1
                if seen > 1 or self.drop_first:
                    await asyncio.sleep(self.drop_after_s)
                    break
                writer.write(_answer(stream=body.get("stream", False)))
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _answer(*, stream: bool) -> bytes:
    if stream:
        payload = "".join(f"data: {json.dumps(c)}\n\n" for c in _CHUNKS) + "data: [DONE]\n\n"
        kind = "text/event-stream"
    else:
        payload, kind = json.dumps(_COMPLETION), "application/json"
    data = payload.encode()
    return (f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n"
            "Connection: keep-alive\r\n\r\n").encode() + data


async def _with_upstream(upstream: OneRequestPerConnection, calls) -> list:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = VLLMEngine("tiny", upstreams=[f"http://127.0.0.1:{port}"], timeout=30)
    try:
        return [await call(engine) for call in calls]
    finally:
        await engine.close()
        server.close()
        await server.wait_closed()


async def _generate(engine: VLLMEngine) -> str:
    return (await engine.generate(QUESTION, GREEDY)).text


async def _stream(engine: VLLMEngine) -> str:
    return "".join([d.text async for d in engine.stream(QUESTION, GREEDY)])


@pytest.mark.parametrize("second", [_generate, _stream], ids=["generate", "stream"])
def test_a_stale_pooled_connection_is_retried_on_a_new_one(second) -> None:
    upstream = OneRequestPerConnection()
    texts = asyncio.run(_with_upstream(upstream, [_generate, second]))
    assert texts == ["hello", "hello"]
    # the second request went out on the first request's pooled connection, was dropped there, and was answered
    # on a new connection
    assert (upstream.requests, upstream.connections, upstream.answered) == (3, 2, 2)


def test_a_request_dropped_on_a_pooled_connection_after_a_while_is_not_sent_again() -> None:
    """A failure that comes seconds after sending is the server dropping a request it was running (a crash
    mid-generation: a whole answer's headers come only at its end), not a stale connection."""
    upstream = OneRequestPerConnection(drop_after_s=3.0)
    with pytest.raises(EngineError) as err:
        asyncio.run(_with_upstream(upstream, [_generate, _generate]))
    assert err.value.status == 502 and err.value.code == "upstream_error"
    assert (upstream.requests, upstream.connections, upstream.answered) == (2, 1, 1)


def test_a_request_dropped_on_a_fresh_connection_is_not_sent_again() -> None:
    upstream = OneRequestPerConnection(drop_first=True)
    with pytest.raises(EngineError) as err:
        asyncio.run(_with_upstream(upstream, [_generate]))
    assert err.value.status == 502 and err.value.code == "upstream_error"
    assert (upstream.requests, upstream.connections) == (1, 1)


def test_a_health_check_on_a_pooled_connection_is_not_disturbed() -> None:
    """Requests the engine does not retry (GET /health) reuse pooled connections too."""
    upstream = OneRequestPerConnection()

    async def ready(engine: VLLMEngine) -> bool:
        return await engine.ready()

    assert asyncio.run(_with_upstream(upstream, [_generate, ready, _generate])) == ["hello", True, "hello"]
    assert (upstream.requests, upstream.connections, upstream.answered) == (3, 2, 2)
