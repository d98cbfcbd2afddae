"""Stop a request's engine work when its client goes away (vLLM's `with_cancellation`,
vllm/entrypoints/utils.py).

A non-streaming request (a transcription of an hour of audio, a chat completion) runs as a task beside a
listener for the client's `http.disconnect`; whichever ends first cancels the other. Cancelling the handler
cancels the windows in flight (lalm.longform.run) and through them the engine's requests, so a client that
hangs up frees the engine within a window's step instead of after the whole recording. Streaming responses
need no help: Starlette stops a stream whose client is gone, which closes the event generator the same way.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

__all__ = ["CLIENT_CLOSED", "cancel_on_disconnect"]

# nginx's status for "the client closed the request"; nobody receives it, the metrics count it
CLIENT_CLOSED = 499


async def _disconnected(request: Request) -> None:
    """Return once the client has disconnected. Called after the body was read, so every message left is a
    disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def cancel_on_disconnect(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a route handler that takes `request: Request` so that its work is cancelled when the client
    disconnects; the answer is then an empty 499 (see the module docstring)."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        work = asyncio.create_task(handler(*args, **kwargs))
        gone = asyncio.create_task(_disconnected(kwargs["request"]))
        try:
            await asyncio.wait([work, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this request itself is cancelled (the time limit): nothing is left running
            for task in (work, gone):
                task.cancel()
        if work.done() and not work.cancelled():
            return work.result()
        await asyncio.gather(work, return_exceptions=True)  # its cleanup (windows, engine requests) done
        return Response(status_code=CLIENT_CLOSED)

    return wrapper
