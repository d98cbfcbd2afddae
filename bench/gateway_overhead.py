"""What the gateway costs: the same audio chat load sent straight to a vLLM server and through `lalm serve`
in front of that same server, side by side in one run.

    .venv/bin/python bench/gateway_overhead.py                  # tiny random model, built on the fly
    .venv/bin/python bench/gateway_overhead.py --model DIR      # any Qwen2-Audio checkpoint

One vLLM server process is started on the model, and one gateway (`lalm serve --engine vllm --upstream`)
in front of it. Rounds alternate between the two targets (vLLM, gateway, vLLM, gateway, ...); each round
sends `--requests` chat completions with one audio part from `--concurrency` concurrent clients. Printed:
per-round throughput, latency percentiles and CPU time per request of the gateway and of the vLLM process
tree, then the medians over rounds, the throughput ratio (gateway / vLLM, goal >= 0.97) and the p50
latency the gateway adds. Where the gateway and vLLM share a few CPU cores (and the load generator too),
the gateway's CPU per request is taken from vLLM's; the CPU columns show how much.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import start_gateway, start_vllm  # noqa: E402
from lalm.synth import espeak  # noqa: E402


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="Qwen2-Audio checkpoint folder (default: a tiny random one)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per target")
    ap.add_argument("--audio-seconds", type=float, default=4.0)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lalm-bench-"))
    vllm, model = start_vllm(args.model, work)
    gateway = None
    try:
        gateway = start_gateway(vllm.url, model, work / "gateway.log")
        gw_url = gateway.url
        body = chat_body(args.audio_seconds, args.max_tokens)
        targets = {"vllm": vllm.url, "gateway": gw_url}
        for url in targets.values():  # warm up both paths
            asyncio.run(run_round(url, body, 2 * args.concurrency, args.concurrency))
        results: dict[str, list[tuple[float, ...]]] = {k: [] for k in targets}
        print(f"{args.rounds} rounds x {args.requests} requests, {args.concurrency} clients, "
              f"{args.audio_seconds:g} s audio, {args.max_tokens} tokens; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"{'round':>5} {'target':>8} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'gw CPU ms/req':>14} "
              f"{'vLLM CPU ms/req':>16}")
        for r in range(args.rounds):
            for name, url in targets.items():
                gw0, v0 = cpu_seconds(gateway.pid), cpu_seconds(vllm.pid)
                rps, lat = asyncio.run(run_round(url, body, args.requests, args.concurrency))
                gw_cpu = (cpu_seconds(gateway.pid) - gw0) / args.requests * 1000
                v_cpu = (cpu_seconds(vllm.pid) - v0) / args.requests * 1000
                p50, p90 = np.percentile(lat, 50) * 1000, np.percentile(lat, 90) * 1000
                results[name].append((rps, p50, p90, gw_cpu, v_cpu))
                print(f"{r:>5} {name:>8} {rps:8.1f} {p50:8.1f} {p90:8.1f} {gw_cpu:14.1f} {v_cpu:16.1f}", flush=True)
        med = {k: [statistics.median(x[i] for x in v) for i in range(5)] for k, v in results.items()}
        ratio = med["gateway"][0] / med["vllm"][0]
        print(f"\nmedian   vLLM: {med['vllm'][0]:.1f} req/s, p50 {med['vllm'][1]:.1f} ms, p90 {med['vllm'][2]:.1f} ms")
        print(f"median gateway: {med['gateway'][0]:.1f} req/s, p50 {med['gateway'][1]:.1f} ms, "
              f"p90 {med['gateway'][2]:.1f} ms")
        print(f"throughput ratio (gateway / vLLM): {ratio:.3f}  (goal >= 0.97)")
        print(f"added p50 latency: {med['gateway'][1] - med['vllm'][1]:+.1f} ms")
        print(f"gateway CPU per request: {med['gateway'][3]:.1f} ms (vLLM's own: {med['vllm'][4]:.1f} ms per request "
              "when called directly)")
    finally:
        if gateway is not None:
            gateway.stop(60)
        vllm.stop()


if __name__ == "__main__":
    main()
