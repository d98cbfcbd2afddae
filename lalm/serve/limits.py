"""Request limits of the gateway, as one ASGI middleware on the POST /v1 routes:

- a concurrency cap: beyond `max_concurrency` requests in flight the answer is 429 at once (clients
  retry; queueing them would only hide an overload until their own timeouts fire);
- the body size: a Content-Length over the limit is refused before anything is read, and a body that
  grows past it while being read (chunked uploads) is cut off with 413;
- the request time: past `request_timeout_s` the request is cancelled (which also cancels its engine
  work) and answered 504, or, when an event stream was already started, ended with an error event.

Per-file limits (bytes, seconds of audio) are checked by the decoder, lalm.audio.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lalm.config import Settings
from lalm.errors import LalmError
from lalm.serve.errors import error_body, send_error

__all__ = ["Limits", "request_body_limit"]


def request_body_limit(settings: Settings) -> int:
    """The largest request body: the setting, or one base64 upload of max_upload_bytes plus 1 MiB."""
    return settings.max_request_bytes or (settings.max_upload_bytes * 4 // 3 + (1 << 20))


class Limits:
    """Concurrency cap, body size and time limit for POST /v1 requests (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_concurrency = settings.max_concurrency
        self.max_body = request_body_limit(settings)
        self.timeout = settings.request_timeout_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        try:
            length = int(dict(scope["headers"]).get(b"content-length", b"0"))
        except ValueError:
            await send_error(send, LalmError("The Content-Length header is not a number.", code=None))
            return
        if length > self.max_body:
            await send_error(send, self._too_large())
            return
        if self.in_flight >= self.max_concurrency:
            await send_error(send, LalmError(
                f"The server is serving its maximum of {self.max_concurrency} requests; retry shortly.", status=429,
                code="rate_limit_exceeded", headers={"Retry-After": "1"}))
            return
        self.in_flight += 1
        try:
            await self._serve(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _too_large(self) -> LalmError:
        return LalmError(f"The request body is larger than the limit of {self.max_body} bytes.", status=413,
                         code="request_too_large")

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = streaming = finished = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                # raised inside the route's body parsing, which FastAPI wraps in a 400 raised from it: the
                # error handlers answer the cause (lalm.serve.errors.as_lalm_error)
                raise self._too_large()
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started, streaming, finished
            if message["type"] == "http.response.start":
                started = True
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                streaming = ctype.startswith(b"text/event-stream")
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            async with asyncio.timeout(self.timeout):
                await self.app(scope, limited_receive, watched_send)
        except TimeoutError:
            err = LalmError(f"The request took longer than the limit of {self.timeout:g} s.", status=504,
                            code="timeout")
            if not started:
                await send_error(send, err)
            elif not finished:
                tail = f"data: {json.dumps(error_body(err))}\n\n".encode() if streaming else b""
                await send({"type": "http.response.body", "body": tail, "more_body": False})
