"""A client that hangs up on a non-streaming request frees the engine: the gateway cancels the request's
work (lalm.serve.cancel, vLLM's `with_cancellation`) instead of transcribing the whole recording for nobody.

Real parts: `lalm serve` on the transformers engine and an HTTP client that gives up after 2 s on 40 minutes
of audio (about 115 windows, a minute or more of engine work). The gateway's own metrics show the outcome: the request
is answered 499 (client closed) and only a small part of the recording was ever decoded."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import soundfile as sf
from prometheus_client.parser import text_string_to_metric_families

LENGTH = 40 * 60.0  # seconds: ~115 windows, under the default 25 MiB upload limit as FLAC


def _speech_bursts(speech: np.ndarray, seconds: float) -> bytes:
    """`speech` (~3 s) every 21 s as 16 kHz FLAC: the VAD hears speech in each burst, so each is a window
    sent to the engine, and the silence between compresses to almost nothing."""
    rate = 16_000
    burst = np.zeros(21 * rate, np.float32)
    burst[:len(speech)] = speech
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(seconds // 21) + 1):
            f.write(burst)
    return buf.getvalue()


def _sample(gateway, name: str, **labels: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_a_client_that_hangs_up_frees_the_engine(gateway_hf_process, speech):
    route = {"route": "/v1/audio/transcriptions", "method": "POST", "status": "499"}
    closed_before = _sample(gateway_hf_process, "lalm_requests_total", **route)
    seconds_before = _sample(gateway_hf_process, "lalm_audio_seconds_total", route="transcribe")
    flac = _speech_bursts(speech, LENGTH)
    assert len(flac) < 25 * 2**20
    try:
        resp = httpx.post(f"{gateway_hf_process.url}/v1/audio/transcriptions", data={"model": "tiny"},
                          files={"file": ("long.flac", flac)}, timeout=httpx.Timeout(120, read=2))
        raise AssertionError(f"40 minutes of audio were answered within 2 s: {resp.status_code} {resp.text[:300]}")
    except httpx.ReadTimeout:
        pass  # the client gives up and closes its connection
    deadline = time.monotonic() + 120
    while _sample(gateway_hf_process, "lalm_requests_total", **route) == closed_before:
        assert time.monotonic() < deadline, "the request was not cancelled after its client left"
        time.sleep(0.5)
    decoded = _sample(gateway_hf_process, "lalm_audio_seconds_total", route="transcribe") - seconds_before
    assert 0 < decoded < LENGTH / 2  # stopped early: the rest of the recording was never read
    assert gateway_hf_process.healthy()
    ok = httpx.post(f"{gateway_hf_process.url}/v1/audio/transcriptions", data={"model": "tiny"},
                    files={"file": ("short.flac", _speech_bursts(speech, 40))}, timeout=120)
    assert ok.status_code == 200, ok.text
