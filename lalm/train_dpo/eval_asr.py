"""Run a model over a manifest and score it (`lalm eval-asr`): a checkpoint folder through the transformers
engine, or any OpenAI-compatible endpoint (lalm's gateway, a bare vLLM server, a hosted API) through the
`openai` SDK with `input_audio` parts. Both send the same messages as the engines do at inference (the
clip, then the instruction), so their numbers are comparable; with greedy decoding they match token for
token on the same weights.

```bash
lalm eval-asr --model runs/dpo-merged --manifest data/test/manifest.jsonl --out runs/dpo-eval.json
lalm eval-asr --model http://127.0.0.1:8000/v1 --manifest data/test/manifest.jsonl --served-model lalm
```
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from lalm.engines.base import Message, SamplingParams
from lalm.metrics import AsrReport, score_corpus
from lalm.train_dpo.collator import prompt_messages
from lalm.train_dpo.data import Example, load_audio, read_manifest

__all__ = ["Answerer", "answer_all", "evaluate_manifest", "is_url", "open_answerer"]

Answerer = Callable[[Sequence[Message], SamplingParams], Awaitable[str]]


def is_url(model: str) -> bool:
    return model.startswith(("http://", "https://"))


@asynccontextmanager
async def open_answerer(model: str, *, served_model: str | None = None, api_key: str | None = None,
                        max_batch_size: int = 8) -> AsyncIterator[Answerer]:
    """An async `answer(messages, params) -> text` for a checkpoint folder or an endpoint URL."""
    if is_url(model):
        async with _openai_answerer(model, served_model, api_key) as answer:
            yield answer
        return
    from lalm.engines.hf import HFEngine

    engine = HFEngine(model, max_batch_size=max_batch_size)
    await engine.start()
    try:
        async def answer(messages: Sequence[Message], params: SamplingParams) -> str:
            return (await engine.generate(messages, params)).text

        yield answer
    finally:
        await engine.close()


@asynccontextmanager
async def _openai_answerer(url: str, served_model: str | None, api_key: str | None) -> AsyncIterator[Answerer]:
    from openai import AsyncOpenAI

    from lalm.engines.messages import to_openai_messages

    base = url.rstrip("/")
    base = base if base.endswith("/v1") else base + "/v1"
    client = AsyncOpenAI(base_url=base, api_key=api_key or "EMPTY", max_retries=0, timeout=600)
    try:
        name = served_model or (await client.models.list()).data[0].id

        async def answer(messages: Sequence[Message], params: SamplingParams) -> str:
            extra = {"seed": params.seed} if params.seed is not None else {}
            resp = await client.chat.completions.create(
                model=name, messages=to_openai_messages(messages), temperature=params.temperature,
                top_p=params.top_p, max_tokens=params.max_tokens, **extra,
            )
            return resp.choices[0].message.content or ""

        yield answer
    finally:
        await client.close()


async def answer_all(answer: Answerer, jobs: Sequence[tuple[Sequence[Message], SamplingParams]], *,
                     concurrency: int = 8, desc: str = "generate", progress: bool = True) -> list[str]:
    """Answers for every (messages, params) job, in order, `concurrency` at a time, with a progress bar."""
    from tqdm import tqdm

    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(jobs), desc=desc, unit="req", disable=not progress)

    async def one(messages: Sequence[Message], params: SamplingParams) -> str:
        async with gate:
            text = await answer(messages, params)
        bar.update()
        return text.strip()

    try:
        return list(await asyncio.gather(*(one(m, p) for m, p in jobs)))
    finally:
        bar.close()


async def _evaluate(model: str, examples: Sequence[Example], *, prompt: str | None, max_tokens: int,
                    concurrency: int, served_model: str | None, api_key: str | None, progress: bool) -> list[str]:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    jobs = [(prompt_messages(load_audio(ex), ex.prompt or prompt), params) for ex in examples]
    async with open_answerer(model, served_model=served_model, api_key=api_key,
                             max_batch_size=concurrency) as answer:
        return await answer_all(answer, jobs, concurrency=concurrency, desc="eval-asr", progress=progress)


def evaluate_manifest(model: str | Path, manifest: str | Path, *, prompt: str | None = None, max_tokens: int = 128,
                      concurrency: int = 8, served_model: str | None = None, api_key: str | None = None,
                      progress: bool = True) -> AsrReport:
    """Greedy answers of `model` (checkpoint folder or endpoint URL) on every clip of `manifest`, scored."""
    examples = read_manifest(manifest)
    hyps = asyncio.run(_evaluate(str(model), examples, prompt=prompt, max_tokens=max_tokens,
                                 concurrency=concurrency, served_model=served_model, api_key=api_key,
                                 progress=progress))
    root = Path(manifest).resolve().parent
    ids = [str(ex.audio.relative_to(root)) if ex.audio.is_relative_to(root) else str(ex.audio) for ex in examples]
    return score_corpus([ex.reference for ex in examples], hyps, ids)
