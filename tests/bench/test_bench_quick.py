"""Every benchmark in bench/ still runs: each one's `--quick` (bench/quick.py: tiny inputs, seconds) as a
subprocess with this interpreter must exit 0 and print its figures, and, where the benchmark has a baseline, its
ratio against that baseline measured in the same run. The values are not asserted beyond what holds by
construction (requests served, tokens generated, seconds of audio sent): speed and accuracy are the full runs'
business. Benchmarks that need a model get the session's tiny checkpoint; those that measure a vLLM server get
the session's vLLM server (`--upstream`), started once for every vLLM test."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
HELPERS = {"quick", "servers"}  # modules the benchmarks import, not benchmarks
NUMBER = r"([-+]?\d+(?:\.\d+)?)"


def run_quick(name: str, *args: str | Path) -> str:
    """`python bench/NAME.py --quick ARGS`: its standard output, once it exited 0."""
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--quick", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"bench/{name}.py --quick exited {proc.returncode}:\n" \
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def figures(out: str, pattern: str, count: int = 1) -> list[tuple[float, ...]]:
    """The numbers of the `count` lines of `out` that match `pattern` (its groups: NUMBER); each one finite."""
    found = [tuple(float(g) for g in m.groups()) for m in re.finditer(pattern, out, re.MULTILINE)]
    assert len(found) == count, f"{count} line(s) matching {pattern!r} expected in:\n{out[-3000:]}"
    assert all(math.isfinite(v) for row in found for v in row), found
    return found


def test_every_benchmark_has_a_quick_test() -> None:
    benches = {p.stem for p in BENCH.glob("*.py")} - HELPERS
    tested = {name.removeprefix("test_").removesuffix("_quick") for name in globals()
              if name.startswith("test_") and name.endswith("_quick")}
    assert benches == tested


def test_dpo_hallucination_quick(tmp_path) -> None:
    out = run_quick("dpo_hallucination", "--work", tmp_path)
    [(before, after)] = figures(out, rf"^speech_wer\s+{NUMBER}%\s+{NUMBER}%")
    assert before >= 0 and after >= 0
    figures(out, rf"^(?:PASS|FAIL)  insertion rate, relative change: {NUMBER}% \(target")
    figures(out, rf"^(?:PASS|FAIL)  speech WER, change in points: {NUMBER} points")
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "dpo-merged").is_dir()


def test_embedded_model_quick(tiny_model) -> None:
    out = run_quick("embedded_model", "--model", tiny_model)
    for name in ("held-out synthetic speech", "real recordings", "held-out non-speech"):
        assert f"## {name} (2 clips)" in out, out
    figures(out, rf"^faster-whisper tiny.en: answered with nothing on {NUMBER}% of non-speech clips")
    [(lalm,)] = figures(out, rf"^  lalm default \(through lalm serve\): {NUMBER}$")
    [(whisper,)] = figures(out, rf"^  faster-whisper tiny.en \(in process\): {NUMBER}$")
    [(ratio,)] = figures(out, rf"^  ratio lalm / faster-whisper: {NUMBER}$")
    assert lalm > 0 and whisper > 0 and ratio > 0


def test_fuzz_quick() -> None:
    out = run_quick("fuzz")
    [(cases,)] = figures(out, rf"^cases sent: {NUMBER} in")
    assert cases > 0
    assert "server errors: 0" in out and "verdict: PASS" in out, out


@pytest.mark.vllm
def test_gateway_memory_quick(tiny_model, vllm_server) -> None:
    out = run_quick("gateway_memory", "--model", tiny_model, "--upstream", vllm_server.url)
    rows = figures(out, rf"^round \d: {NUMBER} served, 0 errors; RSS {NUMBER} MiB; live Python memory {NUMBER} MiB",
                   count=2)
    assert all(served > 0 and rss > 0 for served, rss, _ in rows)


@pytest.mark.vllm
def test_gateway_overhead_quick(tiny_model, vllm_server) -> None:
    out = run_quick("gateway_overhead", "--model", tiny_model, "--upstream", vllm_server.url)
    [(ratio,)] = figures(out, rf"^throughput ratio \(gateway / vLLM\): {NUMBER} of medians")
    [(cpu,)] = figures(out, rf"^gateway CPU per request: {NUMBER} \(")
    figures(out, rf"^added p50 latency: {NUMBER} ms")
    assert ratio > 0 and cpu > 0
    # the same prompt both ways: the same prompt tokens per request on vLLM's counters
    rows = figures(out, rf"^\s+0\s+(?:vllm|gateway)(?:\s+{NUMBER}){{8}}$", count=2)
    assert rows[0][-1] == rows[1][-1] > 0


def test_hf_batching_quick() -> None:
    out = run_quick("hf_batching")
    [(one, batched, tokens, _, _, ratio)] = figures(out, rf"^tiny\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}"
                                                         rf"\s+{NUMBER}\s+{NUMBER}x$")
    assert tokens == 2 * 8  # 2 requests x 8 greedy tokens, no early stop
    assert one > 0 and batched > 0 and ratio > 0


def test_load_quick(tiny_model) -> None:
    out = run_quick("load", "--model", tiny_model)
    [(served,)] = figures(out, rf"^served {NUMBER} requests in")
    assert served == 13  # one round of the schedule: every kind, the 2-minute transcription once
    for kind in ("chat", "chat_stream", "transcribe_short", "transcribe_stream", "transcribe_2min"):
        figures(out, rf"^  {kind}\s+200: \d+\s+p50\s+{NUMBER} s\s+p99\s+{NUMBER} s$")
    assert "errors (not 200, not 429 with Retry-After): 0" in out, out
    figures(out, rf"^gateway RSS: before {NUMBER} MiB, peak {NUMBER} MiB, after {NUMBER} MiB$")


@pytest.mark.vllm
def test_long_audio_quick(tiny_model, vllm_server) -> None:
    out = run_quick("long_audio", "--model", tiny_model, "--upstream", vllm_server.url)
    rows = figures(out, r"^\s+" + r"\s+".join([NUMBER] * 9) + "$", count=2)
    assert [(minutes, audio_s) for minutes, _, audio_s, *_ in rows] == [(0.25, 15.0), (0.5, 30.0)]
    assert all(segments > 0 and peak > 0 for *_, segments, _, _, peak in rows)


def test_realtime_latency_quick(tiny_model) -> None:
    out = run_quick("realtime_latency", "--model", tiny_model)
    [(first, _, vad, commit)] = figures(out, rf"^median over 1 turns: speech end -> first delta {NUMBER} s "
                                             rf"\(max {NUMBER} s; goal <= 1.5 s\), of which VAD wait {NUMBER} s and "
                                             rf"commit -> first delta {NUMBER} s$")
    [(base, ratio)] = figures(out, rf"^baseline \(HTTP streamed transcription, first delta\): {NUMBER} s; "
                                   rf"realtime commit -> first delta / baseline = {NUMBER}$")
    assert vad > 0 and commit > 0 and base > 0 and ratio >= 0 and first > 0


def test_screen_text_quick() -> None:
    out = run_quick("screen_text", "--spoken", "--ocr-cost", "--runs", "2")
    rows = figures(out, rf"^  (?:talk|subtitles|dense|no text)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$", count=4)
    assert rows[-1][0] == 0 and all(frames > 0 for _, _, frames in rows[:-1])  # no text: nothing to read
    assert "Spoken names (the speech says the names on the slides), 2 runs pooled:" in out
    for label in ("without", "with"):
        [(right, total)] = figures(out, rf"^  {label} screen text\s+{NUMBER}/{NUMBER}\s")
        assert 0 <= right <= total > 0 and total % 2 == 0  # the talk's name words, twice
    [(without, with_text, ratio)] = figures(out, rf"^  wall time of the transcriptions: {NUMBER} s without, {NUMBER} s "
                                                 rf"with screen text \({NUMBER}x")
    assert without > 0 and with_text > 0 and ratio > 0
    figures(out, rf"^  name words wrong: {NUMBER} -> {NUMBER}")
    [(share,)] = figures(out, rf"^  the scan's share of a transcription with screen text \(wall\): median {NUMBER}%")
    assert 0 < share <= 100


@pytest.mark.vllm
def test_soak_quick(tiny_model, vllm_server) -> None:
    out = run_quick("soak", "--model", tiny_model, "--upstream", vllm_server.url)
    rows = figures(out, rf"^round \d/2.*: {NUMBER} served \(200: \d+\), 0 errors; .* RSS {NUMBER} MiB", count=2)
    assert all(served > 0 for served, _ in rows)
    figures(out, rf"^steady load: 0 errors; gateway RSS {NUMBER} MiB at start, {NUMBER} after warm-up, {NUMBER} at "
                 rf"the end \({NUMBER} %\)")
    assert "left after shutdown: none" in out and "all soak checks passed" in out, out


def test_vad_quick() -> None:
    out = run_quick("vad")
    rows = figures(out, rf"^  (?:energy|vad)\s+cutter:\s+{NUMBER} windows, speech sent\s+{NUMBER}%", count=2)
    assert all(windows > 0 for windows, _ in rows)
    [(_, recall)] = figures(out, rf"^  non-speech seconds sent: -{NUMBER}% with the VAD; speech recall {NUMBER}%$")
    assert 0 < recall <= 100


@pytest.mark.slow
def test_whisper_serving_quick(tmp_path) -> None:
    """`lalm serve --model default` over HTTP and faster-whisper (greedy with and without its VAD, and with lalm's
    beams) on the same Whisper base weights, on two real recordings and a non-speech clip (vLLM is left out of
    --quick); lalm's speed over faster-whisper's with the same decoding (greedy)."""
    out = run_quick("whisper_serving", "--work", tmp_path, "--json", tmp_path / "figures.json")
    systems = ("lalm default (HTTP)", "faster-whisper", "faster-whisper + VAD", "faster-whisper beam 5")
    for name in systems:
        [(rss, ratio)] = figures(out, rf"^  {re.escape(name)}\s+{NUMBER} MiB\s+{NUMBER}x$")
        assert rss > 0 and ratio > 0
    assert "vLLM: skipped" in out, out
    results = json.loads((tmp_path / "figures.json").read_text())["figures"]
    sets = results["sets"]
    assert set(sets["real"]) == set(sets["non-speech"]) == set(systems)
    [(ratio,)] = figures(out, rf"^  lalm default \(HTTP\)\s+{NUMBER}x$")
    assert ratio == pytest.approx(results["speed_vs_same_decoding"]["lalm default (HTTP)"], abs=0.01) and ratio > 0
    # the same Whisper base every way: the 31 words of the two recordings come back nearly whole
    assert all(row["words"] == 31 and row["wer"] < 0.2 and row["rtf"] > 0 for row in sets["real"].values())
    assert sets["non-speech"]["lalm default (HTTP)"]["no_text"] == 1.0


def test_word_timing_quick() -> None:
    out = run_quick("word_timing")
    figures(out, rf"^  lalm.align \(PocketSphinx\)\s+median\s+{NUMBER} ms\s+p90\s+{NUMBER} ms", count=2)
    figures(out, rf"^  faster-whisper tiny.en words\s+median\s+{NUMBER} ms\s+p90\s+{NUMBER} ms", count=2)
