"""API keys: `Authorization: Bearer <key>` on every /v1 route when keys are configured (/health, /metrics
and the docs stay open for probes and scrapers). Keys are compared in constant time, against every
configured key, so the answer's timing says nothing about how much of a key was right."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from lalm.serve.errors import APIError, send_error

__all__ = ["APIKeyAuth"]


class APIKeyAuth:
    """ASGI middleware answering 401 (OpenAI error body) to /v1 requests without a valid key. It runs
    before the body is read, so an unauthenticated client cannot make the server parse an upload."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]

    def valid(self, token: bytes) -> bool:
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            await send_error(send, APIError(
                "Missing API key: send it as `Authorization: Bearer <key>`.", 401, code="missing_api_key",
                headers={"WWW-Authenticate": "Bearer"}))
            return
        if not self.valid(token.strip()):
            await send_error(send, APIError("Incorrect API key provided.", 401, code="invalid_api_key",
                                            headers={"WWW-Authenticate": "Bearer"}))
            return
        await self.app(scope, receive, send)
