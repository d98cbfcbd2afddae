"""Generate answers for an AIR-Bench split through an OpenAI-compatible endpoint, resumably.

Follows Inference_Foundation.py / Inference_Chat.py (OFA-Sys/AIR-Bench, commit 9832476): one request per
item with its audio and the reference prompt (Foundation: the multiple-choice wrapper; Chat: the question
alone), items whose audio file is missing skipped with a warning, one result line per item with the
reference's fields. Greedy decoding and 256 new tokens by default, as Qwen2-Audio's own AIR-Bench run
(QwenLM/Qwen2-Audio eval_audio/evaluate_chat.py: do_sample=False, max_new_tokens=256).

Resuming: each finished item is appended to the output and fsynced at once; a rerun skips every uniq_id
already there. A request that still fails after the retries is recorded with an `error` field (and no
response) so the run goes on; `retry_errors` runs those items again and replaces their records.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evals.airbench.client import RequestFailed, Retry, chat, make_client
from evals.airbench.layout import Split, audio_path, load_meta, result_record, select
from evals.airbench.prompts import foundation_prompt
from evals.airbench.store import JsonlWriter, read_jsonl

__all__ = ["RunConfig", "RunSummary", "build_messages", "run"]

log = logging.getLogger("evals.airbench")


@dataclass
class RunConfig:
    """What `run` needs; the CLI flags map one to one."""

    root: Path
    split: Split
    base_url: str
    model: str
    out: Path
    api_key: str | None = None
    concurrency: int = 4
    limit: int | None = None
    tasks: tuple[str, ...] = ()
    max_tokens: int = 256
    temperature: float = 0.0
    timeout: float = 600.0
    retry: Retry = field(default_factory=Retry)
    retry_errors: bool = False


@dataclass
class RunSummary:
    """Counts of one run: items selected, already done before it, skipped for missing audio, answered now,
    failed now (recorded with an error)."""

    selected: int = 0
    already_done: int = 0
    missing_audio: int = 0
    answered: int = 0
    failed: int = 0


def build_messages(split: Split, item: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """One user message: the audio as an input_audio part (base64 of the file's bytes, its format named by
    the extension), then the reference prompt text: Inference_Foundation.py's instruction + question + choices,
    or Inference_Chat.py's question alone (Qwen2-Audio's evaluate_chat.py also sends the audio before the query)."""
    text = foundation_prompt(item) if split == "foundation" else item["question"]
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    audio = {"type": "input_audio", "input_audio": {"data": data, "format": path.suffix.lower().lstrip(".")}}
    return [{"role": "user", "content": [audio, {"type": "text", "text": text}]}]


def _drop_error_records(out: Path) -> None:
    """Rewrite `out` without its error records (atomically), so rerun items get exactly one record."""
    kept = [r for r in read_jsonl(out) if not r.get("error")]
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)  # left by a crash during an earlier rewrite
    with JsonlWriter(tmp) as writer:
        for record in kept:
            writer.write(record)
    os.replace(tmp, out)


def _pending(config: RunConfig, items: list[dict[str, Any]], summary: RunSummary) -> list[dict[str, Any]]:
    if config.retry_errors and config.out.exists():
        _drop_error_records(config.out)
    done = {r.get("uniq_id") for r in read_jsonl(config.out)}
    todo = []
    for item in items:
        if item["uniq_id"] in done:
            summary.already_done += 1
        elif not audio_path(config.root, config.split, item).is_file():
            log.warning("lack wav %s", audio_path(config.root, config.split, item))
            summary.missing_audio += 1
        else:
            todo.append(item)
    return todo


async def run(config: RunConfig) -> RunSummary:
    """Answer every selected item not yet in `config.out`, `config.concurrency` requests at a time; like the
    reference Inference_*.py loops, items whose audio is missing are skipped ("lack wav") and not written."""
    summary = RunSummary()
    items = select(load_meta(config.root, config.split), config.tasks, config.limit)
    summary.selected = len(items)
    todo = _pending(config, items, summary)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    client = make_client(config.base_url, config.api_key, config.timeout)
    bar = tqdm(total=len(todo), desc=f"airbench {config.split}", unit="item", dynamic_ncols=True)

    async def worker(writer: JsonlWriter) -> None:
        while not queue.empty():
            item = queue.get_nowait()
            path = audio_path(config.root, config.split, item)
            messages = await asyncio.to_thread(build_messages, config.split, item, path)
            try:
                reply = await chat(client, config.retry, model=config.model, messages=messages,
                                   max_tokens=config.max_tokens, temperature=config.temperature)
            except RequestFailed as exc:
                record = result_record(config.split, item, None) | {"error": exc.message, "attempts": exc.attempts}
                summary.failed += 1
            else:
                record = result_record(config.split, item, reply.text) | {"latency_s": round(reply.latency_s, 4)}
                summary.answered += 1
            writer.write(record)
            bar.update()
            bar.set_postfix(failed=summary.failed, refresh=False)

    try:
        # a TaskGroup cancels the other workers if one fails unexpectedly, before the writer closes
        with JsonlWriter(config.out) as writer:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, config.concurrency)):
                    group.create_task(worker(writer))
    finally:
        bar.close()
        await client.close()
    return summary
