"""The generation step: requests as the reference builds them, retries and recorded failures (scripted
endpoint), and resuming after a real interruption against the real vLLM server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evals.airbench.client import Retry
from evals.airbench.layout import load_meta
from evals.airbench.run import RunConfig, run
from evals.airbench.store import read_jsonl

REPO = Path(__file__).resolve().parents[2]


def _config(root: Path, url: str, out: Path, **kw) -> RunConfig:
    return RunConfig(root=root, split=kw.pop("split", "foundation"), base_url=url, model="m", out=out,
                     retry=kw.pop("retry", Retry(attempts=3, base=0.01)), **kw)


def test_requests_carry_audio_and_reference_prompt(scripted, airbench_root, tmp_path) -> None:
    out = tmp_path / "f.jsonl"
    summary = asyncio.run(run(_config(airbench_root, scripted.url, out, tasks=("Audio_Grounding",
                                                                                "Speaker_Gender_Recognition"))))
    assert (summary.selected, summary.answered, summary.failed) == (4, 4, 0)
    by_question = {}
    for req in scripted.requests:
        audio, text = req["messages"][0]["content"]
        by_question.setdefault(text["text"].split("\n")[1], []).append((audio["input_audio"], req))
    grounding = next(v for q, v in by_question.items() if q.startswith("When does"))
    part, req = grounding[0]
    assert part["format"] == "flac"  # the Audio_Grounding quirk: meta says .wav, the file is .flac
    assert base64.b64decode(part["data"])[:4] == b"fLaC"
    assert req["temperature"] == 0.0 and req["max_tokens"] == 256 and req["model"] == "m"
    gender = by_question["What is the gender of the speaker?"][0]
    assert gender[0]["format"] == "wav"
    assert gender[1]["messages"][0]["content"][1]["text"].endswith("C. None\nD. None")  # two choices
    records = list(read_jsonl(out))
    assert len(records) == 4
    assert all(r["response"] == "A" and r["latency_s"] >= 0 for r in records)
    assert list(records[0])[:11] == ["path", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer_gt",
                                     "task_name", "dataset_name", "response", "uniq_id"]


def test_chat_requests_send_the_question_alone(scripted, airbench_root, tmp_path) -> None:
    out = tmp_path / "c.jsonl"
    asyncio.run(run(_config(airbench_root, scripted.url, out, split="chat", limit=3)))
    meta = load_meta(airbench_root, "chat")[:3]
    assert sorted(r["messages"][0]["content"][1]["text"] for r in scripted.requests) == sorted(
        m["question"] for m in meta)
    assert all(set(r) >= {"meta_info", "answer_gt", "response", "uniq_id"} for r in read_jsonl(out))


def test_retries_server_errors_then_records_failure(scripted, airbench_root, tmp_path) -> None:
    """5xx is retried with backoff; a request that keeps failing is recorded with an error and rerun only with
    retry_errors; a 400 is not retried."""
    seen: dict[str, int] = {}

    def script(req: dict) -> tuple[int, str]:
        audio, text = req["messages"][0]["content"]
        question = text["text"]
        item = question + audio["input_audio"]["data"]  # one key per item
        seen[item] = seen.get(item, 0) + 1
        if "city" in question:
            return 500, "always broken"
        if "language" in question:
            return 400, "bad audio"
        return (502, "flaky") if seen[item] == 1 else (200, "B")

    scripted.script = script
    out = tmp_path / "f.jsonl"
    tasks = ("Speech_Entity_Reconition", "Spoken_Language_Identification", "Sound_AQA")
    summary = asyncio.run(run(_config(airbench_root, scripted.url, out, tasks=tasks, concurrency=2)))
    assert (summary.selected, summary.answered, summary.failed) == (6, 2, 4)
    records = {r["uniq_id"]: r for r in read_jsonl(out)}
    failed = [r for r in records.values() if r.get("error")]
    assert {r["task_name"] for r in failed} == {"Speech_Entity_Reconition", "Spoken_Language_Identification"}
    assert all(r["response"] is None for r in failed)
    assert {r["attempts"] for r in failed if r["task_name"] == "Speech_Entity_Reconition"} == {3}
    assert {r["attempts"] for r in failed if r["task_name"] == "Spoken_Language_Identification"} == {1}
    assert any("HTTP 500" in r["error"] for r in failed)
    n = len(scripted.requests)
    assert n == 2 * 2 + 2 * 3 + 2 * 1  # flaky: 2 tries; broken: 3; bad request: 1

    again = asyncio.run(run(_config(airbench_root, scripted.url, out, tasks=tasks)))
    assert again.already_done == 6 and len(scripted.requests) == n  # errors are kept unless asked

    scripted.script = lambda req: (200, "C")
    fixed = asyncio.run(run(_config(airbench_root, scripted.url, out, tasks=tasks, retry_errors=True)))
    assert (fixed.already_done, fixed.answered) == (2, 4)
    lines = list(read_jsonl(out))
    assert len(lines) == 6 and not any(r.get("error") for r in lines)  # one record per item


def test_missing_audio_is_skipped(scripted, airbench_root, tmp_path) -> None:
    root = tmp_path / "copy"
    (root / "Foundation").mkdir(parents=True)
    meta = load_meta(airbench_root, "foundation")[:2]
    (root / "Foundation" / "Foundation_meta.json").write_text(json.dumps(meta))
    summary = asyncio.run(run(_config(root, scripted.url, tmp_path / "o.jsonl")))
    assert (summary.missing_audio, summary.answered) == (2, 0) and scripted.requests == []


def _run_cli(root: Path, url: str, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "evals.airbench", "run", "--root", str(root), "--split", "foundation",
           "--base-url", url, "--model", "tiny", "--out", str(out), "--max-tokens", "24", "--concurrency", "1"]
    # SIGINT back to its default in the child: a runner started in the background ignores it, and the child
    # would inherit that and never see the ctrl-c the test sends
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _canonical(path: Path) -> list[dict]:
    """Records by uniq_id without latency (the only field that differs between two runs)."""
    records = [{k: v for k, v in r.items() if k != "latency_s"} for r in read_jsonl(path)]
    return sorted(records, key=lambda r: r["uniq_id"])


@pytest.fixture(scope="module")
def uninterrupted(airbench_root, airbench_endpoint, tmp_path_factory) -> Path:
    """The Foundation split run in one go, by the CLI, against the real server."""
    whole = tmp_path_factory.mktemp("whole") / "whole.jsonl"
    proc = _run_cli(airbench_root, airbench_endpoint[0], whole)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return whole


@pytest.mark.vllm
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["crash", "ctrl-c"])
def test_resume_after_interruption_matches_uninterrupted_run(airbench_root, airbench_endpoint, uninterrupted,
                                                             holding_proxy, tmp_path, sig) -> None:
    url, _ = airbench_endpoint
    total = len(load_meta(airbench_root, "foundation"))
    resumed = tmp_path / "resumed.jsonl"
    # The real endpoint answers the first three requests; the fourth is held, so the signal lands while the
    # run (one request at a time, each record written before the next request) waits on it with exactly
    # three records written, however fast or slow the machine is.
    proxy = holding_proxy(url, 3)
    proc = _run_cli(airbench_root, proxy.url, resumed)
    assert proxy.holding.wait(timeout=300), "the run sent no fourth request"
    held = resumed.read_text().count("\n")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    proxy.release()
    assert held == 3 and resumed.read_text().count("\n") == 3
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "run the same command to continue" in proc.stderr.read()
    else:
        assert proc.returncode == -signal.SIGKILL
        with resumed.open("a") as fh:  # what a kill during a write leaves: a line cut short
            fh.write('{"path": "speaker_gender')
    proc = _run_cli(airbench_root, url, resumed)
    assert proc.wait(timeout=300) == 0
    assert f"{held} already done, {total - held} answered" in proc.stdout.read()
    text = resumed.read_text()
    assert text.endswith("\n") and text.count("\n") == total
    assert len({r["uniq_id"] for r in read_jsonl(resumed)}) == total
    assert _canonical(resumed) == _canonical(uninterrupted)
    assert all(r["response"] and r.get("error") is None for r in read_jsonl(resumed))


def test_store_drops_a_cut_off_line(tmp_path) -> None:
    from evals.airbench.store import JsonlWriter

    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')
    assert list(read_jsonl(path)) == [{"a": 1}]
    with JsonlWriter(path) as w:
        w.write({"a": 3})
    assert path.read_text() == '{"a": 1}\n{"a": 3}\n'
    path.write_text('{"a": 1}\n{"a": 2}')  # cut between the JSON and its newline: the record is kept
    with JsonlWriter(path) as w:
        w.write({"a": 3})
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}, {"a": 3}]
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match=":2: not a JSON line"):
        list(read_jsonl(path))
    assert os.path.exists(path)


def test_store_round_trips_unicode_line_breaks(tmp_path) -> None:
    """Random model output holds characters str.splitlines() treats as line ends (U+2028, U+0085, \x1c)."""
    from evals.airbench.store import JsonlWriter

    path = tmp_path / "x.jsonl"
    odd = {"response": "a\u2028b\x85c\u2029d\x1ce\x0bf\r\ng"}
    with JsonlWriter(path) as w:
        w.write(odd)
        w.write({"response": "next"})
    assert list(read_jsonl(path)) == [odd, {"response": "next"}]


def test_timeouts_are_retried(scripted, airbench_root, tmp_path) -> None:
    calls = []

    def script(req: dict) -> tuple[int, str]:
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(0.6)  # longer than the client's timeout
        return 200, "D"

    scripted.script = script
    out = tmp_path / "f.jsonl"
    summary = asyncio.run(run(_config(airbench_root, scripted.url, out, limit=1, timeout=0.3, concurrency=1)))
    assert (summary.answered, summary.failed) == (1, 0) and len(calls) == 2
    assert [r["response"] for r in read_jsonl(out)] == ["D"]
