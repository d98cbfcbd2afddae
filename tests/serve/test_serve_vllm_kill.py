"""`lalm serve --engine vllm` with the vLLM server as the gateway's own child process: when that child is
killed mid-run, requests in flight get a clean 5xx with OpenAI's body (or an error event in a stream),
/health says the engine is down, the supervisor ends what is left of the dead server's process group and
restarts vLLM, and the gateway serves again. A clean shutdown of the gateway stops its vLLM child.

This starts a second vLLM server in the session (the gateway's own), about a minute."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import httpx
import openai
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_support import input_audio, start_gateway, stop_gateway, user

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def managed(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gw-managed")
    gw = start_gateway(["--engine", "vllm", "--model", str(tiny_model), "--served-model-name", "tiny",
                        "--dtype", "float32", "--max-model-len", "4096"], folder / "serve.log",
                       env={"LALM_VLLM_LOG": str(folder / "vllm.log")}, timeout=600)
    yield gw
    stop_gateway(gw)


def _vllm_child(gw) -> psutil.Process:
    """The vLLM server the gateway started (the leader of its own process group)."""
    for child in psutil.Process(gw.proc.pid).children():
        try:
            if "lalm.engines.vllm_server" in " ".join(child.cmdline()):
                return child
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    raise AssertionError("the gateway has no vLLM child process")


def _group_of(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except ProcessLookupError:
        return None


def _in_flight(gw) -> float:
    """Requests the gateway is serving now (the /metrics request counts itself too)."""
    metrics = httpx.get(f"{gw.url}/metrics", timeout=10).text
    return float(re.search(r"^lalm_requests_in_flight (\S+)$", metrics, re.M).group(1))


def _wait(predicate, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting until {what}")


def _upstream_errors(gw, code: str) -> float:
    metrics = httpx.get(f"{gw.url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(metrics)
               for sample in family.samples
               if sample.name == "lalm_upstream_errors_total" and sample.labels.get("code") == code)


def test_killed_upstream_fails_cleanly_and_comes_back(managed, speech):
    client = managed.client(timeout=120)
    question = [user(input_audio(speech), "What is said?")]
    before = client.chat.completions.create(model="tiny", messages=question, temperature=0, max_tokens=16)
    prompt = "Tell me a very long story."
    child = _vllm_child(managed)

    outcomes: dict[str, BaseException | str] = {}

    def whole(name: str) -> None:
        try:
            out = client.chat.completions.create(model="tiny", messages=[user(prompt)], temperature=0,
                                                 max_tokens=64)
            outcomes[name] = out.choices[0].finish_reason
        except openai.APIError as exc:
            outcomes[name] = exc

    def streamed() -> None:
        try:
            for _ in client.chat.completions.create(model="tiny", messages=[user(prompt)], temperature=0,
                                                    max_tokens=64, stream=True):
                pass
            outcomes["stream"] = "finished"
        except openai.APIError as exc:
            outcomes["stream"] = exc

    # Deterministic on busy cores, where a metrics poll can take longer than a whole answer and the gateway's
    # stream lags behind vLLM: vLLM is frozen (SIGSTOP: its sockets stay open, it answers nothing), the three
    # requests are sent and are certainly in flight, waiting on vLLM; then vLLM is killed as a crash would.
    os.killpg(child.pid, signal.SIGSTOP)
    threads = [threading.Thread(target=whole, args=(f"whole{i}",)) for i in range(2)]
    threads.append(threading.Thread(target=streamed))
    for t in threads:
        t.start()
    _wait(lambda: _in_flight(managed) >= 4, 60, "the three requests are in flight")  # + the /metrics request
    os.kill(child.pid, signal.SIGKILL)  # the API server only, as a crash of it would: its engine core lives on
    for t in threads:
        t.join(120)

    for name in ("whole0", "whole1"):
        exc = outcomes[name]
        assert isinstance(exc, openai.APIStatusError), (name, exc)
        assert exc.status_code in (502, 503), exc
        assert set(exc.body) == {"message", "type", "param", "code"} and exc.body["type"] == "server_error"
    # an error event if the stream had started, else a 5xx status: either way the SDK raises with the body
    assert isinstance(outcomes["stream"], openai.APIError), outcomes["stream"]
    assert outcomes["stream"].body["code"] in ("upstream_error", "upstream_unavailable")

    # while vLLM is down: /health is 503 and requests get a clean 503
    _wait(lambda: httpx.get(f"{managed.url}/health", timeout=10).status_code == 503, 30, "/health says down")
    down = httpx.post(f"{managed.url}/v1/chat/completions", timeout=30,
                      json={"model": "tiny", "messages": [user("hi")], "max_tokens": 2})
    if down.status_code != 200:  # the restart may already be done on a fast machine
        assert down.status_code in (502, 503) and down.json()["error"]["code"].startswith("upstream_")

    # the supervisor restarts vLLM and the gateway serves the same model again
    _wait(managed.healthy, 600, "vLLM is back")
    assert _vllm_child(managed).pid != child.pid
    # the dead server's engine core, workers and resource tracker were ended with it, not left to init
    assert [p.pid for p in psutil.process_iter() if _group_of(p) == child.pid] == []
    after = client.chat.completions.create(model="tiny", messages=question, temperature=0, max_tokens=16)
    assert after.choices[0].message.content == before.choices[0].message.content
    # the three failures were counted: upstream_error, or upstream_unavailable for a request that was on a
    # pooled connection when vLLM died and was sent again (engines/vllm.py), to find nothing listening
    assert _upstream_errors(managed, "upstream_error") + _upstream_errors(managed, "upstream_unavailable") >= 3


def test_shutdown_stops_the_vllm_child(managed):
    _wait(managed.healthy, 600, "vLLM is up")
    child = _vllm_child(managed)
    stop_gateway(managed)
    _wait(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 60, "vLLM has exited")
    assert "Application shutdown complete" in managed.log_tail()
