"""The reduction tree of long recordings' answers (lalm.longform.reduce), through a text model at the Engine seam
that counts tokens like a tokenizer and answers the worst case: noise of every token it is allowed. Its
context is enforced as vLLM enforces it (a prompt plus max_tokens over the context is refused), so every test
that finishes also shows that no call overflowed. The real engines and the gateway are tested in
tests/engines/test_engines_context.py and tests/serve/test_serve_long_reduce.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from lalm.engines.base import Completion, Delta, Engine, EngineError, Message, SamplingParams, Usage
from lalm.longform.reduce import ReduceBudget, reduce_budget, reduce_to_final
from lalm.longform.run import TaskOptions, run_task, stream_task
from lalm.tasks import get_task

SUMMARIZE = get_task("summarize")
TAG = re.compile(r"\bw\d+\b")


def _text(messages: Sequence[Message]) -> str:
    return "\n".join(m.content if isinstance(m.content, str) else " ".join(p for p in m.content if isinstance(p, str))
                     for m in messages)


def _tokens(text: str) -> int:
    """Tokens of `text`: its pieces between spaces and hyphens, so a generated "ab-cd" (one token when
    generated) counts two when read back, as decoded noise can re-tokenize longer."""
    return len(re.findall(r"[^\s-]+", text))


class WorstCaseEngine(Engine):
    """Counts 3 template tokens per message plus `_tokens` of its text; answers every token it may (max_tokens,
    or all the room left when none is given, as vLLM does): first the window tags (`w<i>`) its prompt holds, in
    order, so a test can see which answers reached which call, then noise whose every 4th token reads back as
    two. Refuses (400) a call whose prompt and max_tokens do not fit `context`. Records each text-only call as
    (prompt tokens, max_tokens, prompt text)."""

    model_name = "worst-case"

    def __init__(self, context: int | None) -> None:
        self.context = context
        self.calls: list[tuple[int, int, str]] = []
        self.window_max_tokens: list[int | None] = []

    async def context_length(self) -> int | None:
        return self.context

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        return _tokens(_text(messages)) + 3 * len(messages)

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        prompt = await self.count_tokens(messages)
        context = self.context or 10**9
        max_tokens = params.max_tokens if params.max_tokens is not None else context - prompt
        if prompt + max_tokens > context:
            raise EngineError(f"maximum context length is {context} tokens; the prompt is {prompt} and "
                              f"max_tokens {max_tokens}", 400, "upstream_bad_request")
        audio = any(m.audios for m in messages)
        if audio:
            self.window_max_tokens.append(params.max_tokens)
        else:
            self.calls.append((prompt, max_tokens, _text(messages)))
        tags = [] if audio else TAG.findall(_text(messages))
        noise = ["ab-cd" if i % 4 == 3 else "ab" for i in range(max_tokens - len(tags))]
        await asyncio.sleep(0)
        return Completion(" ".join(tags + noise), "length", Usage(prompt, max_tokens))

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        out = await self.generate(messages, params)
        yield Delta(out.text, out.finish_reason, out.usage)


def _answers(engine: WorstCaseEngine, budget: ReduceBudget, n: int) -> list[str]:
    """`n` window answers of the most tokens a window may generate, tagged w0 ... w<n-1>."""
    return [f"w{i} " + " ".join("ab-cd" if j % 4 == 3 else "ab" for j in range(budget.part_tokens - 1))
            for i in range(n)]


async def _two_empty_parts(engine: Engine) -> int:
    return await engine.count_tokens([Message("user", SUMMARIZE.reduction(["", ""]))])


def test_budgets_follow_the_context_and_the_prompt():
    for context in (1024, 4096, 32768):
        engine = WorstCaseEngine(context)
        budget = asyncio.run(reduce_budget(engine, SUMMARIZE))
        two = asyncio.run(_two_empty_parts(engine))
        assert budget.context == context
        assert budget.part_tokens == (context - two - 16) // 3
        # two parts and an answer of the most a part may take fit the context
        assert two + 3 * budget.part_tokens <= context
        assert budget.answer_params(SamplingParams()).max_tokens == budget.part_tokens
        assert budget.answer_params(SamplingParams(max_tokens=100)).max_tokens == 100
        assert budget.answer_params(SamplingParams(max_tokens=10**6)).max_tokens == budget.part_tokens
    # a qa question is in every reduction prompt: it takes room from the parts
    long_question = "Why? " * 200
    qa = asyncio.run(reduce_budget(WorstCaseEngine(4096), get_task("qa"), question=long_question))
    short = asyncio.run(reduce_budget(WorstCaseEngine(4096), get_task("qa"), question="Why?"))
    assert qa.part_tokens < short.part_tokens


def test_an_hour_of_worst_case_answers_is_reduced_in_levels_within_the_context():
    engine = WorstCaseEngine(4096)
    budget = asyncio.run(reduce_budget(engine, SUMMARIZE))
    answers = _answers(engine, budget, 120)  # 120 windows of 30 s
    final = asyncio.run(reduce_to_final(engine, SUMMARIZE, answers, SamplingParams(), budget=budget))
    # each answer takes about a third of the context: two fit a prompt, so every level pairs them up:
    # 120 -> 60 -> 30 -> 15 -> 8 -> 4 -> 2, and the last two fit the final prompt
    assert final.levels == 6
    assert len(engine.calls) == 60 + 30 + 15 + 7 + 4 + 2
    for prompt, max_tokens, text in engine.calls:
        assert max_tokens == budget.part_tokens
        assert prompt <= 4096 - budget.part_tokens
        assert text.count("Part ") == 2
    final_prompt = asyncio.run(engine.count_tokens(final.messages))
    assert final_prompt <= 4096 - budget.part_tokens
    assert final.params.max_tokens is None  # none asked: the answer takes the room left
    # every window's answer reached the final prompt, in order
    assert TAG.findall(_text(final.messages)) == [f"w{i}" for i in range(120)]
    assert final.usage == Usage(sum(c[0] for c in engine.calls), sum(c[1] for c in engine.calls))


def test_short_answers_fit_one_prompt_without_levels():
    engine = WorstCaseEngine(4096)
    budget = asyncio.run(reduce_budget(engine, SUMMARIZE))
    answers = [f"w{i} ab ab ab ab ab ab ab" for i in range(120)]
    final = asyncio.run(reduce_to_final(engine, SUMMARIZE, answers, SamplingParams(max_tokens=8), budget=budget))
    assert final.levels == 0 and engine.calls == []
    assert final.params.max_tokens == 8
    assert TAG.findall(_text(final.messages)) == [f"w{i}" for i in range(120)]


def test_a_large_max_tokens_is_cut_to_the_room_the_final_prompt_leaves():
    engine = WorstCaseEngine(4096)
    budget = asyncio.run(reduce_budget(engine, SUMMARIZE))
    params = SamplingParams(max_tokens=3500)
    final = asyncio.run(reduce_to_final(engine, SUMMARIZE, _answers(engine, budget, 9), params, budget=budget))
    room = 4096 - asyncio.run(engine.count_tokens(final.messages))
    assert final.params.max_tokens == room >= budget.part_tokens
    # and the final call then fits
    asyncio.run(engine.generate(final.messages, final.params))


def test_an_answer_longer_than_a_part_is_cut_to_fit():
    engine = WorstCaseEngine(2048)
    budget = asyncio.run(reduce_budget(engine, SUMMARIZE))
    answers = _answers(engine, budget, 5)
    answers[2] = "w2 " + "ab-cd " * (10 * budget.part_tokens)  # re-counts as 20 parts' worth
    final = asyncio.run(reduce_to_final(engine, SUMMARIZE, answers, SamplingParams(), budget=budget))
    assert final.levels >= 1
    assert all(prompt <= 2048 - budget.part_tokens for prompt, _, _ in engine.calls)
    assert TAG.findall(_text(final.messages)) == ["w0", "w1", "w2", "w3", "w4"]


def test_an_engine_that_cannot_tell_its_context_gets_one_call_with_every_answer():
    engine = WorstCaseEngine(None)
    assert asyncio.run(reduce_budget(engine, SUMMARIZE)) is None
    params = SamplingParams(max_tokens=5000)
    final = asyncio.run(reduce_to_final(engine, SUMMARIZE, [f"w{i} ab" for i in range(200)], params, budget=None))
    assert final.levels == 0 and final.params == params and final.usage == Usage()
    assert TAG.findall(_text(final.messages)) == [f"w{i}" for i in range(200)]


def test_the_base_engine_counts_an_over_estimate():
    engine = WorstCaseEngine(None)
    messages = [Message("user", "ab ab-cd ünï")]
    assert asyncio.run(Engine.count_tokens(engine, messages)) >= asyncio.run(engine.count_tokens(messages))
    assert asyncio.run(Engine.context_length(engine)) is None


def test_a_context_too_small_for_the_reduction_prompt_is_a_400():
    with pytest.raises(EngineError) as err:
        asyncio.run(reduce_budget(WorstCaseEngine(100), SUMMARIZE))
    assert err.value.status == 400 and err.value.code == "context_length_exceeded"


def test_an_engine_error_in_a_level_reaches_the_caller_as_it_is():
    class Failing(WorstCaseEngine):
        async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
            if len(self.calls) == 3:
                raise EngineError("The model server is restarting.", 503, "upstream_unavailable")
            return await super().generate(messages, params)

    engine = Failing(4096)
    budget = asyncio.run(reduce_budget(engine, SUMMARIZE))
    with pytest.raises(EngineError) as err:
        asyncio.run(reduce_to_final(engine, SUMMARIZE, _answers(engine, budget, 40), SamplingParams(), budget=budget,
                                    concurrency=2))
    assert err.value.status == 503


@pytest.mark.parametrize("live", [False, True])
def test_a_long_recording_is_summarized_within_a_small_context(live):
    """Ten minutes of sound through run_task / stream_task: 20 windows answer the most a part may take, and
    their reduction fits a 1,024-token context."""
    engine = WorstCaseEngine(1024)
    budget = asyncio.run(reduce_budget(engine, SUMMARIZE))
    audio = np.random.default_rng(0).normal(0, 0.1, 600 * 16000).astype(np.float32)
    if live:
        async def collect() -> str:
            return "".join([e.text async for e in stream_task(engine, audio, SUMMARIZE, SamplingParams())])
        text = asyncio.run(collect())
    else:
        text = asyncio.run(run_task(engine, audio, SUMMARIZE, SamplingParams(), TaskOptions())).text
    assert len(engine.window_max_tokens) >= 20
    assert set(engine.window_max_tokens) == {budget.part_tokens}
    assert len(engine.calls) > 1  # in levels: 20 answers of a third of the context do not fit one prompt
    assert all(prompt + max_tokens <= 1024 for prompt, max_tokens, _ in engine.calls)
    assert text.strip()
