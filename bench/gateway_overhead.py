"""What the gateway costs: the same audio chat load sent straight to a vLLM server and through `lalm serve`
in front of that same server, side by side in one run.

    .venv/bin/python bench/gateway_overhead.py                  # tiny random model, built on the fly
    .venv/bin/python bench/gateway_overhead.py --pin            # gateway alone on CPU 1, vLLM + load on CPU 0
    .venv/bin/python bench/gateway_overhead.py --workers 2      # `lalm serve --workers 2`
    .venv/bin/python bench/gateway_overhead.py --model DIR      # any Qwen2-Audio checkpoint
    .venv/bin/python bench/gateway_overhead.py --quick --model DIR --upstream URL  # seconds, a running vLLM

One vLLM server process is started on the model, and one gateway (`lalm serve --engine vllm --upstream`)
in front of it. Rounds alternate between the two targets (vLLM, gateway, vLLM, gateway, ...); each round
sends `--requests` chat completions with one audio part from `--concurrency` concurrent clients.

Printed per round: throughput, latency percentiles, the CPU time per request of the gateway, of the vLLM
process tree and of this load generator, and what vLLM did per request (engine steps, from its /metrics:
fewer steps per request = more batching; prompt tokens, which must be the same both ways). Then the medians
over rounds with their spread (min-max), the throughput ratio gateway / vLLM (goal >= 0.97) both as the ratio
of medians and as the median of the per-round-pair ratios, and the p50 latency the gateway adds.

`--pin` puts the gateway on `--gateway-cpus`, the vLLM process tree on `--vllm-cpus` and this load generator
on `--load-cpus` (`taskset -a`, every thread), so the gateway's own cost is measured apart from contention
with vLLM. By default the load shares vLLM's CPUs: then both targets see the same load beside vLLM, and the
gateway's core holds the gateway alone (`--load-cpus 1` puts the load beside the gateway instead, which
charges the gateway path alone with the load's CPU). Unpinned, all of them share every core (and whatever
else runs on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quick import parse_args  # noqa: E402
from bench.servers import start_gateway, start_vllm  # noqa: E402
from lalm.synth import espeak  # noqa: E402

COLUMNS = ("req/s", "p50 ms", "p90 ms", "gw CPU ms/req", "vLLM CPU ms/req", "load CPU ms/req", "vLLM steps/req",
           "prompt tok/req")


def chat_body(seconds: float, max_tokens: int) -> bytes:
    """One audio chat request: `seconds` of speech as 16-bit WAV (what clients send), greedy."""
    speech = espeak("The meeting starts at nine thirty on Monday, and the report is due on Friday. " * 3)
    speech = np.tile(speech, int(np.ceil(seconds * 16000 / len(speech))))[: int(seconds * 16000)]
    pcm16 = (np.clip(speech, -1, 1) * 32767).astype("<i2")
    wav = _wav16(pcm16)
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}
    return json.dumps({"model": "tiny", "temperature": 0, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": [part, {"type": "text", "text": "What is said?"}]}]
                       }).encode()


def _wav16(pcm16: np.ndarray) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm16, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


async def run_round(url: str, body: bytes, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Throughput (requests/s) and per-request latencies of `requests` posts from `concurrency` clients."""
    latencies: list[float] = []
    todo = iter(range(requests))
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            for _ in todo:
                t = time.perf_counter()
                resp = await client.post(f"{url}/v1/chat/completions", content=body, headers=headers)
                resp.raise_for_status()
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return requests / wall, latencies


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants."""
    total = 0.0
    for p in tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def pin(pid: int, cpus: str, *, children: bool = True) -> None:
    """Every thread of a process (and its descendants) onto `cpus` (taskset's list syntax: `0`, `0,1`)."""
    for p in tree(pid) if children else [psutil.Process(pid)]:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(p.pid)], check=True, stdout=subprocess.DEVNULL)


def vllm_counters(url: str) -> tuple[float, float, float]:
    """vLLM's finished requests, engine steps (iterations) and prompt tokens so far, from its /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text

    def total(name: str) -> float:
        return sum(float(m) for m in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE))

    return (total("vllm:request_prompt_tokens_count"), total("vllm:iteration_tokens_total_count"),
            total("vllm:request_prompt_tokens_sum"))


def spread(values: list[float]) -> str:
    """`median (min-max)`."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="Qwen2-Audio checkpoint folder (default: a tiny random one)")
    ap.add_argument("--upstream", help="a vLLM server already running (serving --model as 'tiny') instead of one "
                                       "started here")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per target")
    ap.add_argument("--audio-seconds", type=float, default=4.0)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="gateway worker processes (lalm serve --workers)")
    ap.add_argument("--pin", action="store_true", help="pin vLLM and the gateway (+ load) to separate CPUs")
    ap.add_argument("--vllm-cpus", default="0", help="taskset CPU list of the vLLM process tree with --pin")
    ap.add_argument("--gateway-cpus", default="1", help="taskset CPU list of the gateway with --pin")
    ap.add_argument("--load-cpus", help="taskset CPU list of this load generator with --pin (default: vLLM's)")
    args = parse_args(ap, {"requests": 8, "concurrency": 2, "rounds": 1, "audio_seconds": 1.0, "max_tokens": 4})
    if args.pin and args.upstream:
        ap.error("--pin moves the vLLM server's processes: it needs one started here, not --upstream")

    work = Path(tempfile.mkdtemp(prefix="lalm-bench-"))
    vllm, model = start_vllm(args.model, work, args.upstream)
    gateway = None
    try:
        gateway = start_gateway(vllm.url, model, work / "gateway.log",
                                *(["--workers", str(args.workers)] if args.workers > 1 else []))
        if args.pin:
            pin(vllm.pid, args.vllm_cpus)
            pin(gateway.pid, args.gateway_cpus)
            pin(os.getpid(), args.load_cpus or args.vllm_cpus, children=False)
        body = chat_body(args.audio_seconds, args.max_tokens)
        targets = {"vllm": vllm.url, "gateway": gateway.url}
        for url in targets.values():  # warm up both paths
            asyncio.run(run_round(url, body, 2 * args.concurrency, args.concurrency))
        results: dict[str, list[tuple[float, ...]]] = {k: [] for k in targets}
        placement = (f"pinned: vLLM on CPU {args.vllm_cpus}, gateway on CPU {args.gateway_cpus}, load on CPU "
                     f"{args.load_cpus or args.vllm_cpus}" if args.pin else "unpinned")
        print(f"{args.rounds} rounds x {args.requests} requests, {args.concurrency} clients, "
              f"{args.audio_seconds:g} s audio, {args.max_tokens} tokens, {args.workers} gateway worker(s); "
              f"{os.cpu_count()} CPUs, {placement}; load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"{'round':>5} {'target':>8} " + " ".join(f"{c:>{max(8, len(c))}}" for c in COLUMNS))
        me = psutil.Process()
        for r in range(args.rounds):
            for name, url in targets.items():
                gw0, v0, me0 = cpu_seconds(gateway.pid), cpu_seconds(vllm.pid), sum(me.cpu_times()[:2])
                n0, steps0, tok0 = vllm_counters(vllm.url)
                rps, lat = asyncio.run(run_round(url, body, args.requests, args.concurrency))
                n1, steps1, tok1 = vllm_counters(vllm.url)
                row = (rps, np.percentile(lat, 50) * 1000, np.percentile(lat, 90) * 1000,
                       (cpu_seconds(gateway.pid) - gw0) / args.requests * 1000,
                       (cpu_seconds(vllm.pid) - v0) / args.requests * 1000,
                       (sum(me.cpu_times()[:2]) - me0) / args.requests * 1000,
                       (steps1 - steps0) / max(n1 - n0, 1), (tok1 - tok0) / max(n1 - n0, 1))
                results[name].append(row)
                print(f"{r:>5} {name:>8} " + " ".join(f"{v:>{max(8, len(c))}.1f}"
                                                      for c, v in zip(COLUMNS, row, strict=True)), flush=True)
        col = {k: list(zip(*v, strict=True)) for k, v in results.items()}
        ratios = [g[0] / v[0] for g, v in zip(results["gateway"], results["vllm"], strict=True)]
        print("\nmedians (min-max) over rounds")
        for k in targets:
            print(f"  {k:>8}: " + ", ".join(f"{c} {spread(list(col[k][i]))}" for i, c in enumerate(COLUMNS)
                                           if not (k == "vllm" and c.startswith("gw"))))
        ratio = statistics.median(col["gateway"][0]) / statistics.median(col["vllm"][0])
        print(f"throughput ratio (gateway / vLLM): {ratio:.3f} of medians; per round pair {spread(ratios)}  "
              "(goal >= 0.97)")
        print(f"added p50 latency: {statistics.median(col['gateway'][1]) - statistics.median(col['vllm'][1]):+.1f} ms")
        print(f"gateway CPU per request: {spread(list(col['gateway'][3]))} ms  (goal <= 2 ms)")
        print(f"vLLM CPU per request: {spread(list(col['vllm'][4]))} ms direct, "
              f"{spread(list(col['gateway'][4]))} ms through the gateway")
    finally:
        if gateway is not None:
            gateway.stop(60)
        vllm.stop()


if __name__ == "__main__":
    main()
