"""Optional re-mapping of free-text Foundation answers to a letter by an LLM, as OFA-Sys/AIR-Bench's
align_in_foundation.py (commit 9832476): the reference prompt (prompts.align_prompt) as one user message,
the LLM's reply taken as the new response, which score_foundation then parses like any other.

The reference sends every answered item (scope "all"); scope "unparsable" sends only those the letter
parser cannot read, which is cheaper and leaves parsable answers as they are. Like the judge it uses one
temperature (default 1.0, the script's default, without its random 2.0) and caches replies by
(model, prompt, temperature), so a rerun costs nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from evals.airbench.client import RequestFailed, Retry, chat, make_client
from evals.airbench.prompts import align_prompt
from evals.airbench.score import parse_letter
from evals.airbench.store import JsonlCache, cache_key

__all__ = ["AlignConfig", "align"]


@dataclass
class AlignConfig:
    """Where and how to ask; the CLI's --align-* flags map one to one."""

    base_url: str
    model: str
    cache: Path
    api_key: str | None = None
    scope: Literal["all", "unparsable"] = "all"
    temperature: float = 1.0
    max_tokens: int = 1024
    concurrency: int = 8
    timeout: float = 600.0
    retry: Retry = field(default_factory=Retry)


async def align(records: list[dict[str, Any]], config: AlignConfig) -> list[dict[str, Any]]:
    """Records with `response` replaced by the LLM's letter reply where it was asked (the original kept in
    `response_raw`), as align_in_foundation.py's output `gen` replaces the response; records without a response
    are not sent (it skips them too). A request that fails leaves the record unchanged with an `align_error`."""
    cache = JsonlCache(config.cache)
    client = make_client(config.base_url, config.api_key, config.timeout)
    semaphore = asyncio.Semaphore(max(1, config.concurrency))
    todo = [r for r in records if r.get("response") is not None
            and (config.scope == "all" or parse_letter(r["response"]) is None)]
    bar = tqdm(total=len(todo), desc="airbench align", unit="item", dynamic_ncols=True)

    async def one(record: dict[str, Any]) -> dict[str, Any]:
        prompt = align_prompt(record)
        key = cache_key(config.model, prompt, config.temperature)
        reply = cache.get(key)
        if reply is None:
            async with semaphore:
                try:
                    answer = await chat(client, config.retry, model=config.model, temperature=config.temperature,
                                        max_tokens=config.max_tokens,
                                        messages=[{"role": "user", "content": prompt}])
                except RequestFailed as exc:
                    bar.update()
                    return record | {"align_error": exc.message}
            reply = answer.text
            cache.put(key, reply)
        bar.update()
        return record | {"response": reply, "response_raw": record["response"]}

    try:
        async with asyncio.TaskGroup() as group:
            tasks = {id(r): group.create_task(one(r)) for r in todo}
    finally:
        bar.close()
        cache.close()
        await client.close()
    return [tasks[id(r)].result() if id(r) in tasks else r for r in records]
