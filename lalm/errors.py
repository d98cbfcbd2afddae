"""The one error family of lalm. Every error lalm raises on purpose derives from `LalmError`, which carries
what an HTTP answer needs: `status` (the HTTP status), `code` (stable, for programs) and `param` (the
request field it concerns, when known). The gateway maps any `LalmError` to OpenAI's error body in one
handler (lalm.serve.errors); the CLI prints its message. The pattern is vLLM's `entrypoints/openai`
exceptions: domain errors carry their status so no layer keeps a table of them.
"""

from __future__ import annotations

__all__ = ["LalmError"]


class LalmError(Exception):
    """An error with an HTTP `status` (4xx: the request cannot be served as sent; 5xx: the engine or its
    upstream failed), a stable `code` and optionally the `param` (request field) it concerns."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
