"""The vLLM engine: a client of one or more vLLM OpenAI-compatible servers.

Audio goes upstream as lossless WAV in `input_audio` parts, so vLLM sees exactly the samples lalm decoded
(and greedy output matches the transformers engine token for token). With several upstreams, requests are
spread round-robin; a connection failure moves on to the next. Upstream failures become `EngineError`s
with the HTTP status the gateway should answer.

The HTTP client is aiohttp rather than httpx: on this hot path (every request of the gateway) it costs
about half the CPU per request (bench/gateway_overhead.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from types import SimpleNamespace

import aiohttp
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, stop_after_attempt

from lalm.engines.base import Completion, Delta, Engine, EngineError, Message, SamplingParams, Usage
from lalm.engines.messages import WINDOW_SECONDS, check_audio_lengths, openai_request_body
from lalm.engines.vllm_process import VLLMProcess

__all__ = ["VLLMEngine"]

log = logging.getLogger(__name__)

_JSON = {"Content-Type": "application/json"}
_KEEPALIVE_S = 2.0
# A request sent on a pooled keep-alive connection that the server is closing at that moment fails at once,
# before any answer (ServerDisconnectedError, or ClientOSError for a reset): it never reached the model, so it
# is sent again on another connection. Only such a failure is: on a reused connection and within
# `_STALE_WITHIN_S` of sending. A failure later (vLLM sends a whole answer's headers only when it is done, so
# a crash mid-generation also comes before any answer) or on a fresh connection is not retried: the server
# dropped that request itself, and sending it again could run it twice or crash the server again.
_STALE_ATTEMPTS = 3
_STALE_WITHIN_S = 2.0
# the most top_logprobs a vLLM server gives by default (its --max-logprobs)
_VLLM_MAX_LOGPROBS = 20
# Connecting on loopback is instant unless the vLLM API process is starved of CPU (a busy engine on few
# cores): a short limit there turned slow accepts under load into false 504s.
_CONNECT_S = 30.0


class VLLMEngine(Engine):
    """Requests to vLLM servers at `upstreams` (base URLs such as http://127.0.0.1:8100), or to a
    server this engine starts and supervises (`process`)."""

    def __init__(
        self,
        model_name: str,
        *,
        upstreams: Sequence[str] = (),
        process: VLLMProcess | None = None,
        timeout: float = 600.0,
        api_key: str | None = None,
        return_token_ids: bool = False,
        startup_timeout: float = 600.0,
    ) -> None:
        if not upstreams and process is None:
            raise ValueError("VLLMEngine needs upstream URLs or a VLLMProcess")
        self.model_name = model_name
        self.process = process
        self.upstreams = [u.rstrip("/") for u in upstreams] or [process.url]
        self._next = itertools.cycle(range(len(self.upstreams)))
        self.return_token_ids = return_token_ids
        self.startup_timeout = startup_timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=_CONNECT_S)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None
        self._context: tuple[int | None] | None = None  # the upstream's max_model_len, once asked

    def _http(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use (aiohttp wants it made inside the running event loop)."""
        if self._session is None or self._session.closed:
            # Idle connections are dropped well before vLLM's server closes them (uvicorn keep-alive, 5 s by
            # default): reusing one the server is closing would fail a request that never reached it.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE_S)
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers, connector=connector,
                                                  trace_configs=[_reuse_trace()])
        return self._session

    async def _post(self, url: str, body: bytes | Callable[[], aiohttp.FormData]) -> aiohttp.ClientResponse:
        """POST `body` to `url` and return the response once its status and headers are in (the caller reads and
        releases it): JSON bytes, or a function making a multipart form (a form is sent once, so each attempt
        makes its own). Sent again on another connection when a reused one was stale (`_STALE_ATTEMPTS`).

        Raises aiohttp.ClientError (ClientConnectorError: nothing listens) or TimeoutError."""
        retrying = AsyncRetrying(retry=retry_if_exception_type(_StaleConnection),
                                 stop=stop_after_attempt(_STALE_ATTEMPTS), reraise=True,
                                 before_sleep=before_sleep_log(log, logging.WARNING))
        try:
            return await retrying(self._post_once, url, body)
        except _StaleConnection as stale:
            raise stale.error from None

    async def _post_once(self, url: str, body: bytes | Callable[[], aiohttp.FormData]) -> aiohttp.ClientResponse:
        trace = SimpleNamespace(reused=False)
        data, headers = (body, _JSON) if isinstance(body, bytes) else (body(), None)
        sent = time.monotonic()
        try:
            return await self._http().post(url, data=data, headers=headers, trace_request_ctx=trace)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if trace.reused and time.monotonic() - sent < _STALE_WITHIN_S:
                raise _StaleConnection(exc) from exc
            raise

    async def start(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.start, timeout=self.startup_timeout)
            threading.Thread(target=self.process.supervise, kwargs={"timeout": self.startup_timeout},
                             name="vllm-supervisor", daemon=True).start()
            return
        await self._adopt_upstream_model()

    async def _adopt_upstream_model(self) -> None:
        """If the upstreams do not serve `model_name` but serve exactly one model, send requests for that
        one (so a gateway's served name need not match its upstream's)."""
        for url in self.upstreams:
            try:
                async with self._http().get(f"{url}/v1/models", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    ids = [m["id"] for m in (await resp.json(content_type=None))["data"]]
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
                continue
            if self.model_name not in ids and len(ids) == 1:
                self.model_name = ids[0]
            return

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)

    async def ready(self) -> bool:
        for url in self.upstreams:
            try:
                async with self._http().get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                continue
        return False

    async def context_length(self) -> int | None:
        """The `max_model_len` the upstream's /v1/models gives for the served model (asked once); None when it
        gives none (an OpenAI-compatible server other than vLLM)."""
        if self._context is not None:
            return self._context[0]
        status, raw = await self._ask("/v1/models", None, "listing its models")
        _raise_for_status(status, raw)
        self._context = (_max_model_len(raw, self.model_name),)
        return self._context[0]

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        """The prompt tokens of text-only `messages` from the upstream's /tokenize (vLLM renders the chat
        template as for a chat request); the base estimate when the upstream has no /tokenize."""
        body = openai_request_body({"model": self.model_name, "add_generation_prompt": True}, messages)
        status, raw = await self._ask("/tokenize", body, "counting tokens")
        if status == 404:
            return await super().count_tokens(messages)
        _raise_for_status(status, raw)
        return int(json.loads(raw)["count"])

    def _body(self, messages: Sequence[Message], params: SamplingParams, stream: bool) -> bytes:
        check_audio_lengths(messages, WINDOW_SECONDS)
        body: dict = {
            "model": self.model_name,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.return_token_ids:
            body.update(logprobs=True, return_tokens_as_token_ids=True)
        elif params.logprobs:
            body["logprobs"] = True
        if params.logprobs and params.top_logprobs and not self.return_token_ids:
            # vLLM lists the sampled token first and then the most likely ones, k in all: one more is asked for so
            # that the k most likely are all there when the sampled token is not among them (`_top` sorts and
            # cuts; exact up to 19, vLLM's own limit being 20). With tokens returned as ids the alternatives'
            # texts would be ids too: none are asked for.
            body["top_logprobs"] = min(params.top_logprobs + 1, _VLLM_MAX_LOGPROBS)
        return openai_request_body(body, messages)

    def _order(self) -> list[str]:
        start = next(self._next)
        return self.upstreams[start:] + self.upstreams[:start]

    async def _ask(self, path: str, body: bytes | Callable[[], aiohttp.FormData] | None,
                   where: str) -> tuple[int, bytes]:
        """POST `body` (JSON bytes, or a function making a multipart form; None: GET) to `path` of the upstreams in
        round-robin order and return the first answer's status and body, read whole. An upstream where nothing
        listens is passed over; a failure mid-answer is an EngineError saying `where` (_failures); none listening
        is a 503."""
        for url in self._order():
            try:
                with _failures(url, where):
                    if body is None:
                        request = self._http().get(f"{url}{path}")
                    else:
                        request = await self._post(f"{url}{path}", body)
                    async with request as resp:
                        return resp.status, await resp.read()
            except aiohttp.ClientConnectorError:
                continue
        raise _unavailable()

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        body = self._body(messages, params, stream=False)
        status, raw = await self._ask("/v1/chat/completions", body, "mid-request")
        _raise_for_status(status, raw)
        data = json.loads(raw)
        choice = data["choices"][0]
        ids = ()
        content = (choice.get("logprobs") or {}).get("content") or []
        if self.return_token_ids and content:
            ids = tuple(int(t["token"].split(":", 1)[1]) for t in content)
        u = data.get("usage") or {}
        return Completion(
            choice["message"].get("content") or "",
            "length" if choice.get("finish_reason") == "length" else "stop",
            Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0)),
            ids,
            _logprobs(content) if params.logprobs else (),
            _top(content, params.top_logprobs),
        )

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        body = self._body(messages, params, stream=True)
        for url in self._order():
            try:
                with _failures(url, "mid-stream"):
                    async with await self._post(f"{url}/v1/chat/completions", body) as resp:
                        if resp.status >= 400:
                            _raise_for_status(resp.status, await resp.read())
                        async for delta in _parse_sse(resp.content, params.top_logprobs):
                            yield delta
                        return
            except aiohttp.ClientConnectorError:
                continue
        raise _unavailable()


@contextlib.contextmanager
def _failures(url: str, where: str) -> Iterator[None]:
    """A request's timeout as a 504 and its other failures as a 502 (`where`: "mid-request" or "mid-stream"),
    except a refused connection (ClientConnectorError), which the caller answers by trying the next upstream."""
    try:
        yield
    except aiohttp.ClientConnectorError:
        raise
    except TimeoutError:
        raise EngineError("The model server did not answer in time.", 504, "upstream_timeout") from None
    except aiohttp.ClientError as exc:
        log.warning("upstream %s failed %s: %r", url, where, exc)
        raise EngineError(f"The model server failed {where} ({type(exc).__name__}).", 502, "upstream_error") from None


class _StaleConnection(Exception):
    """A request failed on a reused keep-alive connection before any answer came (`error`: aiohttp's)."""

    def __init__(self, error: aiohttp.ClientError) -> None:
        super().__init__(str(error))
        self.error = error


def _reuse_trace() -> aiohttp.TraceConfig:
    """Marks a request's trace context (`trace_request_ctx`, a namespace with `reused`) when its connection
    came from the keep-alive pool rather than a new connect."""

    async def reused(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
        if ctx.trace_request_ctx is not None:  # requests that are not retried (health checks) carry none
            ctx.trace_request_ctx.reused = True

    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(reused)
    return trace


def _token_text(entry: dict) -> str:
    """A logprobs entry's token as text: from its UTF-8 `bytes` (the token field holds an id when tokens are
    returned as ids)."""
    raw = entry.get("bytes")
    return bytes(raw).decode("utf-8", "replace") if raw is not None else str(entry.get("token", ""))


def _logprobs(content: list[dict]) -> tuple[tuple[str, float], ...]:
    """A logprobs `content` list as (token text, logprob) of each token."""
    return tuple((_token_text(t), float(t["logprob"])) for t in content)


def _top(content: list[dict], k: int) -> tuple[tuple[tuple[str, float], ...], ...]:
    """Each logprobs entry's `top_logprobs` as its `k` most likely (token text, logprob), most likely first
    (empty when none were asked for)."""
    if not k or not any(t.get("top_logprobs") for t in content):
        return ()
    return tuple(tuple(sorted(((_token_text(a), float(a["logprob"])) for a in t.get("top_logprobs") or ()),
                              key=lambda alt: -alt[1])[:k]) for t in content)


async def _parse_sse(content: aiohttp.StreamReader, top_logprobs: int = 0) -> AsyncIterator[Delta]:
    """OpenAI chat-completion chunks -> Deltas (with each token's `top_logprobs` most likely alternatives); the
    finish reason and usage arrive in the last chunks."""
    finish = None
    async for raw in content:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        chunk = json.loads(payload)
        if "error" in chunk:
            raise EngineError(chunk["error"].get("message", "upstream error"), 502, "upstream_error")
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content") or ""
            entries = (choice.get("logprobs") or {}).get("content") or []
            logprobs = _logprobs(entries)
            if choice.get("finish_reason"):
                finish = "length" if choice["finish_reason"] == "length" else "stop"
            if text or logprobs:
                yield Delta(text, logprobs=logprobs, top_logprobs=_top(entries, top_logprobs))
        if chunk.get("usage"):
            u = chunk["usage"]
            yield Delta("", finish_reason=finish or "stop",
                        usage=Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0)))
            return
    if finish is None:
        raise EngineError("The model server closed the stream before finishing.", 502, "upstream_error")
    yield Delta("", finish_reason=finish, usage=Usage())


def _max_model_len(raw: bytes, model: str) -> int | None:
    """The `max_model_len` of `model` (or of the only model) in a /v1/models answer; None when not given."""
    try:
        cards = json.loads(raw)["data"]
        card = next((c for c in cards if c.get("id") == model), cards[0] if len(cards) == 1 else {})
        value = card.get("max_model_len")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def _raise_for_status(status: int, raw: bytes) -> None:
    if status < 400:
        return
    try:
        message = json.loads(raw).get("error", {}).get("message") or raw.decode(errors="replace")
    except (ValueError, AttributeError):
        message = raw.decode(errors="replace")
    if 400 <= status < 500:
        raise EngineError(f"The model server refused the request: {message}", 400, "upstream_bad_request")
    raise EngineError(f"The model server failed ({status}): {message}", 502, "upstream_error")


def _unavailable() -> EngineError:
    return EngineError("No model server is reachable right now; it may be restarting. Retry shortly.", 503,
                       "upstream_unavailable")
