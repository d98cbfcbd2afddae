"""Benchmark: the transformers engine serving 8 concurrent requests, batched, against the same 8 requests one
by one, in the same run on the same engine. Goal: throughput ratio >= 3x.

    .venv/bin/python bench/hf_batching.py                 # both shapes
    .venv/bin/python bench/hf_batching.py --shape small   # real default-model shapes, random weights
    .venv/bin/python bench/hf_batching.py --quick         # tiny shape, 2 requests, 8 tokens, one round

Each request carries 5 s of audio and asks for --max-tokens (64) greedy tokens (no early stop), so both modes
do the same work; medians over --repeats rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quick import parse_args  # noqa: E402
from lalm.engines.base import AudioPart, Message, SamplingParams  # noqa: E402
from lalm.engines.hf import HFEngine  # noqa: E402
from lalm.modeling.tiny import make_tiny  # noqa: E402


def _requests(n: int) -> list[list[Message]]:
    rng = np.random.default_rng(0)
    return [[Message("user", [AudioPart((0.1 * rng.standard_normal(16000 * 5)).astype(np.float32)),
                              f"Describe clip {i}."])] for i in range(n)]


async def _one_by_one(engine: HFEngine, reqs: list[list[Message]], params: SamplingParams) -> tuple[float, int]:
    t = time.perf_counter()
    outs = [await engine.generate(r, params) for r in reqs]
    return time.perf_counter() - t, sum(o.usage.completion_tokens for o in outs)


async def _batched(engine: HFEngine, reqs: list[list[Message]], params: SamplingParams) -> tuple[float, int]:
    t = time.perf_counter()
    outs = await asyncio.gather(*(engine.generate(r, params) for r in reqs))
    return time.perf_counter() - t, sum(o.usage.completion_tokens for o in outs)


async def bench(model: Path, n: int, repeats: int, max_tokens: int = 64) -> dict[str, float]:
    params = SamplingParams(temperature=0, max_tokens=max_tokens, stop=())
    engine = HFEngine(model, max_batch_size=n)
    await engine.start()
    reqs = _requests(n)
    await engine.generate(reqs[0], params)  # warm-up
    seq, bat = [], []
    for _ in range(repeats):
        seq.append(await _one_by_one(engine, reqs, params))
        bat.append(await _batched(engine, reqs, params))
    await engine.close()
    assert {t for _, t in seq} == {t for _, t in bat}, "both modes must generate the same tokens"
    s, b = statistics.median(x for x, _ in seq), statistics.median(x for x, _ in bat)
    return {"one_by_one_s": s, "batched_s": b, "tokens": seq[0][1], "ratio": s / b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=["tiny", "small", "both"], default="both")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64, help="greedy tokens per request (no early stop)")
    args = parse_args(ap, {"shape": "tiny", "requests": 2, "repeats": 1, "max_tokens": 8})
    shapes = ["tiny", "small"] if args.shape == "both" else [args.shape]
    print(f"{'shape':6} {'one by one (s)':>15} {'batched (s)':>12} {'tokens':>7} {'req/s 1x1':>10} "
          f"{'req/s batch':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            model = make_tiny(Path(tmp) / shape, shape=shape)
            r = asyncio.run(bench(model, args.requests, args.repeats, args.max_tokens))
            print(f"{shape:6} {r['one_by_one_s']:15.2f} {r['batched_s']:12.2f} {r['tokens']:7d} "
                  f"{args.requests / r['one_by_one_s']:10.2f} {args.requests / r['batched_s']:12.2f} "
                  f"{r['ratio']:5.2f}x")


if __name__ == "__main__":
    main()
