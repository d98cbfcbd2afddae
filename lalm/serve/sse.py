"""Server-sent events, as OpenAI streams them: `data: <json>\\n\\n` per event, `data: [DONE]` at the end of
chat streams. A stream's first event is awaited before the response starts (`primed`), so a request that
fails at once still gets a proper status code; a failure after that ends the stream with an OpenAI error
body as its last event, which the openai SDK raises as an error.

Heartbeats: while no event comes for `heartbeat_s` seconds (a long window decided by the temperature fallback,
a slow engine) the stream sends an SSE comment line, `: keep-alive`, which SSE clients ignore (the WHATWG
event-stream format; the openai SDK skips lines starting with ":") and which keeps proxies and clients that drop
idle connections from cutting the stream. For the same reason a first event slower than `heartbeat_s` no longer
holds the response back: it starts with a heartbeat, and a failure then comes as the stream's error event.

The events are read by one producer task (so generators that hold a context across their yields stay in one
task) into a queue of one, so the engine is read no faster than the client takes the events; when the client
leaves, the producer is cancelled and the events' own clean-up (engine aborts) runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from lalm.serve.errors import as_lalm_error, count_failure, error_body
from lalm.serve.prometheus import Metrics

__all__ = ["HEARTBEAT", "EventFeed", "primed", "sse_response"]

HEARTBEAT = b": keep-alive\n\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_END = object()


class EventFeed:
    """An event iterator read ahead by one producer task: `next_item()` gives (event, None), (_END, None) at
    the end, or (_END, exception) when the events failed; `heartbeat_s` is how long it waits for one."""

    def __init__(self, events: AsyncIterator[dict], heartbeat_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self._queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue(1)
        self._producer = asyncio.ensure_future(self._pump(events))
        self._getter: asyncio.Future | None = None

    async def _pump(self, events: AsyncIterator[dict]) -> None:
        try:
            async for event in events:
                await self._queue.put((event, None))
        except Exception as exc:
            await self._queue.put((_END, exc))
        else:
            await self._queue.put((_END, None))

    async def next_item(self, *, take: bool = True) -> tuple[Any, BaseException | None] | None:
        """The next (event, error) pair, or None when none came within `heartbeat_s` (nothing is lost: the same
        wait goes on at the next call). With `take` False the pair stays the next one."""
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({self._getter}, timeout=self.heartbeat_s)
        if not done:
            return None
        item = self._getter.result()
        if take:
            self._getter = None
        return item

    async def close(self) -> None:
        """Stop reading: the producer and any pending wait are cancelled (the events' clean-up runs)."""
        for task in (self._getter, self._producer):
            if task is not None and not task.done():
                task.cancel()
        # waits for the events' clean-up without raising what ended the producer (its cancellation)
        await asyncio.wait({self._producer})


async def primed(events: AsyncIterator[dict], heartbeat_s: float) -> EventFeed:
    """`events` with its first item awaited for up to `heartbeat_s` seconds: an error before it raises here, so
    the request still gets its status code. A slower first event is left to the stream (heartbeats keep the
    connection open meanwhile)."""
    feed = EventFeed(events, heartbeat_s)
    try:
        first = await feed.next_item(take=False)
    except BaseException:
        await feed.close()
        raise
    if first is not None and first[1] is not None:
        await feed.close()
        raise first[1]
    return feed


def sse_response(feed: EventFeed, *, done_marker: bool, metrics: Metrics) -> StreamingResponse:
    """Stream the `feed`'s events as SSE, with a heartbeat comment after every `feed.heartbeat_s` seconds
    without one; an exception ends the stream with its error body (an engine failure is counted in `metrics`,
    as the error handler counts those that end a response)."""

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                item = await feed.next_item()
                if item is None:
                    yield HEARTBEAT
                    continue
                event, error = item
                if error is not None:
                    count_failure(metrics, error)
                    yield b"data: " + json.dumps(error_body(as_lalm_error(error))).encode() + b"\n\n"
                    break
                if event is _END:
                    break
                yield b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"
            if done_marker:
                yield b"data: [DONE]\n\n"
        finally:
            await feed.close()

    return StreamingResponse(body(), media_type="text/event-stream", headers=_HEADERS)
