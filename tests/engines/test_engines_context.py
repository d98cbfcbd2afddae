"""What the engines tell a caller that fits a text prompt in the model's context (Engine.context_length and
Engine.count_tokens, used by lalm.longform.reduce): the transformers engine on the tiny checkpoint and the
vLLM engine on the session's real vLLM server (max_model_len 4096) report the context, and count exactly the
prompt tokens a call's usage then reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lalm.engines.base import Engine, Message, SamplingParams
from lalm.engines.hf import HFEngine
from lalm.engines.vllm import VLLMEngine
from lalm.tasks import get_task

CASES = [
    [Message("user", "Say hello.")],
    [Message("system", "You answer briefly."), Message("user", "Part 1: <|im_start|> ünïcode \ufffd\ufffd")],
    [Message("user", get_task("summarize").reduction(["A talk on rivers.", "Questions on dams."]))],
]


async def _counts_and_usage(engine: Engine) -> list[tuple[int, int]]:
    out = []
    for messages in CASES:
        done = await engine.generate(messages, SamplingParams(temperature=0, max_tokens=2))
        out.append((await engine.count_tokens(messages), done.usage.prompt_tokens))
    return out


def test_hf_engine_tells_its_context_and_counts_prompts_exactly(tiny_model: Path) -> None:
    async def go() -> tuple[int, int, list[tuple[int, int]]]:
        default, small = HFEngine(tiny_model), HFEngine(tiny_model, max_model_len=1000)
        try:
            return await default.context_length(), await small.context_length(), await _counts_and_usage(small)
        finally:
            await default.close()
            await small.close()

    default, small, pairs = asyncio.run(go())
    assert default == 4096  # the tiny checkpoint's max_position_embeddings
    assert small == 1000
    for counted, used in pairs:
        assert counted == used > 5


@pytest.mark.vllm
def test_vllm_engine_tells_its_context_and_counts_prompts_exactly(vllm_server) -> None:
    async def go() -> tuple[int | None, list[tuple[int, int]]]:
        engine = VLLMEngine("tiny", upstreams=[vllm_server.url])
        try:
            return await engine.context_length(), await _counts_and_usage(engine)
        finally:
            await engine.close()

    context, pairs = asyncio.run(go())
    assert context == 4096  # the server's --max-model-len
    for counted, used in pairs:
        assert counted == used > 5
