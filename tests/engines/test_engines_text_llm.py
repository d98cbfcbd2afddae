"""The composed default's text LLM (SmolLM2-135M-Instruct in-process, real weights from its pinned package) tells
its context and counts prompt tokens as its usage does, so long recordings' answers are reduced within it
(lalm.longform.reduce); the composed engine reports the same for itself."""

from __future__ import annotations

import asyncio

import pytest

from lalm.config import Settings
from lalm.engines.base import Message, SamplingParams
from lalm.serve.backend import local_engine

pytestmark = pytest.mark.slow


def test_the_composed_model_counts_and_bounds_like_its_llm() -> None:
    composed = local_engine("default", Settings())
    prompts = [[Message("user", "Summarize: the meeting moved to Friday.")],
               [Message("system", "Be brief."), Message("user", "Who spoke first, and why?")]]

    async def go() -> tuple[int | None, int | None, list[tuple[int, int]]]:
        await composed.start()
        try:
            counts = []
            for messages in prompts:
                out = await composed.generate(messages, SamplingParams(temperature=0, max_tokens=4))
                counts.append((await composed.count_tokens(messages), out.usage.prompt_tokens))
            return await composed.context_length(), await composed.llm.context_length(), counts
        finally:
            await composed.close()

    context, llm_context, counts = asyncio.run(go())
    assert context == llm_context == 8192
    assert all(counted == used > 0 for counted, used in counts), counts
