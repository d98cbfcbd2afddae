"""Every error the gateway answers has OpenAI's body: `{"error": {"message", "type", "param", "code"}}`.

Bad input is a 4xx (400, 401, 404, 413, 429), never a 500: every `LalmError` (the audio decoder's, the task
presets', the engines', the URL fetcher's, the gateway's own) carries its status, code, param and headers and is
mapped here, the one place HTTP answers are made of errors, as are pydantic's errors and Starlette's. 5xx means
the engine or its upstream failed (502, 503, 504), counted here in `lalm_upstream_errors` whether the failure
ends a response or a started stream, or a bug (500, logged with its traceback, answered by `ServerErrors` so the
connection stays usable).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lalm.errors import LalmError
from lalm.serve.prometheus import Metrics

__all__ = ["ServerErrors", "as_lalm_error", "count_failure", "error_body", "error_type", "install_error_handlers",
           "send_error"]

log = logging.getLogger("lalm.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "requests", 504: "timeout_error"}


def error_type(status: int) -> str:
    """OpenAI's error `type` for an HTTP status (the realtime `error` event carries it too)."""
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(err: LalmError) -> dict:
    """OpenAI's error body for `err`: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": err.message, "type": error_type(err.status), "param": err.param,
                      "code": err.code}}


def as_lalm_error(exc: BaseException, param: str | None = None) -> LalmError:
    """The LalmError to answer for any exception raised on a request; `param` (the request field the caller
    was reading, e.g. the upload that failed to decode) names the field where the error names none.
    Starlette's and FastAPI's HTTPException (an unknown route, a wrong method, a body that could not be read)
    keep their status; a timeout is a 504; anything else is a bug: logged with its traceback, answered 500."""
    if isinstance(exc, HTTPException) and isinstance(exc.__cause__, LalmError):
        # FastAPI turns any exception raised while it reads the body into a 400 "There was an error parsing the
        # body" raised from it: the cause is what happened (the request-size limit's 413, lalm.serve.limits)
        exc = exc.__cause__
    if isinstance(exc, LalmError):
        if param is None or exc.param is not None:
            return exc
        return LalmError(exc.message, status=exc.status, code=exc.code, param=param, headers=exc.headers)
    if isinstance(exc, HTTPException):
        return LalmError(str(exc.detail), status=exc.status_code, code=None, headers=exc.headers)
    if isinstance(exc, TimeoutError):
        return LalmError("The request took longer than the server's time limit.", status=504, code="timeout")
    log.error("unexpected error", exc_info=exc)
    return LalmError(f"Internal error ({type(exc).__name__}); see the server log.", status=500,
                     code="internal_error")


def count_failure(metrics: Metrics, exc: BaseException) -> None:
    """Count an engine or upstream failure (a `LalmError` with a 5xx status), whether it ends a response or a
    stream that already started: the one place `lalm_upstream_errors` is incremented."""
    if isinstance(exc, LalmError) and exc.status >= 500:
        metrics.upstream_errors.labels(code=exc.code).inc()


def _param(loc: Iterable) -> str | None:
    """pydantic's error location as the request field, e.g. messages[0].content[1].input_audio."""
    out = ""
    for part in loc:
        if part in ("body", "form", "query"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _validation_error(exc: RequestValidationError) -> LalmError:
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
    return LalmError(message, param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception a request can raise to an OpenAI error body."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        err = _validation_error(exc) if isinstance(exc, RequestValidationError) else as_lalm_error(exc)
        count_failure(request.app.state.metrics, exc)
        return JSONResponse(error_body(err), status_code=err.status, headers=err.headers)

    # Not `Exception`: Starlette answers that from its outermost middleware and then re-raises, and uvicorn
    # closes the connection under a client that was told to keep it alive (ServerErrors answers instead).
    for kind in (RequestValidationError, HTTPException, LalmError):
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
            err = as_lalm_error(exc)  # logs the traceback
            if not started:
                await send_error(send, err)


async def send_error(send: Send, err: LalmError) -> None:
    """Answer `err` from a raw ASGI middleware (auth, limits), before any response was started."""
    body = json.dumps(error_body(err)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
