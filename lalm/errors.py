"""The one error family of lalm. Every error lalm raises on purpose derives from `LalmError`, which carries
what an answer needs: `status` (the HTTP status), `code` (stable, for programs), `param` (the request field it
concerns, when known) and `headers` (those the answer must carry: Retry-After, WWW-Authenticate). The gateway
maps any `LalmError` to OpenAI's error body in one place for HTTP (lalm.serve.errors) and one for WebSocket
events (the realtime `error` event, lalm.serve.realtime.protocol); the CLI prints its message. The pattern is
vLLM's `entrypoints/openai` exceptions: domain errors carry their status so no layer keeps a table of them.
"""

from __future__ import annotations

__all__ = ["LalmError"]


class LalmError(Exception):
    """An error with an HTTP `status` (4xx: the request cannot be served as sent; 5xx: the engine or its
    upstream failed), a stable `code` (None only where OpenAI's answer has none), optionally the `param`
    (request field) it concerns and the `headers` its HTTP answer carries."""

    def __init__(self, message: str, *, status: int = 400, code: str | None = "invalid_request",
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers
