"""A short load run (bench/load.py's driver): 200 concurrent clients on 127.0.0.1 mix chat with audio, chat
streams, short, streamed and 2-minute transcriptions against a gateway whose concurrency cap is far below
200. Every answer is a 200 (a stream without an error event) or a 429 with Retry-After (the client then
retries), every request is served in the end, and the gateway is healthy afterwards. Latency and memory
figures are printed, not asserted (they are bench/load.py's job)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from serve_support import REPO, start_gateway, stop_gateway

sys.path.insert(0, str(REPO))
from bench.load import KINDS, RSSWatch, report, run_load


@pytest.fixture(scope="module")
def capped(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    gw = start_gateway(["--engine", "hf", "--model", str(tiny_model), "--served-model-name", "tiny",
                        "--max-concurrency", "16"], tmp_path_factory.mktemp("gw-load") / "serve.log",
                       env={"LALM_DEFAULT_MAX_TOKENS": "8", "LALM_WINDOW_MAX_TOKENS": "8"})
    yield gw
    stop_gateway(gw)


def test_200_clients_get_answers_or_429_with_retry_after(capped):
    rss = RSSWatch(capped.proc.pid)
    result = asyncio.run(run_load(capped.url, clients=200, requests=120, max_seconds=900, on_tick=rss.tick))
    print(report(result, rss))
    assert result.errors == []
    assert result.served == 120  # every request served in the end, after its 429s
    assert sum(c[429] for c in result.statuses.values()) > 0  # 200 clients against a cap of 16
    for kind in KINDS:
        assert result.statuses[kind][200] > 0, (kind, result.statuses[kind])
        assert set(result.statuses[kind]) <= {200, 429}, (kind, result.statuses[kind])
    assert capped.healthy()
