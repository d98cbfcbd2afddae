"""`lalm serve --workers 2` as real processes on a loopback port, over the session's vLLM server: the same
answers as one worker (chat, streamed chat, transcriptions), both workers serving, and /metrics on any
worker counting every request of all of them (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import concurrent.futures
import re
import time
from pathlib import Path

import httpx
import psutil
import pytest
from media import encode
from prometheus_client.multiprocess import MultiProcessCollector
from serve_support import input_audio, start_gateway, stop_gateway, user

from lalm.config import Settings
from lalm.errors import LalmError
from lalm.serve.workers import serve_workers

CHAT, TRANSCRIPTIONS = "/v1/chat/completions", "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def gateway_workers(vllm_server, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("gw-workers") / "serve.log"
    gw = start_gateway(["--engine", "vllm", "--upstream", vllm_server.url, "--model", str(tiny_model),
                        "--served-model-name", "tiny", "--workers", "2"], log)
    yield gw
    assert stop_gateway(gw) == 0, gw.log_tail()


def _workers(gw) -> list[psutil.Process]:
    """The worker processes (uvicorn starts them with multiprocessing's spawn)."""
    return [p for p in psutil.Process(gw.pid).children() if "spawn_main" in " ".join(p.cmdline())]


def _answered_by_each_worker(gw, route: str) -> list[float]:
    """200 answers on `route` per worker, read from that worker's own file in the shared metrics folder."""
    counts = []
    for worker in _workers(gw):
        folder = Path(worker.environ()["PROMETHEUS_MULTIPROC_DIR"])
        files = [str(f) for f in folder.glob(f"counter_{worker.pid}.db")]
        samples = [s for m in MultiProcessCollector.merge(files, accumulate=True) for s in m.samples]
        counts.append(sum(s.value for s in samples if s.name == "lalm_requests_total"
                          and s.labels["route"] == route and s.labels["status"] == "200"))
    return counts


def _settled(read, done, timeout: float = 30.0):
    """`read()` once `done` holds for it, or as it is after `timeout` seconds: a request is counted just after
    its response was sent, so the client may see the answer a moment before the count."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value


def _total(metrics: str, route: str) -> float:
    pattern = rf'^lalm_requests_total{{method="POST",route="{re.escape(route)}",status="200"}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, re.MULTILINE))


def test_two_workers_answer_like_one_and_count_every_request(gateway_workers, gateway_vllm_process, speech):
    assert len(_workers(gateway_workers)) == 2
    one, two = gateway_vllm_process.client(), gateway_workers.client()
    kw = {"model": "tiny", "messages": [user(input_audio(speech), "What is said?")], "max_tokens": 12,
          "temperature": 0}
    whole = two.chat.completions.create(**kw)
    assert whole.choices[0].message.content == one.chat.completions.create(**kw).choices[0].message.content
    chunks = list(two.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    wav = encode(speech, "wav")
    text = two.audio.transcriptions.create(model="tiny", file=("a.wav", wav), temperature=0).text
    assert text == one.audio.transcriptions.create(model="tiny", file=("a.wav", wav), temperature=0).text
    events = list(two.audio.transcriptions.create(model="tiny", file=("a.wav", wav), temperature=0, stream=True))
    assert events[-1].type == "transcript.text.done" and events[-1].text == text
    chats, transcriptions = 2, 2

    def post(_: int) -> str:  # a connection of its own each: the kernel hands it to either worker
        resp = httpx.post(f"{gateway_workers.url}{CHAT}", json=kw, timeout=300)
        resp.raise_for_status()
        return resp.json()["choices"][0]["message"]["content"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(6):  # until both workers have answered chat requests
            assert set(pool.map(post, range(8))) == {whole.choices[0].message.content}
            chats += 8
            per_worker = _settled(lambda: _answered_by_each_worker(gateway_workers, CHAT),
                                  lambda counts, n=chats: sum(counts) == n)
            if all(per_worker):
                break
    assert all(per_worker) and sum(per_worker) == chats, per_worker
    for _ in range(4):  # whichever worker answers /metrics gives the totals of both
        metrics = httpx.get(f"{gateway_workers.url}/metrics").text
        assert _total(metrics, CHAT) == chats and _total(metrics, TRANSCRIPTIONS) == transcriptions

def test_workers_refuse_the_hf_engine():
    with pytest.raises(LalmError, match="vLLM engine"):
        serve_workers(Settings(engine="hf", workers=2), "warning")
