"""POST /v1/chat/completions: OpenAI chat completions with audio parts, task presets and audio of any length
(lalm.serve.completions decides what to run)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from lalm.audio import SAMPLE_RATE, DecodeReport
from lalm.engines.base import Usage
from lalm.serve import completions
from lalm.serve.deps import EngineDep, MetricsDep, SettingsDep, check_model, record_engine_error
from lalm.serve.inputs import decode_messages, skipped_headers
from lalm.serve.protocol import ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessage, ErrorResponse
from lalm.serve.protocol import Usage as UsageBody
from lalm.serve.sse import primed, sse_response

router = APIRouter(tags=["chat"])

_RESPONSES = {
    200: {"description": "A chat.completion; with stream=true, chat.completion.chunk events as text/event-stream.",
          "content": {"text/event-stream": {}}},
    **{status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 502, 503, 504)},
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request, response: Response, engine: EngineDep,
                           settings: SettingsDep, metrics: MetricsDep) -> ChatCompletion | StreamingResponse:
    """Chat with audio. Audio parts: `input_audio` (base64 of any supported container) and `audio_url`
    (data: URLs; http(s) when enabled). Set the lalm extra `task` to run a preset; audio longer than 30 s
    is split into windows (see the API description). `stream: true` sends OpenAI chunks as SSE."""
    check_model(body.model, request)
    skipped = DecodeReport()
    messages = await decode_messages(body.messages, settings, skipped)
    headers = skipped_headers(skipped) if any(m.audios for m in messages) else {}
    seconds = sum(len(a.samples) for m in messages for a in m.audios) / SAMPLE_RATE
    metrics.audio_seconds.labels(route="chat").inc(seconds)
    job = completions.plan_chat(body, messages)
    params = [completions.sampling(body, i, settings.window_max_tokens, job) for i in range(body.n)]
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    concurrency = settings.window_concurrency
    if body.stream:
        streams = [completions.stream(engine, job, p, concurrency) for p in params]
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = _chunks(completions.merge_streams(streams), rid, created, body.model, body.n, include_usage)
        stream = sse_response(await primed(chunks), done_marker=True,
                              on_error=lambda exc, _: record_engine_error(metrics, exc))
        stream.headers.update(headers)
        return stream
    outs = await asyncio.gather(*(completions.complete(engine, job, p, concurrency) for p in params))
    response.headers.update(headers)
    prompt = outs[0].usage.prompt_tokens
    completion = sum(o.usage.completion_tokens for o in outs)
    return ChatCompletion(
        id=rid, created=created, model=body.model,
        choices=[ChatChoice(index=i, message=ChatMessage(content=o.text), finish_reason=o.finish_reason)
                 for i, o in enumerate(outs)],
        usage=UsageBody(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
    )


async def _chunks(deltas: AsyncIterator, rid: str, created: int, model: str, n: int,
                  include_usage: bool) -> AsyncIterator[dict]:
    """OpenAI chat.completion.chunk events: a role chunk per choice, content chunks, a finish chunk per
    choice, then (with stream_options.include_usage) a usage chunk without choices."""

    def chunk(choices: list[dict], **extra: object) -> dict:
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **extra}

    def choice(index: int, delta: dict, finish: str | None = None) -> dict:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    usages: dict[int, Usage] = {}
    started: set[int] = set()
    async for index, delta in deltas:
        if index not in started:
            started.add(index)
            yield chunk([choice(index, {"role": "assistant", "content": ""})])
        if delta.text:
            yield chunk([choice(index, {"content": delta.text})])
        if delta.finish_reason is not None:
            usages[index] = delta.usage or Usage()
            yield chunk([choice(index, {}, delta.finish_reason)])
    if include_usage:
        prompt = usages[0].prompt_tokens if 0 in usages else 0
        completion = sum(u.completion_tokens for u in usages.values())
        yield chunk([], usage={"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion})
