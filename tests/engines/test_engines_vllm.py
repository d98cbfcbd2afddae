"""The tiny checkpoint in a real vLLM CPU server: it answers chat completions with audio through the
official openai SDK, renders the same prompt tokens as transformers, and its greedy float32 output equals
the transformers engine's token for token."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from lalm.audio import encode_wav
from lalm.engines.base import AudioPart, Message, SamplingParams
from lalm.engines.hf import HFEngine
from lalm.engines.messages import to_openai_messages
from lalm.engines.vllm import VLLMEngine

pytestmark = pytest.mark.vllm
GREEDY = SamplingParams(temperature=0, max_tokens=32)


def _noise(seconds: float, seed: int) -> AudioPart:
    rng = np.random.default_rng(seed)
    return AudioPart((0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32))


def _cases(speech: np.ndarray) -> dict[str, list[Message]]:
    return {
        "speech": [Message("user", [AudioPart(speech), "Transcribe the audio."])],
        "30 s of audio": [Message("user", [_noise(30, 1), "What do you hear?"])],
        "two audios": [Message("user", [_noise(2, 2), AudioPart(speech), "Which one is speech?"])],
        "multi-turn": [
            Message("system", "You answer briefly."),
            Message("user", [_noise(4, 3), "What is this?"]),
            Message("assistant", "Static."),
            Message("user", "And now in one word?"),
        ],
        "text only": [Message("user", "Say hello.")],
    }


@pytest.fixture(scope="module")
def hf(tiny_model: Path):
    eng = HFEngine(tiny_model)
    eng.load()
    yield eng
    asyncio.run(eng.close())


def test_openai_sdk_chat_with_input_audio(vllm_server, speech: np.ndarray) -> None:
    client = openai.OpenAI(base_url=f"{vllm_server.url}/v1", api_key="unused")
    data = base64.b64encode(encode_wav(speech)).decode()
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}},
            {"type": "text", "text": "What is said?"},
        ]}],
        max_tokens=16, temperature=0,
    )
    assert reply.choices[0].message.content
    # ~25 audio tokens per second of audio, plus the text around them
    assert reply.usage.prompt_tokens > 25 * len(speech) / 16000


def test_vllm_renders_the_same_prompt_tokens(vllm_server, hf: HFEngine, speech: np.ndarray) -> None:
    for name, messages in _cases(speech).items():
        ours, _ = hf._encode_prompt(messages)
        theirs = httpx.post(f"{vllm_server.url}/tokenize", timeout=60, json={
            "model": "tiny", "messages": to_openai_messages(messages), "add_generation_prompt": True,
        }).json()["tokens"]
        assert theirs == ours, name


def test_greedy_output_equals_transformers_token_for_token(vllm_server, hf: HFEngine, speech: np.ndarray) -> None:
    async def go():
        vllm = VLLMEngine("tiny", upstreams=[vllm_server.url], return_token_ids=True)
        try:
            return {name: (await vllm.generate(m, GREEDY), await hf.generate(m, GREEDY))
                    for name, m in _cases(speech).items()}
        finally:
            await vllm.close()

    for name, (theirs, ours) in asyncio.run(go()).items():
        assert len(ours.token_ids) > 0, name
        assert theirs.token_ids == ours.token_ids, name
        # the same tokens, rendered alike; except that random tokens may end in an incomplete UTF-8 sequence,
        # which transformers renders as U+FFFD and vLLM's incremental detokenizer holds back
        assert theirs.text in (ours.text, ours.text.rstrip("\ufffd")), name
        assert theirs.usage.prompt_tokens == ours.usage.prompt_tokens, name
        assert theirs.finish_reason == ours.finish_reason, name


def test_vllm_engine_streams_the_same_text(vllm_server, speech: np.ndarray) -> None:
    async def go():
        vllm = VLLMEngine("tiny", upstreams=[vllm_server.url])
        try:
            messages = _cases(speech)["speech"]
            deltas = [d async for d in vllm.stream(messages, GREEDY)]
            return deltas, await vllm.generate(messages, GREEDY)
        finally:
            await vllm.close()

    deltas, whole = asyncio.run(go())
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].finish_reason == whole.finish_reason
    assert deltas[-1].usage.completion_tokens == whole.usage.completion_tokens
