"""Load: many concurrent clients on 127.0.0.1 mixing chat with audio, short and 2-minute transcriptions and
streams against one gateway, bounded in requests and time.

    .venv/bin/python bench/load.py                          # 200 clients, 1000 requests, hf engine, tiny model
    .venv/bin/python bench/load.py --engine vllm            # a vLLM server behind the gateway
    .venv/bin/python bench/load.py --clients 200 --requests 2000 --max-seconds 600
    .venv/bin/python bench/load.py --quick                  # 4 clients, 13 requests (every kind once or more)

Every response must be a 200 (a stream: ending without an error event) or a 429 carrying Retry-After
(the gateway refuses work above its concurrency cap at once, as it should); anything else is an error. A
client refused with 429 waits as Retry-After says and sends the same request again, so `--requests`
counts requests served. Printed: responses by kind and status (429s are the refused attempts), errors,
latency p50/p99 per kind (seconds, of the attempt that was served), and the gateway's resident memory
(RSS) before, at peak and after.

The driver is a bounded asyncio loop on aiohttp (what lalm's vLLM client uses) rather than locust: the
clients are coroutines sharing one schedule, so a run is a fixed number of requests and ends by itself, and
no gevent monkey-patching or extra web UI is needed on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.quick import parse_args  # noqa: E402
from lalm.audio import encode_wav  # noqa: E402

KINDS = ("chat", "chat_stream", "transcribe_short", "transcribe_stream", "transcribe_2min")
# How often each kind comes up in the schedule (2-minute transcriptions are the heavy few).
WEIGHTS = {"chat": 4, "chat_stream": 3, "transcribe_short": 3, "transcribe_stream": 2, "transcribe_2min": 1}


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    """Bursts of tone and noise with pauses: audio the window cutter splits as it splits speech."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    envelope = (np.sin(2 * np.pi * 0.4 * t) > -0.3).astype(np.float32)
    return (envelope * (0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(n))).astype(np.float32)


@dataclass
class Payloads:
    """Request bodies made once and shared by every client."""

    chat_json: bytes
    chat_stream_json: bytes
    short_wav: bytes
    long_wav: bytes

    @classmethod
    def make(cls, model: str) -> Payloads:
        audio = base64.b64encode(encode_wav(_speechlike(2.0, 1))).decode()
        part = {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}
        messages = [{"role": "user", "content": [part, {"type": "text", "text": "What do you hear?"}]}]
        chat = {"model": model, "messages": messages, "max_tokens": 8, "temperature": 0}
        return cls(json.dumps(chat).encode(), json.dumps({**chat, "stream": True}).encode(),
                   encode_wav(_speechlike(3.0, 2)), encode_wav(_speechlike(120.0, 3)))


@dataclass
class LoadResult:
    """Outcome of a run: per kind, the statuses, the latencies of the 200s (s), and what went wrong."""

    statuses: dict[str, Counter] = field(default_factory=lambda: {k: Counter() for k in KINDS})
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        """Responses received, refused attempts (429) included."""
        return sum(sum(c.values()) for c in self.statuses.values())

    @property
    def served(self) -> int:
        return sum(c[200] for c in self.statuses.values())

    def percentile(self, kind: str | None, q: float) -> float:
        values = sorted(v for k, vs in self.latencies.items() if kind in (None, k) for v in vs)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]


async def _one(session: aiohttp.ClientSession, url: str, kind: str, p: Payloads, model: str,
               headers: dict[str, str]) -> tuple[int, str | None, float]:
    """Send one request of `kind`; return its status, an error (None if fine) and, for a 429, the seconds
    its Retry-After asks to wait."""
    if kind in ("chat", "chat_stream"):
        body = p.chat_stream_json if kind == "chat_stream" else p.chat_json
        request = session.post(f"{url}/v1/chat/completions", data=body,
                               headers={**headers, "Content-Type": "application/json"})
    else:
        form = aiohttp.FormData()
        form.add_field("file", p.long_wav if kind == "transcribe_2min" else p.short_wav, filename="a.wav",
                       content_type="audio/wav")
        form.add_field("model", model)
        if kind == "transcribe_stream":
            form.add_field("stream", "true")
        request = session.post(f"{url}/v1/audio/transcriptions", data=form, headers=headers)
    async with request as resp:
        text = await resp.text()
        if resp.status == 429:
            retry_after = resp.headers.get("Retry-After")
            return 429, None if retry_after else "429 without Retry-After", float(retry_after or 1)
        if resp.status != 200:
            return resp.status, f"{kind}: {resp.status} {text[:200]}", 0.0
        if kind.endswith("stream") and '"error"' in text:
            return 200, f"{kind}: error event in the stream: {text[-300:]}", 0.0
        return 200, None, 0.0


async def run_load(url: str, *, clients: int, requests: int, max_seconds: float, model: str = "tiny",
                   api_key: str | None = None, kinds: tuple[str, ...] = KINDS,
                   on_tick: Callable[[], None] | None = None) -> LoadResult:
    """`clients` concurrent clients get `requests` requests served in all (kinds interleaved by WEIGHTS;
    a 429 is retried after its Retry-After), stopping early once `max_seconds` have passed. `on_tick` is
    called about twice a second (e.g. to sample RSS)."""
    payloads = Payloads.make(model)
    schedule = [k for k in KINDS if k in kinds for _ in range(WEIGHTS[k])]
    result = LoadResult()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    started = time.monotonic()
    next_index = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < requests and time.monotonic() - started < max_seconds:
            kind = schedule[next_index % len(schedule)]
            next_index += 1
            while time.monotonic() - started < max_seconds:
                t0 = time.monotonic()
                try:
                    status, error, wait = await _one(session, url, kind, payloads, model, headers)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, error, wait = 0, f"{kind}: {type(exc).__name__} {exc}", 0.0
                result.statuses[kind][status] += 1
                if error:
                    result.errors.append(error)
                elif status == 200:
                    result.latencies[kind].append(time.monotonic() - t0)
                if status != 429 or error:
                    break
                await asyncio.sleep(wait)

    async def ticker() -> None:
        while True:
            if on_tick is not None:
                on_tick()
            await asyncio.sleep(0.5)

    timeout = aiohttp.ClientTimeout(total=max_seconds + 600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        tick = asyncio.create_task(ticker())
        try:
            await asyncio.gather(*(client(session) for _ in range(clients)))
        finally:
            tick.cancel()
    result.seconds = time.monotonic() - started
    return result


class RSSWatch:
    """Resident memory of a process (and its children) in MiB: before, peak, after."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.lock = threading.Lock()
        self.peak = self.before = self.now()

    def now(self) -> float:
        procs = [self.proc, *self.proc.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 2**20

    def tick(self) -> None:
        self.peak = max(self.peak, self.now())


def report(result: LoadResult, rss: RSSWatch) -> str:
    lines = [f"served {result.served} requests in {result.seconds:.0f} s ({result.sent} responses, 429s included)"]
    for kind in KINDS:
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses[kind].items()))
        lines.append(f"  {kind:18s} {counts or '-':24s} p50 {result.percentile(kind, 0.5):7.2f} s  "
                     f"p99 {result.percentile(kind, 0.99):7.2f} s")
    lines.append(f"  all 200s           p50 {result.percentile(None, 0.5):.2f} s  "
                 f"p99 {result.percentile(None, 0.99):.2f} s")
    lines.append(f"errors (not 200, not 429 with Retry-After): {len(result.errors)}")
    lines += [f"  {e}" for e in result.errors[:10]]
    lines.append(f"gateway RSS: before {rss.before:.0f} MiB, peak {rss.peak:.0f} MiB, after {rss.now():.0f} MiB")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--model", help="Checkpoint folder (default: a tiny random one built here).")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--max-concurrency", type=int, default=64, help="The gateway's cap (429 above it).")
    args = parse_args(parser, {"clients": 4, "requests": sum(WEIGHTS.values()), "max_seconds": 300.0})

    from bench.servers import start_gateway, start_vllm, stop_gateway
    from lalm.modeling.tiny import make_tiny

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        vllm = None
        # short answers: the load is on the gateway's paths, not on generating long texts
        env = {"LALM_DEFAULT_MAX_TOKENS": "8", "LALM_WINDOW_MAX_TOKENS": "8"}
        extra = ["--max-concurrency", str(args.max_concurrency)]
        if args.engine == "vllm":
            vllm, model = start_vllm(args.model, work)
            gateway = start_gateway(vllm.url, model, work / "gateway.log", *extra, env=env)
        else:
            model = args.model or str(make_tiny(work / "tiny"))
            gateway = start_gateway(None, model, work / "gateway.log", *extra, env=env)
        try:
            rss = RSSWatch(gateway.pid)
            result = asyncio.run(run_load(gateway.url, clients=args.clients, requests=args.requests,
                                          max_seconds=args.max_seconds, on_tick=rss.tick))
            print(f"{args.clients} clients, gateway on the {args.engine} engine, concurrency cap "
                  f"{args.max_concurrency}")
            print(report(result, rss))
        finally:
            stop_gateway(gateway)
            if vllm is not None:
                vllm.stop()
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
