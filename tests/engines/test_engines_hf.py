"""The transformers engine: batching never changes what a request gets; sampling, stop strings, token
budgets, streaming and limits behave like the OpenAI API says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from lalm.engines.base import AudioPart, EngineError, Message, SamplingParams
from lalm.engines.hf import HFEngine

GREEDY = SamplingParams(temperature=0, max_tokens=24)


@pytest.fixture(scope="module")
def engine(tiny_model: Path):
    eng = HFEngine(tiny_model, max_batch_size=8, batch_wait_ms=20)
    eng.load()
    yield eng
    asyncio.run(eng.close())


def _noise(seconds: float, seed: int) -> AudioPart:
    rng = np.random.default_rng(seed)
    return AudioPart((0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32))


def _requests() -> list[list[Message]]:
    """Eight different requests: audio of different lengths, two audios, multi-turn, text only."""
    reqs = [[Message("user", [_noise(1 + 3 * i, i), f"Describe sound number {i}."])] for i in range(5)]
    reqs.append([Message("user", [_noise(2, 10), _noise(4, 11), "Compare the two."])])
    reqs.append([
        Message("system", "You are terse."),
        Message("user", [_noise(3, 12), "What is it?"]),
        Message("assistant", "A noise."),
        Message("user", "Are you sure?"),
    ])
    reqs.append([Message("user", "Hello, who are you?")])
    return reqs


def test_batched_greedy_equals_one_by_one(engine: HFEngine) -> None:
    async def go():
        alone = [await engine.generate(r, GREEDY) for r in _requests()]
        together = await asyncio.gather(*(engine.generate(r, GREEDY) for r in _requests()))
        return alone, together

    alone, together = asyncio.run(go())
    for a, b in zip(alone, together, strict=True):
        assert a.token_ids == b.token_ids and a.text == b.text
        assert a.usage == b.usage and a.usage.completion_tokens == len(a.token_ids)
    assert len({a.token_ids for a in alone}) > 1, "different requests should not all give the same output"


def test_requests_joining_a_running_batch(engine: HFEngine) -> None:
    """Continuous batching: a request admitted while others decode gets exactly what it gets alone."""
    reqs = _requests()

    async def go():
        first = [asyncio.ensure_future(engine.generate(r, SamplingParams(temperature=0, max_tokens=64)))
                 for r in reqs[:3]]
        await asyncio.sleep(0.15)
        late = await asyncio.gather(*(engine.generate(r, GREEDY) for r in reqs[3:]))
        return await asyncio.gather(*first), late

    early, late = asyncio.run(go())
    alone = [asyncio.run(engine.generate(r, GREEDY)) for r in reqs[3:]]
    assert [c.token_ids for c in late] == [c.token_ids for c in alone]
    assert all(c.finish_reason in ("stop", "length") for c in early)


def test_seeded_sampling_is_reproducible_and_seeds_differ(engine: HFEngine) -> None:
    req = _requests()[0]

    def run(seed: int):
        return asyncio.run(engine.generate(req, SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, seed=seed)))

    assert run(1).token_ids == run(1).token_ids
    assert len({run(s).token_ids for s in range(2, 6)}) > 1


def test_max_tokens_and_length_finish(engine: HFEngine) -> None:
    c = asyncio.run(engine.generate(_requests()[1], SamplingParams(temperature=0, max_tokens=5)))
    if c.finish_reason == "length":
        assert c.usage.completion_tokens == 5
    else:
        assert c.usage.completion_tokens <= 5


def test_stop_string_cuts_the_text(engine: HFEngine) -> None:
    req = _requests()[0]
    full = asyncio.run(engine.generate(req, GREEDY))
    assert len(full.text) > 6
    stop = full.text[4:6]
    cut = asyncio.run(engine.generate(req, SamplingParams(temperature=0, max_tokens=24, stop=(stop,))))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]


def test_stream_equals_generate(engine: HFEngine) -> None:
    req = _requests()[2]

    async def go():
        return [d async for d in engine.stream(req, GREEDY)]

    deltas = asyncio.run(go())
    whole = asyncio.run(engine.generate(req, GREEDY))
    assert "".join(d.text for d in deltas) == whole.text
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert deltas[-1].finish_reason == whole.finish_reason and deltas[-1].usage == whole.usage
    assert len(deltas) > 2, "text should arrive in pieces"


def test_audio_longer_than_the_window_is_refused(engine: HFEngine) -> None:
    with pytest.raises(EngineError) as err:
        asyncio.run(engine.generate([Message("user", [_noise(31, 0), "hi"])], GREEDY))
    assert err.value.status == 400 and "30 s" in str(err.value)


def test_prompt_over_context_is_refused(tiny_model: Path) -> None:
    small = HFEngine(tiny_model, max_model_len=64)
    with pytest.raises(EngineError) as err:
        asyncio.run(small.generate([Message("user", [_noise(5, 0), "hi"])], GREEDY))
    assert err.value.status == 400 and err.value.code == "context_length_exceeded"
    asyncio.run(small.close())
