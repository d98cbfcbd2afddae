"""Schemathesis (property-based fuzzing from the OpenAPI schema) against a running gateway with an API key:
every operation of /openapi.json, no server error, every error in OpenAI's body, every response as the
schema documents it, schema-invalid requests refused, requests without the key refused.

Schemathesis was chosen over hand-written fuzzers (and over RESTler, which needs a .NET toolchain): it reads
the schema FastAPI already publishes and runs in pytest. Generated bodies are random strings where audio
goes; to reach the decoder and the engine, half the schema-valid cases get real audio and the served model
name (chosen from the generated data, so a run is reproducible). The example count is bounded here
(LALM_FUZZ_EXAMPLES, default 25 per operation); bench/fuzz.py runs more.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from media import encode, tone
from schemathesis.specs.openapi.checks import positive_data_acceptance
from serve_support import start_gateway, stop_gateway

from lalm.config import Settings
from lalm.serve.app import create_app

KEY = "sk-fuzz"
EXAMPLES = int(os.environ.get("LALM_FUZZ_EXAMPLES", "25"))
WAV = encode(tone(1.0), "wav")
WAV_B64 = base64.b64encode(WAV).decode()
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def fuzz_gateway(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The hf engine on the tiny model, with an API key and answers of at most 8 tokens (fast cases)."""
    gw = start_gateway(["--engine", "hf", "--model", str(tiny_model), "--served-model-name", "tiny",
                        "--api-key", KEY], tmp_path_factory.mktemp("gw-fuzz") / "serve.log",
                       env={"LALM_DEFAULT_MAX_TOKENS": "8", "LALM_WINDOW_MAX_TOKENS": "8"})
    yield gw
    stop_gateway(gw)
    report = os.environ.get("LALM_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({"cases": sum(STATUSES.values()),
                                            "statuses": {str(k): v for k, v in sorted(STATUSES.items())}}))


# The schema the gateway publishes at /openapi.json, built without starting an engine. (Schemathesis' lazy
# `from_fixture` loader relies on a pytest internal that pytest 9 removed.)
schema = schemathesis.openapi.from_dict(create_app(Settings(served_model_name="tiny")).openapi())


def _pick(value: object) -> bool:
    """A reproducible coin from the generated data: whether to swap in realistic values."""
    return len(json.dumps(value, default=str)) % 2 == 0


def _realistic(case: schemathesis.Case) -> None:
    """For half the schema-valid cases: the served model name, real audio where audio goes, short answers
    (n and max_tokens lowered, still within the schema). Schema-invalid cases are sent as generated."""
    body = case.body
    if case.meta is None or case.meta.generation.mode.is_negative or not isinstance(body, dict) or not _pick(body):
        return
    if isinstance(body.get("model"), str):
        body["model"] = "tiny"
    if "file" in body:
        body["file"] = WAV
    for key in ("n", "max_tokens", "max_completion_tokens"):
        if isinstance(body.get(key), int) and body[key] > 2:
            body[key] = 2
    for message in body.get("messages") or []:
        for part in message.get("content") if isinstance(message, dict) and isinstance(message.get("content"), list) \
                else []:
            if isinstance(part, dict) and isinstance(part.get("input_audio"), dict):
                part["input_audio"]["data"] = WAV_B64
            if isinstance(part, dict) and isinstance(part.get("audio_url"), dict):
                part["audio_url"]["url"] = "data:audio/wav;base64," + WAV_B64


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_survives_fuzzing(case: schemathesis.Case, fuzz_gateway) -> None:
    _realistic(case)
    headers = {"Authorization": f"Bearer {KEY}"}
    response = case.call(base_url=fuzz_gateway.url, headers=headers, timeout=120)
    STATUSES[response.status_code] += 1
    # Schema-valid random strings are not audio: refusing them (400) is right, so that check is left out.
    case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance],
                           transport_kwargs={"base_url": fuzz_gateway.url, "headers": headers, "timeout": 120})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
