"""Reducing a long recording's window answers to one answer within the model's context: map-reduce as a tree.

Tasks that do not join windows (summarize, emotion, qa, describe: lalm.tasks) answer every window and then
combine the answers with a text-only prompt (lalm/prompts/NAME.reduce.txt). An hour of audio has over a hundred
window answers, more than a context holds in one prompt, so they are reduced in levels: consecutive answers are
grouped, as many as fit in one prompt, each group is reduced to one answer, and the answers of a level are
grouped again, until one prompt holds them all. That prompt is the final call, which the caller makes (streamed
or whole, lalm.longform.run).

Budgets, in tokens, follow from the engine's context length C (Engine.context_length) and the size E of the
task's reduction prompt holding two empty parts (its template, instructions and "Part i:" labels):
- `part_tokens` = (C - E - slack) // 3 is the most one part (a window's answer, a group's reduction) may take,
  so that two parts and an answer of that size always fit in C: every level at least halves the parts.
- Window answers and intermediate reductions are asked for at most `answer_tokens` = min(the request's
  max_tokens, part_tokens); every reduction prompt, the final one too, holds at most C - answer_tokens.
- The final call keeps the request's max_tokens, cut to the room its prompt leaves (none asked: the engine's
  own default within that room).
Prompts are counted by the engine's tokenizer (Engine.count_tokens): groups are planned from each part's own
count and then counted whole. A part that counts more than `part_tokens` (decoded text can tokenize to more
tokens than were generated, e.g. invalid UTF-8 shown as U+FFFD) is cut to fit. An engine that cannot tell its
context gets one reduction call with every answer, unbudgeted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from lalm.engines.base import Engine, EngineError, Message, SamplingParams, Usage
from lalm.tasks import Task

__all__ = ["FinalCall", "ReduceBudget", "reduce_budget", "reduce_to_final"]

# Tokens kept free in each budget for what planning from per-part counts cannot see: tokens that merge or
# split where two parts' texts meet the labels between them.
_SLACK = 16
# Below this a part is too short to carry anything a reduction could use.
_MIN_PART_TOKENS = 16


@dataclass(frozen=True)
class ReduceBudget:
    """The token budgets of one task's reduction on one engine (see the module docstring). `context`: the
    engine's context length; `part_tokens`: the most one part may take; `base`: the reduction prompt with
    one empty part; `label`: what each further empty part adds to it."""

    context: int
    part_tokens: int
    base: int
    label: int

    def answer_tokens(self, params: SamplingParams) -> int:
        """The max_tokens of a window answer or an intermediate reduction under `params`."""
        return min(params.max_tokens or self.part_tokens, self.part_tokens)

    def answer_params(self, params: SamplingParams) -> SamplingParams:
        """`params` with max_tokens `answer_tokens`: what each window of the task is asked with."""
        return dataclasses.replace(params, max_tokens=self.answer_tokens(params))

    def prompt_tokens(self, params: SamplingParams) -> int:
        """The most tokens any reduction prompt under `params` may take."""
        return self.context - self.answer_tokens(params)


@dataclass(frozen=True)
class FinalCall:
    """The last reduction call, for the caller to make: its `messages` and `params`; `usage` of the
    intermediate calls made to get there; `levels` of intermediate reductions (0: every answer fit)."""

    messages: list[Message]
    params: SamplingParams
    usage: Usage
    levels: int


async def reduce_budget(engine: Engine, task: Task, *, question: str | None = None) -> ReduceBudget | None:
    """The budgets of `task`'s reduction on `engine`, or None when the engine does not tell its context length.

    Raises EngineError (400, context_length_exceeded) when the context is too small for the reduction prompt
    and two parts of at least `_MIN_PART_TOKENS`, e.g. a qa question near the context's size."""
    context = await engine.context_length()
    if context is None:
        return None
    base = await engine.count_tokens(_prompt(task, [""], question))
    two = await engine.count_tokens(_prompt(task, ["", ""], question))
    part_tokens = (context - two - _SLACK) // 3
    if part_tokens < _MIN_PART_TOKENS:
        raise EngineError(f"The model's context ({context} tokens) is too small to combine the answers of a long "
                          f"recording: the {task.name} reduction prompt alone takes {two}.", 400,
                          "context_length_exceeded")
    return ReduceBudget(context, part_tokens, base, two - base)


async def reduce_to_final(engine: Engine, task: Task, answers: Sequence[str], params: SamplingParams, *,
                          budget: ReduceBudget | None, question: str | None = None,
                          concurrency: int = 8) -> FinalCall:
    """Reduce `answers` (one per window, in order) level by level until one prompt within `budget` holds
    them all, and return that final call. Intermediate calls run at most `concurrency` at a time, at
    `params` with max_tokens `budget.answer_tokens(params)` and no logprobs. Without a budget, the final
    call holds every answer.

    Raises EngineError from the engine's calls, or (500) if a level could not combine any two parts."""
    if budget is None:
        return FinalCall(_prompt(task, answers, question), params, Usage(), 0)
    reducer = _Reducer(engine, task, question, budget, params)
    parts = [await reducer.clip(a) for a in answers]
    usage, levels = Usage(), 0
    while len(groups := await reducer.groups(parts)) > 1:
        if len(groups) == len(parts):
            raise EngineError(f"Could not fit two answers of the {task.name} reduction in one prompt of "
                              f"{reducer.limit} tokens.", 500, "reduction_failed")
        parts, level_usage = await reducer.level(parts, groups, concurrency)
        usage, levels = usage + level_usage, levels + 1
    messages = _prompt(task, [p.text for p in parts], question)
    final = params
    if params.max_tokens is not None:
        room = budget.context - await engine.count_tokens(messages)
        final = dataclasses.replace(params, max_tokens=min(params.max_tokens, room))
    return FinalCall(messages, final, usage, levels)


def _prompt(task: Task, parts: Sequence[str], question: str | None) -> list[Message]:
    return [Message("user", task.reduction(list(parts), question=question))]


@dataclass(frozen=True)
class _Part:
    text: str
    tokens: int  # what the text adds to a reduction prompt


class _Reducer:
    """One reduction's levels: parts counted and cut to `part_tokens`, grouped into prompts of at most
    `limit` tokens, each group reduced by one call."""

    def __init__(self, engine: Engine, task: Task, question: str | None, budget: ReduceBudget,
                 params: SamplingParams) -> None:
        self.engine, self.task, self.question, self.budget = engine, task, question, budget
        self.limit = budget.prompt_tokens(params)
        self.params = dataclasses.replace(budget.answer_params(params), logprobs=False, top_logprobs=0)

    async def count(self, parts: Sequence[_Part]) -> int:
        return await self.engine.count_tokens(_prompt(self.task, [p.text for p in parts], self.question))

    async def size(self, text: str) -> int:
        return await self.engine.count_tokens(_prompt(self.task, [text], self.question)) - self.budget.base

    async def clip(self, text: str) -> _Part:
        """`text` stripped, as a part; cut to its longest prefix of at most `part_tokens` (by bisection on its
        characters) when it takes more."""
        text = text.strip()
        tokens = await self.size(text)
        if tokens <= self.budget.part_tokens:
            return _Part(text, tokens)
        fits, over = 0, len(text)
        while over - fits > 1:
            mid = (fits + over) // 2
            if await self.size(text[:mid]) <= self.budget.part_tokens:
                fits = mid
            else:
                over = mid
        cut = text[:fits].rstrip()
        return _Part(cut, await self.size(cut))

    async def groups(self, parts: Sequence[_Part]) -> list[range]:
        """Consecutive parts grouped greedily into prompts of at most `limit` tokens (a group of one part
        always fits: a part takes at most `part_tokens`)."""
        groups, start = [], 0
        while start < len(parts):
            end, total = start + 1, self.budget.base + parts[start].tokens
            while end < len(parts) and total + self.budget.label + parts[end].tokens <= self.limit - _SLACK:
                total += self.budget.label + parts[end].tokens
                end += 1
            while end - start > 1 and await self.count(parts[start:end]) > self.limit:
                end -= 1
            groups.append(range(start, end))
            start = end
        return groups

    async def level(self, parts: Sequence[_Part], groups: Sequence[range],
                    concurrency: int) -> tuple[list[_Part], Usage]:
        """Each group of `parts` reduced to one part (a group of one is kept as it is), and the calls' usage."""
        slots = asyncio.Semaphore(concurrency)

        async def reduce(group: range) -> tuple[_Part, Usage]:
            if len(group) == 1:
                return parts[group[0]], Usage()
            async with slots:
                out = await self.engine.generate(_prompt(self.task, [parts[i].text for i in group], self.question),
                                                 self.params)
            return await self.clip(out.text), out.usage

        # gather rather than a TaskGroup, so an engine's EngineError reaches the caller as it is (its status is
        # the answer's), not inside an ExceptionGroup; the calls still running are cancelled on the way out
        tasks = [asyncio.create_task(reduce(g)) for g in groups]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
        return [part for part, _ in results], sum((u for _, u in results), Usage())
