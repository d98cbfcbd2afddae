"""The vLLM engine: a client of one or more vLLM OpenAI-compatible servers.

Audio goes upstream as lossless float32 WAV in `input_audio` parts, so vLLM sees exactly the samples lalm
decoded (and greedy output matches the transformers engine token for token). With several upstreams,
requests are spread round-robin over the healthy ones; a connection failure moves on to the next.
Upstream failures become `EngineError`s with the HTTP status the gateway should answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import AsyncIterator, Sequence

import httpx

from lalm.engines.base import Completion, Delta, Engine, EngineError, Message, SamplingParams, Usage
from lalm.engines.messages import MAX_AUDIO_SECONDS, check_audio_lengths, to_openai_messages
from lalm.engines.vllm_process import VLLMProcess

__all__ = ["VLLMEngine"]


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
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0), headers=headers)

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
                ids = [m["id"] for m in (await self._client.get(f"{url}/v1/models", timeout=5.0)).json()["data"]]
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
            if self.model_name not in ids and len(ids) == 1:
                self.model_name = ids[0]
            return

    async def close(self) -> None:
        await self._client.aclose()
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)

    async def ready(self) -> bool:
        for url in self.upstreams:
            try:
                if (await self._client.get(f"{url}/health", timeout=2.0)).status_code == 200:
                    return True
            except httpx.HTTPError:
                continue
        return False

    def _body(self, messages: Sequence[Message], params: SamplingParams, stream: bool) -> dict:
        check_audio_lengths(messages, MAX_AUDIO_SECONDS)
        body: dict = {
            "model": self.model_name,
            "messages": to_openai_messages(messages),
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
        return body

    def _order(self) -> list[str]:
        start = next(self._next)
        return self.upstreams[start:] + self.upstreams[:start]

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        body = self._body(messages, params, stream=False)
        for url in self._order():
            try:
                resp = await self._client.post(f"{url}/v1/chat/completions", json=body)
            except httpx.ConnectError:
                continue
            except httpx.TimeoutException:
                raise EngineError("The model server did not answer in time.", 504, "upstream_timeout") from None
            except httpx.HTTPError as exc:
                raise EngineError(f"The model server failed mid-request ({type(exc).__name__}).", 502,
                                  "upstream_error") from None
            _raise_for_status(resp)
            data = resp.json()
            choice = data["choices"][0]
            ids = ()
            if self.return_token_ids and choice.get("logprobs"):
                ids = tuple(int(t["token"].split(":", 1)[1]) for t in choice["logprobs"]["content"])
            u = data.get("usage") or {}
            return Completion(
                choice["message"].get("content") or "",
                "length" if choice.get("finish_reason") == "length" else "stop",
                Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0)),
                ids,
            )
        raise _unavailable()

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        body = self._body(messages, params, stream=True)
        for url in self._order():
            try:
                async with self._client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        _raise_for_status(resp)
                    async for delta in _parse_sse(resp):
                        yield delta
                    return
            except httpx.ConnectError:
                continue
            except httpx.TimeoutException:
                raise EngineError("The model server did not answer in time.", 504, "upstream_timeout") from None
            except httpx.HTTPError as exc:
                raise EngineError(f"The model server failed mid-stream ({type(exc).__name__}).", 502,
                                  "upstream_error") from None
        raise _unavailable()


async def _parse_sse(resp: httpx.Response) -> AsyncIterator[Delta]:
    """OpenAI chat-completion chunks -> Deltas; the finish reason and usage arrive in the last chunks."""
    finish = None
    async for line in resp.aiter_lines():
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
            if choice.get("finish_reason"):
                finish = "length" if choice["finish_reason"] == "length" else "stop"
            if text:
                yield Delta(text)
        if chunk.get("usage"):
            u = chunk["usage"]
            yield Delta("", finish_reason=finish or "stop",
                        usage=Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0)))
            return
    if finish is None:
        raise EngineError("The model server closed the stream before finishing.", 502, "upstream_error")
    yield Delta("", finish_reason=finish, usage=Usage())


def _raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        message = resp.json().get("error", {}).get("message") or resp.text
    except (ValueError, AttributeError):
        message = resp.text
    if 400 <= resp.status_code < 500:
        raise EngineError(f"The model server refused the request: {message}", 400, "upstream_bad_request")
    raise EngineError(f"The model server failed ({resp.status_code}): {message}", 502, "upstream_error")


def _unavailable() -> EngineError:
    return EngineError("No model server is reachable right now; it may be restarting. Retry shortly.", 503,
                       "upstream_unavailable")
