"""Chat-completion calls to any OpenAI-compatible endpoint through the official `openai` SDK, with our own
retry loop: exponential backoff on server errors (5xx), 408/429, timeouts and connection errors; other 4xx
fail at once (a bad request stays bad). The SDK's own retries are off so the policy is in one place."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI

__all__ = ["Reply", "RequestFailed", "Retry", "chat", "make_client"]

_RETRY_STATUS = (408, 429)


@dataclass(frozen=True)
class Retry:
    """`attempts` tries in all; the wait before try k+1 is min(`max_wait`, `base` * 2**k) seconds."""

    attempts: int = 4
    base: float = 1.0
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry attempts must be at least 1")

    def wait(self, k: int) -> float:
        return min(self.max_wait, self.base * 2**k)


@dataclass(frozen=True)
class Reply:
    """One completed call: the text, the finish reason, seconds the successful try took, tries made."""

    text: str
    finish_reason: str | None
    latency_s: float
    attempts: int


class RequestFailed(Exception):
    """A call that did not succeed; `message` says why (status and server message), `attempts` how many tries."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts


def make_client(base_url: str, api_key: str | None, timeout: float) -> AsyncOpenAI:
    """An async client for `base_url` (e.g. http://127.0.0.1:8000/v1; a URL without /v1 gets it appended).
    Local servers need no key; the SDK insists on one, so a placeholder stands in."""
    url = base_url.rstrip("/")
    if not url.endswith("/v1"):
        url += "/v1"
    return AsyncOpenAI(base_url=url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=0)


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code in _RETRY_STATUS)


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


async def chat(client: AsyncOpenAI, retry: Retry, **request: Any) -> Reply:
    """`client.chat.completions.create(**request)` with retries; raises RequestFailed when it gives up."""
    k = 0
    while True:
        start = time.perf_counter()
        try:
            completion = await client.chat.completions.create(**request)
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            if not _retryable(exc) or k == retry.attempts - 1:
                raise RequestFailed(_describe(exc), k + 1) from exc
            await asyncio.sleep(retry.wait(k))
            k += 1
            continue
        choice = completion.choices[0]
        return Reply(choice.message.content or "", choice.finish_reason, time.perf_counter() - start, k + 1)
