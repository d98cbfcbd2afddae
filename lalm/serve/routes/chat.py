"""POST /v1/chat/completions: OpenAI chat completions with audio parts, task presets and audio of any length
(lalm.serve.chat_planner decides what to run)."""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from lalm.audio import SAMPLE_RATE, DecodeReport
from lalm.serve import chat_planner
from lalm.serve.cancel import cancel_on_disconnect
from lalm.serve.deps import MetricsDep, SettingsDep, require, resolve_model
from lalm.serve.events import chat_chunks, chat_logprobs, chat_usage
from lalm.serve.inputs import decode_messages, skipped_headers
from lalm.serve.protocol import ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessage, ErrorResponse
from lalm.serve.screen import chat_screen_text, wanted
from lalm.serve.sse import primed, sse_response

router = APIRouter(tags=["chat"])

_RESPONSES = {
    200: {"description": "A chat.completion; with stream=true, chat.completion.chunk events as text/event-stream.",
          "content": {"text/event-stream": {}}},
    **{status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 502, 503, 504)},
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_RESPONSES)
@cancel_on_disconnect
async def chat_completions(body: ChatCompletionRequest, request: Request, response: Response, settings: SettingsDep,
                           metrics: MetricsDep) -> ChatCompletion | StreamingResponse:
    """Chat with audio. Audio parts: `input_audio` (base64 of any supported container) and `audio_url`
    (data: URLs; http(s) when enabled). Set the lalm extra `task` to run a preset; audio longer than 30 s
    is split into windows (see the API description). `stream: true` sends OpenAI chunks as SSE."""
    served = resolve_model(request, body.model)
    # before any audio is read: a task preset, or plain chat
    require(served, chat=body.task is None, task=body.task, param="task" if body.task else "model")
    engine = served.engine
    skipped = DecodeReport()
    screen_text = wanted(body.lalm_screen_text, settings) and body.messages[-1].role == "user"
    fetched: dict[int, bytes] = {}  # bytes behind the last message's http(s) audio URLs, for their picture
    messages = await decode_messages(body.messages, settings, skipped, fetched if screen_text else None)
    headers = skipped_headers(skipped) if any(m.audios for m in messages) else {}
    seconds = sum(len(a.samples) for m in messages for a in m.audios) / SAMPLE_RATE
    metrics.audio_seconds.labels(route="chat").inc(seconds)
    job = chat_planner.plan_chat(body, messages)
    if screen_text and messages[-1].audios:
        screen = await chat_screen_text(body.messages[-1], messages[-1], settings, fetched)
        fetched.clear()  # read: not held while the model runs
        job = screen.chat_job(job)
        headers.update(screen.headers())
    params = [chat_planner.sampling(body, i, settings.window_max_tokens, job) for i in range(body.n)]
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    concurrency = settings.window_concurrency
    if body.stream:
        streams = [chat_planner.stream(engine, job, p, concurrency) for p in params]
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = chat_chunks(chat_planner.merge_streams(streams), rid, created, body.model, include_usage,
                             logprobs=body.logprobs)
        stream = sse_response(await primed(chunks, settings.sse_heartbeat_s), done_marker=True, metrics=metrics)
        stream.headers.update(headers)
        return stream
    outs = await asyncio.gather(*(chat_planner.complete(engine, job, p, concurrency) for p in params))
    response.headers.update(headers)
    return ChatCompletion(
        id=rid, created=created, model=body.model,
        choices=[ChatChoice(index=i, message=ChatMessage(content=o.text), finish_reason=o.finish_reason,
                            logprobs=chat_logprobs(o.logprobs, o.top_logprobs) if body.logprobs else None)
                 for i, o in enumerate(outs)],
        usage=chat_usage([o.usage for o in outs]),
    )

