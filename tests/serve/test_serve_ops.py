"""Operations: /health, /metrics, the OpenAPI docs, and settings from the environment."""

from __future__ import annotations

import re

from media import encode
from typer.testing import CliRunner

from lalm.cli import app
from lalm.config import Settings
from lalm.serve.backend import engine_kind
from lalm.serve.limits import request_body_limit


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return 0.0


def test_health_and_metrics(gateway, speech):
    assert gateway.http.get("/health").json() == {"status": "ok"}
    before = gateway.http.get("/metrics").text
    gateway.client().audio.transcriptions.create(model="tiny", file=("a.wav", encode(speech, "wav")))
    after = gateway.http.get("/metrics").text
    seconds = _metric(after, "lalm_audio_seconds_total", route="transcribe") - \
        _metric(before, "lalm_audio_seconds_total", route="transcribe")
    assert abs(seconds - len(speech) / 16000) < 0.01
    labels = {"route": "/v1/audio/transcriptions", "method": "POST", "status": "200"}
    assert _metric(after, "lalm_requests_total", **labels) == _metric(before, "lalm_requests_total", **labels) + 1
    assert _metric(after, "lalm_request_duration_seconds_count", route="/v1/audio/transcriptions") >= 1


def test_docs_describe_the_extras(gateway):
    assert gateway.http.get("/docs").status_code == 200
    spec = gateway.http.get("/openapi.json").json()
    assert "longer than 30 s" in spec["info"]["description"] and "429" in spec["info"]["description"]
    chat = spec["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert "lalm extra" in chat["task"]["description"]
    assert set(chat["task"]["anyOf"][0]["enum"]) == {"transcribe", "translate", "summarize", "emotion", "qa",
                                                     "describe"}
    segment = spec["components"]["schemas"]["TranscriptionSegment"]
    assert "neutral" in segment["description"] and "logprob" in segment["properties"]["avg_logprob"]["description"]
    word = spec["components"]["schemas"]["TranscriptionWord"]
    assert "interpolated" in word["properties"]["aligned"]["description"]
    assert "word" in spec["info"]["description"].split("timestamp_granularities[]")[1][:40]
    assert {"/v1/chat/completions", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models",
            "/health", "/metrics"} <= set(spec["paths"])


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LALM_API_KEYS", '["a", "b"]')
    monkeypatch.setenv("LALM_UPSTREAMS", '["http://127.0.0.1:8100"]')
    monkeypatch.setenv("LALM_MAX_UPLOAD_BYTES", "3000000")
    monkeypatch.setenv("LALM_ENGINE", "hf")
    s = Settings()
    assert s.api_keys == ["a", "b"] and s.upstreams == ["http://127.0.0.1:8100"]
    assert request_body_limit(s) == 3000000 * 4 // 3 + (1 << 20)
    # a checkpoint folder takes the engine the environment names (the built-in `default` is composed whatever it is)
    folder = Settings(model=["models/tiny"])
    assert engine_kind(folder.model_specs()[0]) == "hf"
    assert engine_kind(Settings(model=["models/tiny"], engine="vllm").model_specs()[0]) == "vllm"
    assert engine_kind(s.model_specs()[0]) == "composed"


def test_serve_help_lists_every_option():
    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for flag in ("--model", "--engine", "--upstream", "--host", "--port", "--api-key", "--max-concurrency"):
        assert flag in out
    assert "LALM_MODEL" in out
