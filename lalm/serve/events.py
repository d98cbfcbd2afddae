"""What the gateway streams, and the usage it reports, shaped in this module only.

- /v1/audio/transcriptions and /translations with `stream=true`: `transcript.text.delta` events, then one
  `transcript.text.done` with the whole text and the token usage (OpenAI's transcription stream events).
- /v1/chat/completions with `stream: true`: `chat.completion.chunk` objects, a role chunk per choice, content
  chunks, a finish chunk per choice, then (with `stream_options.include_usage`) a usage chunk without
  choices (OpenAI's chat streaming format).
- Usage bodies from the engines' `Usage`: the chat `usage` (the prompt counted once, completions of all n
  choices summed) and the transcription `usage` (tokens), the same whether streamed or not.
- Token logprobs of a transcription (`include[]=logprobs`): OpenAI's `logprobs` list, in the json response and
  in the stream events (each delta's tokens; the done event, all of them). Of a chat answer (`logprobs`,
  `top_logprobs`): a choice's `logprobs.content`, whole or per chunk; special tokens are left out
  (engines.messages.is_control_token), as from a transcript.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from lalm.audio import DecodeReport
from lalm.engines.base import Delta, Usage
from lalm.engines.messages import is_control_token
from lalm.formats import logprobs_body, transcription_usage
from lalm.longform.run import TaskEvent
from lalm.schema import TokenLogprob
from lalm.serve.protocol import ChatTokenLogprob, ChoiceLogprobs
from lalm.serve.protocol import Usage as ChatUsage

__all__ = ["chat_chunks", "chat_logprobs", "chat_usage", "logprobs_body", "transcript_events", "transcription_usage"]


def chat_usage(usages: Sequence[Usage]) -> ChatUsage:
    """The usage of a chat completion with one `Usage` per choice, in choice order: every choice saw the same
    prompt, so it is counted once; completion tokens are summed over the choices."""
    prompt = usages[0].prompt_tokens if usages else 0
    completion = sum(u.completion_tokens for u in usages)
    return ChatUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _token(text: str, logprob: float, model: type[TokenLogprob] = TokenLogprob, **fields: Any) -> TokenLogprob:
    """`model` (TokenLogprob or a subclass, with its own `fields`) for a token's text and logprob."""
    return model(token=text, logprob=logprob, bytes=list(text.encode()), **fields)


def chat_logprobs(logprobs: Sequence[tuple[str, float]],
                  top: Sequence[Sequence[tuple[str, float]]] = ()) -> ChoiceLogprobs:
    """An answer's (token text, logprob) pairs, with each one's alternatives `top` (engines.base.Completion's
    `top_logprobs`; none when empty), as a chat choice's `logprobs`, special tokens left out (a token reported
    as "" is part of a character the next one completes, and stays)."""
    top = top or [()] * len(logprobs)
    return ChoiceLogprobs(content=[
        _token(t, lp, ChatTokenLogprob, top_logprobs=[_token(a, alp) for a, alp in alts])
        for (t, lp), alts in zip(logprobs, top, strict=True) if not is_control_token(t)])


async def transcript_events(events: AsyncIterator[TaskEvent], skipped: DecodeReport, *,
                            logprobs: bool = False) -> AsyncIterator[dict]:
    """A task's events (lalm.longform.run.stream_task) as transcription stream events; the done event also
    says how many seconds of undecodable audio the decoder skipped (`skipped`, final by then). With
    `logprobs`, each event carries its tokens' logprobs (see the module docstring)."""
    text, tokens = [], []
    async for event in events:
        if event.text:
            text.append(event.text)
            tokens += event.logprobs
            delta = {"type": "transcript.text.delta", "delta": event.text}
            yield {**delta, "logprobs": logprobs_body(event.logprobs)} if logprobs else delta
        if event.finish_reason is not None:
            done = {"type": "transcript.text.done", "text": "".join(text),
                    "usage": transcription_usage(event.usage or Usage()).model_dump(),
                    "lalm_skipped_seconds": round(skipped.skipped_seconds, 3)}
            yield {**done, "logprobs": logprobs_body(tokens)} if logprobs else done


async def chat_chunks(deltas: AsyncIterator[tuple[int, Delta]], rid: str, created: int, model: str,
                      include_usage: bool, logprobs: bool = False) -> AsyncIterator[dict]:
    """`(choice index, delta)` pairs as chat.completion.chunk events (see the module docstring); with
    `logprobs`, content chunks carry their tokens' logprobs (a chunk of tokens that show no text yet has
    empty content)."""

    def chunk(choices: list[dict], **extra: object) -> dict:
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **extra}

    def choice(index: int, delta: dict, finish: str | None = None, tokens: dict | None = None) -> dict:
        return {"index": index, "delta": delta, "logprobs": tokens, "finish_reason": finish}

    usages: dict[int, Usage] = {}
    started: set[int] = set()
    async for index, delta in deltas:
        if index not in started:
            started.add(index)
            yield chunk([choice(index, {"role": "assistant", "content": ""})])
        tokens = chat_logprobs(delta.logprobs, delta.top_logprobs) if logprobs else None
        if delta.text or (tokens is not None and tokens.content):
            yield chunk([choice(index, {"content": delta.text}, tokens=tokens and tokens.model_dump())])
        if delta.finish_reason is not None:
            usages[index] = delta.usage or Usage()
            yield chunk([choice(index, {}, delta.finish_reason)])
    if include_usage:
        yield chunk([], usage=chat_usage([usages[i] for i in sorted(usages)]).model_dump())
