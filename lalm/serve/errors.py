"""Every error the gateway answers has OpenAI's body: `{"error": {"message", "type", "param", "code"}}`.

Bad input is a 4xx (400, 401, 404, 413, 429), never a 500: the audio decoder's, the task presets' and
pydantic's errors are all mapped here. 5xx means the engine or its upstream failed (502, 503, 504) or a
bug (500, logged with its traceback, answered by `ServerErrors` so the connection stays usable).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lalm.audio import AudioError
from lalm.engines.base import EngineError
from lalm.tasks import TaskError

__all__ = ["APIError", "ServerErrors", "error_body", "install_error_handlers", "send_error", "to_api_error"]

log = logging.getLogger("lalm.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "requests", 504: "timeout_error"}


class APIError(HTTPException):
    """An error to answer with OpenAI's error body. A subclass of FastAPI's HTTPException so that it also
    passes through FastAPI's body parsing (the request-size limit raises it while the body is read)."""

    def __init__(self, message: str, status: int = 400, *, type: str | None = None, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.message = message
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.param = param
        self.code = code

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def to_api_error(exc: BaseException, param: str | None = None) -> APIError:
    """The APIError for any exception lalm raises on a request (`param`: the request field it concerns)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, AudioError):
        return APIError(exc.message, 413 if exc.code == "file_too_large" else 400, param=param, code=exc.code)
    if isinstance(exc, TaskError):
        return APIError(str(exc), 400, param=param or "task", code="invalid_task")
    if isinstance(exc, EngineError):
        return APIError(str(exc), exc.status, code=exc.code)
    if isinstance(exc, StarletteHTTPException):
        return APIError(str(exc.detail), exc.status_code, headers=exc.headers)
    if isinstance(exc, TimeoutError):
        return APIError("The request took longer than the server's time limit.", 504, code="timeout")
    log.error("unexpected error", exc_info=exc)
    return APIError(f"Internal error ({type(exc).__name__}); see the server log.", 500, code="internal_error")


def _param(loc: Iterable) -> str | None:
    """pydantic's error location as the request field, e.g. messages[0].content[1].input_audio."""
    out = ""
    for part in loc:
        if part in ("body", "form", "query"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    param = _param(first.get("loc", ()))
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        message, param = "The request body is not valid JSON.", None
    elif first.get("type") == "missing":
        message = f"Missing required field {param}."
    elif "UploadFile" in message:
        # a multipart part without a filename arrives as a plain form field, not a file
        message = (f"The {param} part has no filename, so it is not an uploaded file: send it with one "
                   f'(Content-Disposition: form-data; name="{param}"; filename="audio.wav").')
    elif param:
        message = f"{param}: {message}"
    if len(errors) > 1:
        message += f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return APIError(message, 400, param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception a request can raise to an OpenAI error body."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        err = _validation_error(exc) if isinstance(exc, RequestValidationError) else to_api_error(exc)
        if isinstance(exc, EngineError) and err.status_code >= 500:
            request.app.state.metrics.upstream_errors.labels(code=exc.code).inc()
        return JSONResponse(err.body(), status_code=err.status_code, headers=err.headers)

    # Not `Exception`: Starlette answers that from its outermost middleware and then re-raises, and uvicorn
    # closes the connection under a client that was told to keep it alive (ServerErrors answers instead).
    for kind in (RequestValidationError, StarletteHTTPException, AudioError, TaskError, EngineError):
        app.add_exception_handler(kind, handle)


class ServerErrors:
    """Answers an unexpected exception (a bug) with a 500 in OpenAI's body and logs it, without letting it
    reach the server. A keep-alive connection then stays usable: uvicorn closes the connection of any
    request whose exception reaches it, even after the 500 was sent, so the client's next request on
    it got an empty reply. An exception after the response started still reaches uvicorn, which must
    close the connection of a response it cannot finish."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def watched_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as exc:
            if started and not finished:
                raise
            err = to_api_error(exc)  # logs the traceback
            if not started:
                await send_error(send, err)


async def send_error(send: Send, err: APIError) -> None:
    """Answer `err` from a raw ASGI middleware (auth, limits), before any response was started."""
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
    await send({"type": "http.response.start", "status": err.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
