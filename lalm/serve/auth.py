"""API keys: `Authorization: Bearer <key>` on every /v1 route when keys are configured (/health, /metrics,
the docs and the playground page stay open for probes, scrapers and browsers). Keys are compared in constant
time, against every configured key, so the answer's timing says nothing about how much of a key was right.

WebSockets (/v1/realtime) take the key from the same header or, since browsers cannot set headers on a
WebSocket, from the subprotocol `openai-insecure-api-key.<key>` (OpenAI's form). A WebSocket without a
valid key is accepted only to be told why in a Realtime `error` event, then closed with code 1008: a refused
handshake would reach a browser page as a bare failure with no message."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from lalm.errors import LalmError
from lalm.serve.errors import send_error
from lalm.serve.realtime.protocol import error_event

__all__ = ["APIKeyAuth"]

_KEY_SUBPROTOCOL = "openai-insecure-api-key."


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
        if scope["type"] not in ("http", "websocket") or not self.keys or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        token = token.strip() if scheme.lower() == b"bearer" else b""
        if scope["type"] == "websocket" and not token:
            token = next((p[len(_KEY_SUBPROTOCOL):].encode() for p in scope.get("subprotocols", [])
                          if p.startswith(_KEY_SUBPROTOCOL)), b"")
        if not token:
            err = LalmError("Missing API key: send it as `Authorization: Bearer <key>`.", status=401,
                            code="missing_api_key", headers={"WWW-Authenticate": "Bearer"})
        elif not self.valid(token):
            err = LalmError("Incorrect API key provided.", status=401, code="invalid_api_key",
                            headers={"WWW-Authenticate": "Bearer"})
        else:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            await send_error(send, err)
        else:
            await _refuse_websocket(scope, receive, send, err)


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, err: LalmError) -> None:
    """Accept, send the Realtime `error` event for `err`, close with 1008 (policy violation)."""
    if (await receive())["type"] != "websocket.connect":
        return
    subprotocol = "realtime" if "realtime" in scope.get("subprotocols", []) else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
    await send({"type": "websocket.send", "text": error_event(err).to_json(indent=None)})
    await send({"type": "websocket.close", "code": 1008, "reason": err.message[:120]})
