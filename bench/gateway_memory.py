"""Where the gateway's memory goes under load: the gateway runs in this process (uvicorn in a thread, in front
of a vLLM server child on the tiny model), bench/load.py's driver sends rounds of mixed load, and after each
round, with the garbage collected, this prints the process's RSS, the bytes Python's allocator holds for live
objects (tracemalloc), the number of objects the collector tracks, and the lines that gained the most live
memory since the end of the warm-up round.

    .venv/bin/python bench/gateway_memory.py --rounds 6 --round-seconds 30
    .venv/bin/python bench/gateway_memory.py --quick --model DIR --upstream URL   # seconds, a running vLLM

Reading it: a leak is live Python memory (tracemalloc) or tracked objects growing round after round; memory
that glibc's allocator keeps for reuse shows as RSS above tracemalloc's figure that stops growing once the
rounds' peaks are alike. The tracing slows the gateway a few times over: latencies here mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import run_load  # noqa: E402
from bench.quick import parse_args  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="Rounds of load; the first is the warm-up.")
    parser.add_argument("--round-seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--top", type=int, default=8, help="Lines of the allocation diff to print.")
    parser.add_argument("--model", help="Checkpoint folder (default: a tiny random one built here).")
    parser.add_argument("--upstream", help="A vLLM server already running (serving --model as 'tiny') instead of "
                                           "one started here.")
    args = parse_args(parser, {"rounds": 2, "round_seconds": 3.0, "clients": 4, "top": 3})

    import httpx
    import uvicorn

    from bench.servers import start_vllm
    from lalm.config import Settings
    from lalm.engines.vllm_process import free_port
    from lalm.serve.app import create_app

    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        vllm, model = start_vllm(args.model, Path(tmp), args.upstream)
        try:
            port = free_port()
            settings = Settings(engine="vllm", upstreams=[vllm.url], model=model, served_model_name="tiny",
                                host="127.0.0.1", port=port, default_max_tokens=8, window_max_tokens=8)
            server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                                   log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            tracemalloc.start(8)
            base = None
            for i in range(args.rounds):
                result = asyncio.run(run_load(url, clients=args.clients, requests=10**9,
                                              max_seconds=args.round_seconds))
                time.sleep(2)
                gc.collect()
                snap = tracemalloc.take_snapshot()
                traced, peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                print(f"round {i + 1}: {result.served} served, {len(result.errors)} errors; RSS "
                      f"{me.memory_info().rss / 2**20:.0f} MiB; live Python memory {traced / 2**20:.1f} MiB "
                      f"(peak {peak / 2**20:.0f}); gc-tracked objects {len(gc.get_objects())}", flush=True)
                if base is None:
                    base = snap
                    continue
                for stat in snap.compare_to(base, "lineno")[: args.top]:
                    print(f"    {stat}")
            server.should_exit = True
            thread.join(30)
        finally:
            vllm.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
