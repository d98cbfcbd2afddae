"""Server-sent events, as OpenAI streams them: `data: <json>\\n\\n` per event, `data: [DONE]` at the end of
chat streams. A stream's first event is awaited before the response starts (`primed`), so a request that
fails at once still gets a proper status code; a failure after that ends the stream with an OpenAI error
body as its last event, which the openai SDK raises as an APIError."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from lalm.serve.errors import count_failure, to_api_error
from lalm.serve.prometheus import Metrics

__all__ = ["primed", "sse_response"]

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def primed(events: AsyncIterator[dict]) -> AsyncIterator[dict]:
    """`events` with its first item already awaited: errors before the first event raise here."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        return _empty()
    return _chain(first, events)


async def _empty() -> AsyncIterator[dict]:
    return
    yield


async def _chain(first: dict, rest: AsyncIterator[dict]) -> AsyncIterator[dict]:
    yield first
    async for item in rest:
        yield item


def sse_response(events: AsyncIterator[dict], *, done_marker: bool, metrics: Metrics) -> StreamingResponse:
    """Stream `events` as SSE; an exception ends the stream with its error body (an engine failure is
    counted in `metrics`, as the error handler counts those that end a response)."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"
        except Exception as exc:
            err = to_api_error(exc)
            count_failure(metrics, exc)
            yield b"data: " + json.dumps(err.body()).encode() + b"\n\n"
        if done_marker:
            yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers=_HEADERS)
