"""The whole pipeline on the offline dataset against a real OpenAI-compatible server (the tiny checkpoint):
run both splits, score (with LLM letter mapping), judge with the same server as the judge, report. The tiny
model answers at random, so this checks records, counts, caching and files, not accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.airbench.cli import app
from evals.airbench.layout import load_meta
from evals.airbench.score import parse_letter
from evals.airbench.store import read_jsonl

pytestmark = pytest.mark.vllm


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def test_pipeline_end_to_end(airbench_root: Path, airbench_endpoint: tuple[str, str], tmp_path: Path) -> None:
    url, model = airbench_endpoint
    runs = {}
    for split in ("foundation", "chat"):
        out = tmp_path / f"{split}.jsonl"
        text = _cli("run", "--root", str(airbench_root), "--split", split, "--base-url", url, "--model", model,
                    "--out", str(out), "--max-tokens", "16", "--concurrency", "4")
        n = len(load_meta(airbench_root, split))
        assert f"{n} selected, 0 already done, {n} answered, 0 failed" in text
        records = list(read_jsonl(out))
        assert len(records) == n and all(isinstance(r["response"], str) and r["latency_s"] > 0 for r in records)
        runs[split] = out

    scores = tmp_path / "foundation_scores.json"
    text = _cli("score", str(runs["foundation"]), "--out", str(scores), "--align-base-url", url,
                "--align-model", model, "--align-scope", "unparsable")
    f = json.loads(scores.read_text())
    assert f["total"] + f["unparsable"] == 18 and f["errors"] == 0
    assert set(f["by_task"]) == {r["task_name"] for r in load_meta(airbench_root, "foundation")}
    original = {r["uniq_id"]: r["response"] for r in read_jsonl(runs["foundation"])}
    aligned = list(read_jsonl(tmp_path / "foundation.aligned.jsonl"))
    assert len(aligned) == 18 and not any(r.get("align_error") for r in aligned)
    for r in aligned:  # scope "unparsable": only answers with no letter were sent to the mapping LLM
        if parse_letter(original[r["uniq_id"]]) is None:
            assert r["response_raw"] == original[r["uniq_id"]] and isinstance(r["response"], str)
        else:
            assert "response_raw" not in r and r["response"] == original[r["uniq_id"]]
    assert "plain mean over 9 tasks" in text

    chat_scores = tmp_path / "chat_scores.json"
    judge_args = ["judge", str(runs["chat"]), "--judge-base-url", url, "--judge-model", model,
                  "--out", str(chat_scores), "--max-tokens", "8", "--attempts", "2", "--temperature", "1.0"]
    _cli(*judge_args)
    c = json.loads(chat_scores.read_text())
    assert c["judged"] + c["failed"] == 2 * 16  # both orders of every answer
    assert 32 <= c["requests"] <= 64 and c["cache_hits"] == 0 and c["http_errors"] == 0
    assert len(c["judgments"]) == 32 and set(c["by_task"]) == {r["task_name"] for r in load_meta(airbench_root, "chat")}
    assert all(len(j["replies"]) in (1, 2) for j in c["judgments"])
    _cli(*judge_args)  # a rerun pays for nothing
    again = json.loads(chat_scores.read_text())
    assert again["requests"] == 0 and again["cache_hits"] == 32
    assert again["categories"] == c["categories"]

    report = tmp_path / "report"
    text = _cli("report", "--foundation", str(scores), "--chat", str(chat_scores), "--out", str(report),
                "--label", "tiny")
    md = (report / "report.md").read_text()
    for name in ("foundation_tasks.png", "chat_categories.png", "chat_tasks.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name})" in md
    assert "| speech | " in md and "7.18" in md  # Qwen2-Audio's published speech score beside ours
    assert "`Audio_Grounding`" in md and "41.6" in md  # Qwen-Audio-Turbo's published Audio grounding
    assert f"of {c['judged'] + c['failed']}" in md
