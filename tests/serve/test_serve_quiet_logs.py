"""`lalm serve --engine vllm` with its own vLLM child logs what an operator needs, not the same notice per
request or a report at exit: vLLM's "torchcodec unavailable" (its audio loader trying a backend lalm never
needs) at most once however many requests, and no "leaked" line when the gateway stops (nanobind's leak report
of triton at the vLLM server's exit, vLLM's resource tracker on shared memory of a killed engine core).

This starts a vLLM server of its own (the gateway's child), about a minute."""

from __future__ import annotations

import pytest
from media import encode
from serve_support import start_gateway, stop_gateway

pytestmark = pytest.mark.vllm


def test_requests_and_shutdown_leave_no_repeated_notice_and_no_leak_report(tiny_model, tmp_path, speech):
    gw = start_gateway(["--engine", "vllm", "--model", str(tiny_model), "--served-model-name", "tiny",
                        "--dtype", "float32", "--max-model-len", "4096"], tmp_path / "serve.log", timeout=600)
    try:
        client = gw.client()
        for fmt, sound in [("wav", speech), ("flac", speech), ("mp3", speech[: 16000]), ("wav", speech[::-1])] * 2:
            answer = client.audio.transcriptions.create(model="tiny", file=(f"a.{fmt}", encode(sound, fmt)),
                                                        temperature=0)
            assert isinstance(answer.text, str)
    finally:
        stop_gateway(gw)
    log = gw.log.read_text(errors="replace")
    assert "Application shutdown complete" in log and "POST /v1/audio/transcriptions" in log
    assert log.count("torchcodec unavailable") <= 1
    assert [line for line in log.splitlines() if "leaked" in line] == []
