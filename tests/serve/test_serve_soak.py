"""A short soak (bench/soak.py's watch, bench/load.py's driver): `lalm serve --engine vllm` with its own vLLM
child gets rounds of mixed load (chat with audio, chat streams, short, streamed and 2-minute transcriptions),
a bounded number of requests each. Every request is served; the gateway's resident memory does not keep
growing from round to round, its open file descriptors come back to where they were, and after its shutdown
no process of its tree or of its vLLM process group is left. The figures are printed; bench/soak.py runs the
long version (10 minutes) and the kill under load is tests/serve/test_serve_vllm_kill.py's.

This starts a vLLM server of its own (the gateway's child), about a minute."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from serve_support import REPO, start_gateway, stop_gateway

sys.path.insert(0, str(REPO))
from bench.load import run_load
from bench.soak import GatewayWatch, vllm_child

pytestmark = pytest.mark.vllm

ROUNDS = 4  # the first is the warm-up
REQUESTS = 15  # per round; with the schedule's weights this includes one 2-minute transcription
# Growth of the gateway's RSS from the end of the warm-up round to the end of the last one. Measured on 2
# busy cores (4 rounds of 15): 280, 304, 318, 317, 333 MiB at start and after each round, +9.5 %, peak 348
# MiB. No leak behind it: with the gateway in-process (bench/gateway_memory.py) live Python memory stays
# at 1.0 MiB and the objects the collector tracks at 532k from round to round, and RSS plateaus and falls
# back. The allocator keeps freed blocks (most likely glibc's per-thread arenas of the decode threads; not
# measured apart), so RSS after a round can reach that round's peak (+14 % here) and moves with how many
# 2-minute recordings happened to be decoded at once. 35 % is well over twice the measured
# growth; it catches a leak of about 2 MiB or more per request (45 requests after the warm-up),
# not a small one: bench/soak.py's 10 minutes and its 5 % goal are for those.
RSS_GROWTH_BOUND = 0.35
FD_MARGIN = 8  # a few descriptors may be open by chance (a log rotation, a vLLM health probe in flight)


@pytest.fixture(scope="module")
def managed(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gw-soak")
    gw = start_gateway(["--engine", "vllm", "--model", str(tiny_model), "--served-model-name", "tiny",
                        "--dtype", "float32", "--max-model-len", "4096"], folder / "serve.log",
                       env={"LALM_VLLM_LOG": str(folder / "vllm.log"), "LALM_DEFAULT_MAX_TOKENS": "8",
                            "LALM_WINDOW_MAX_TOKENS": "8"}, timeout=600)
    yield gw
    stop_gateway(gw)


def test_rounds_of_load_leave_memory_fds_and_no_processes_behind(managed):
    watch = GatewayWatch(managed.proc.pid)
    start = watch.settle(0)
    for _ in range(ROUNDS):
        result = asyncio.run(run_load(managed.url, clients=8, requests=REQUESTS, max_seconds=600,
                                      on_tick=watch.tick))
        assert result.errors == []
        assert result.served == REQUESTS
        watch.settle()
    rss = [round(s.rss_mb) for s in watch.samples]
    fds = [s.fds for s in watch.samples]
    print(f"gateway RSS (MiB) at start and after each round: {rss}, peak {watch.peak_mb:.0f}; fds: {fds}")
    warm, end = watch.samples[1], watch.samples[-1]
    assert end.rss_mb <= warm.rss_mb * (1 + RSS_GROWTH_BOUND), rss
    assert end.fds <= start.fds + FD_MARGIN, fds

    vllm = vllm_child(managed.proc.pid)
    assert vllm.pid in watch.tree.seen and watch.tree.groups() == {vllm.pid}
    stop_gateway(managed)
    left = []
    for _ in range(60):  # the gateway waits for vLLM's exit; its grandchildren may take a moment longer
        left = watch.tree.leftovers()
        if not left:
            break
        time.sleep(1)
    assert left == []
