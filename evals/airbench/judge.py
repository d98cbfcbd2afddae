"""Judge Chat answers with an LLM, as OFA-Sys/AIR-Bench's score_chat.py + cal_score.py (commit 9832476).

For each answered item the judge gets the reference prompt (prompts.JUDGE_TEMPLATE) twice: once with the
reference answer as Assistant 1 and the model as Assistant 2 (score_chat.py), once swapped (the README's
"swap the positions ... then calculate the final score"). Items without a response are skipped, as
score_chat.py does. Differences from the reference, on purpose:
- strict replies: exactly two integers from 1 to 10 separated by one space (cal_score.py also accepts 0,
  negatives and "+8", and stops the whole run on a score above 10); anything else is asked again, up to
  `attempts` times, then counted as a failure;
- one temperature for every request (default 1.0, the script's default) instead of 2.0 on a random half;
- a cache keyed by (judge model, prompt, order, temperature): a rerun never pays for a reply twice.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evals.airbench.aggregate import ORDERS, aggregate_chat
from evals.airbench.client import RequestFailed, Retry, chat, make_client
from evals.airbench.prompts import judge_prompt
from evals.airbench.store import JsonlCache, cache_key

__all__ = ["JudgeConfig", "judge", "judge_requests", "parse_judge_reply"]

_SCORE = re.compile(r"10|[1-9]")


def parse_judge_reply(text: str | None) -> tuple[int, int] | None:
    """The two scores of a judge reply, or None. Normalised as cal_score.py does (strip, drop newlines,
    split on single spaces), then each part must be an integer 1..10 written plainly."""
    if text is None:
        return None
    parts = text.strip().replace("\n", "").split(" ")
    if len(parts) != 2 or not all(_SCORE.fullmatch(p) for p in parts):
        return None
    return int(parts[0]), int(parts[1])


@dataclass
class JudgeConfig:
    """What `judge` needs; the CLI flags map one to one."""

    base_url: str
    model: str
    cache: Path
    api_key: str | None = None
    temperature: float = 1.0
    max_tokens: int = 1024
    attempts: int = 3
    concurrency: int = 8
    timeout: float = 600.0
    retry: Retry = field(default_factory=Retry)
    retry_failures: bool = False


def judge_requests(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, str]]:
    """(record, order, prompt) for both orders of every record that has a response: score_chat.py's
    build_test_file (answer_gt as Assistant 1, skip a None response, stop on a missing meta_info), plus the
    swapped order the AIR-Bench README asks for."""
    requests = []
    for record in records:
        if record.get("response") is None:
            continue
        if record.get("meta_info") is None:
            raise ValueError(f"uniq_id {record.get('uniq_id')}: no meta_info; chat results need the Chat_meta "
                             "fields (score_chat.py stops here too)")
        gt, answer = record["answer_gt"], record["response"]
        for order in ORDERS:
            pair = (gt, answer) if order == "gt_first" else (answer, gt)
            requests.append((record, order, judge_prompt(record["meta_info"], record["question"], *pair)))
    return requests


def _judgment(record: dict[str, Any], order: str, value: dict[str, Any]) -> dict[str, Any]:
    scores = value.get("scores")
    out = {k: record.get(k) for k in ("uniq_id", "task_name", "dataset_name")}
    out |= {"order": order, "scores": scores, "replies": value.get("replies", [])}
    if value.get("error"):
        out["error"] = value["error"]
    if scores is not None:
        model_i = 1 if order == "gt_first" else 0
        out |= {"model_score": scores[model_i], "reference_score": scores[1 - model_i]}
    return out


async def judge(records: list[dict[str, Any]], config: JudgeConfig) -> dict[str, Any]:
    """Judge `records` (Chat results) and return the aggregate (aggregate.aggregate_chat) with the
    per-request judgments and request counts."""
    requests = judge_requests(records)
    cache = JsonlCache(config.cache)
    client = make_client(config.base_url, config.api_key, config.timeout)
    semaphore = asyncio.Semaphore(max(1, config.concurrency))
    counts = {"requests": 0, "cache_hits": 0, "http_errors": 0}
    bar = tqdm(total=len(requests), desc="airbench judge", unit="reply", dynamic_ncols=True)

    async def one(record: dict[str, Any], order: str, prompt: str) -> dict[str, Any]:
        key = cache_key(config.model, prompt, order, config.temperature)
        cached = cache.get(key)
        if cached is not None and (cached["scores"] is not None or not config.retry_failures):
            counts["cache_hits"] += 1
            bar.update()
            return _judgment(record, order, cached)
        replies: list[str] = []
        scores = None
        async with semaphore:
            try:
                while scores is None and len(replies) < config.attempts:
                    counts["requests"] += 1
                    reply = await chat(client, config.retry, model=config.model, temperature=config.temperature,
                                       max_tokens=config.max_tokens, messages=[{"role": "user", "content": prompt}])
                    replies.append(reply.text)
                    scores = parse_judge_reply(reply.text)
            except RequestFailed as exc:
                # not cached: the endpoint failed, not the judge, so a rerun asks again
                counts["http_errors"] += 1
                bar.update()
                return _judgment(record, order, {"scores": None, "replies": replies, "error": exc.message})
        value = {"scores": list(scores) if scores else None, "replies": replies}
        cache.put(key, value)
        bar.update()
        return _judgment(record, order, value)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(*r)) for r in requests]
    finally:
        bar.close()
        cache.close()
        await client.close()
    judgments = [t.result() for t in tasks]
    summary = aggregate_chat(judgments)
    summary |= {"judge_model": config.model, "temperature": config.temperature, "skipped_no_response":
                sum(r.get("response") is None for r in records), **counts, "judgments": judgments}
    return summary
