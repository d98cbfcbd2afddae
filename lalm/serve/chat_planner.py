"""What a chat completion asks of the engine, and running it (whole or streamed, n choices).

- Plain chat (no `task`) with every audio part at most 30 s: the conversation goes to the engine as is.
- A `task`: the task preset runs on the audio of the last user message (its parts joined in order, with
  a second of silence between them) through lalm.longform.run, with the earlier turns as history; for
  `qa` the message's text is the question.
- Plain chat with an audio part longer than 30 s: answered as `qa` with the message's text as the
  question (`describe` when it has no text): per-window answers, then a text-only reduction. Audio is
  never cut silently.

Token logprobs (`logprobs`) are the engine's for plain chat; an answer made from several generations (a task,
longer audio) has none, and asking for them there is a 400.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lalm.audio import SAMPLE_RATE
from lalm.engines.base import AudioPart, Completion, Delta, Engine, Message, SamplingParams, Usage
from lalm.engines.messages import WINDOW_SECONDS
from lalm.errors import LalmError
from lalm.job import check_capability, screen_windows, speech_request
from lalm.longform.run import TaskOptions, run_task, stream_task
from lalm.screen_text import ScreenLine
from lalm.serve.protocol import ChatCompletionRequest
from lalm.tasks import Task, get_task

__all__ = ["ChatJob", "complete", "merge_streams", "part_spans", "plan_chat", "sampling", "stream"]

_GAP = np.zeros(SAMPLE_RATE, np.float32)


@dataclass(frozen=True)
class ChatJob:
    """Plain chat (`task` None: send `messages`), or a task on `audio` with `history` before it."""

    messages: Sequence[Message]
    task: Task | None = None
    audio: np.ndarray | None = None
    question: str | None = None
    language: str | None = None
    context: str | None = None
    history: Sequence[Message] = field(default_factory=tuple)
    # each window's own context (start, end in seconds), e.g. with the on-screen text around it, and its
    # on-screen text for a Whisper model (SpeechRequest.screen)
    window_context: Callable[[float, float], str | None] | None = None
    window_screen: Callable[[float, float], str | None] | None = None
    # the on-screen lines: a transcript's windows are also cut where they change, and the windows of other tasks
    # carry those shown during them (for a composed model's Whisper)
    screen: Sequence[ScreenLine] = ()


def part_spans(audios: Sequence[AudioPart]) -> list[tuple[float, float]]:
    """(start, end) seconds of each audio part of a message once joined for a task (in order, a second of
    silence between two parts)."""
    spans, start = [], 0.0
    for a in audios:
        spans.append((start, start + len(a.samples) / SAMPLE_RATE))
        start = spans[-1][1] + len(_GAP) / SAMPLE_RATE
    return spans


def _too_long(m: Message) -> bool:
    return any(len(a.samples) > WINDOW_SECONDS * SAMPLE_RATE for a in m.audios)


def plan_chat(req: ChatCompletionRequest, messages: list[Message]) -> ChatJob:
    """Decide how to answer `req` (see the module docstring); 400 for what cannot be answered."""
    last = messages[-1]
    if req.task is None and not any(_too_long(m) for m in messages):
        return ChatJob(messages)
    what = f"task {req.task}" if req.task else "Audio longer than 30 s"
    if req.logprobs:
        raise LalmError(f"logprobs are given for plain chat on audio of up to 30 s; the answer to {what[0].lower()}"
                        f"{what[1:]} is made from several generations. For a transcript's token logprobs use "
                        "/v1/audio/transcriptions with include[]=logprobs.", param="logprobs",
                        code="unsupported_value")
    if last.role != "user" or not last.audios:
        raise LalmError(f"{what} needs audio in the last user message.", param="messages",
                        code="audio_required")
    if any(_too_long(m) for m in messages[:-1]):
        raise LalmError("Audio longer than 30 s is answered in the last user message only; earlier turns may "
                        "carry audio of up to 30 s.", param="messages", code="audio_too_long")
    pieces = [piece for a in last.audios for piece in (_GAP, a.samples)][1:]
    text = " ".join(p for p in last.content if isinstance(p, str)).strip()
    task = get_task(req.task or ("qa" if text else "describe"))
    return ChatJob(messages, task=task, audio=np.concatenate(pieces), question=text or None,
                   language=req.language, context=req.context, history=messages[:-1])


def sampling(req: ChatCompletionRequest, index: int, window_max_tokens: int, job: ChatJob) -> SamplingParams:
    """Sampling parameters of choice `index` (seed + index, so n choices differ but are reproducible)."""
    max_tokens = req.max_completion_tokens or req.max_tokens
    if max_tokens is None and job.task is not None and job.task.joins_windows:
        max_tokens = window_max_tokens
    return SamplingParams(temperature=req.temperature, top_p=req.top_p, max_tokens=max_tokens, stop=req.stops,
                          seed=None if req.seed is None else req.seed + index, logprobs=req.logprobs,
                          top_logprobs=req.top_logprobs or 0)


async def complete(engine: Engine, job: ChatJob, params: SamplingParams, concurrency: int) -> Completion:
    """One whole choice."""
    if job.task is None:
        return await engine.generate(job.messages, params)
    check_capability(engine, job.task)
    result = await run_task(engine, screen_windows(job.audio, job.task, job.screen), job.task, params,
                            _options(job, concurrency))
    return Completion(result.text, "length" if result.finish_reason == "length" else "stop", result.usage)


async def stream(engine: Engine, job: ChatJob, params: SamplingParams, concurrency: int) -> AsyncIterator[Delta]:
    """One choice as it is produced; the last delta has the finish reason and usage."""
    if job.task is None:
        async for delta in engine.stream(job.messages, params):
            yield delta
        return
    check_capability(engine, job.task)
    async for event in stream_task(engine, screen_windows(job.audio, job.task, job.screen), job.task, params,
                                   _options(job, concurrency)):
        if event.text:
            yield Delta(event.text)
        if event.finish_reason is not None:
            yield Delta("", "length" if event.finish_reason == "length" else "stop", event.usage or Usage())


def _options(job: ChatJob, concurrency: int) -> TaskOptions:
    """The window options of a chat task; a transcript or translation also carries the Whisper request, so a
    Whisper or composed model answers with its own words (lalm.job decides the rest the same way)."""
    assert job.task is not None
    speech = speech_request(job.task, None, job.context)
    return TaskOptions(question=job.question, language=job.language, context=job.context, history=job.history,
                       concurrency=concurrency, window_context=job.window_context, speech=speech,
                       window_screen=job.window_screen, screen=job.screen)


async def merge_streams(streams: list[AsyncIterator[Delta]]) -> AsyncIterator[tuple[int, Delta]]:
    """Deltas of several choices as they come, tagged with the choice index."""
    if len(streams) == 1:
        async for delta in streams[0]:
            yield 0, delta
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(index: int, source: AsyncIterator[Delta]) -> None:
        try:
            async for delta in source:
                queue.put_nowait((index, delta))
        except Exception as exc:  # raised by the consumer, in order with the deltas before it
            queue.put_nowait(exc)
        queue.put_nowait(None)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
