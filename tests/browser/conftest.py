"""Browser fixtures: Debian's Chromium driven by Playwright (headless, no network of its own, a fresh
profile, a fake microphone playing a WAV), on a `lalm serve` gateway of three models that wants an API key.

The tests are skipped only when Chromium cannot be launched (not installed: scripts/setup.sh installs it),
and the reason is printed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser_support import CHROMIUM_FLAGS, KEY, LIVE_TEXTS
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright
from serve.serve_support import start_gateway, stop_gateway

from lalm.audio import encode_wav
from lalm.modeling.labels import RANDOM_WEIGHTS
from lalm.synth import espeak


@pytest.fixture(scope="session")
def fake_microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WAV for Chromium's fake microphone: two sentences with pauses (it loops)."""
    gap = np.zeros(16000, np.float32)
    audio = np.concatenate([gap] + [x for t in LIVE_TEXTS for x in (espeak(t), gap)])
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    path.write_bytes(encode_wav(audio))
    return path


@pytest.fixture(scope="session")
def gateway_browser(tiny_model, tmp_path_factory):
    """Three models: `tiny` (random weights, marked so in its config.json), `plain` (a copy without the mark) and
    `asr` (Whisper tiny.en on the CTranslate2 engine: transcribes English, nothing else)."""
    folder = tmp_path_factory.mktemp("gw-browser")
    plain = folder / "plain"
    shutil.copytree(tiny_model, plain)
    config = json.loads((plain / "config.json").read_text())
    del config[RANDOM_WEIGHTS]
    (plain / "config.json").write_text(json.dumps(config))
    models = folder / "models.yaml"
    models.write_text(json.dumps([{"name": "asr", "model": "whisper-tiny.en", "engine": "ctranslate2"}]))
    gw = start_gateway(["--engine", "hf", "--model", f"tiny={tiny_model}", "--model", f"plain={plain}",
                        "--models-file", str(models), "--api-key", KEY], folder / "serve.log")
    yield gw
    stop_gateway(gw)


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it is
# open, and every later test calling asyncio.run() would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def browser_context(fake_microphone: Path, tmp_path_factory: pytest.TempPathFactory):
    """A headless Chromium context (fresh profile) with the fake microphone, and the list of every URL its
    pages ask for (requests and WebSockets)."""
    exe = shutil.which("chromium")
    if exe is None:
        print("browser tests skipped: chromium is not installed (apt-get install chromium; scripts/setup.sh)")
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/setup.sh does it)")
    with sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")), executable_path=exe, headless=True,
                args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={fake_microphone}"])
        except PlaywrightError as exc:
            print(f"browser tests skipped: chromium at {exe} cannot be launched: {exc}")
            pytest.skip(f"chromium at {exe} cannot be launched: {exc}")
        requested: list[str] = []
        context.on("request", lambda request: requested.append(request.url))
        context.on("page", lambda page: page.on("websocket", lambda ws: requested.append(ws.url)))
        yield context, requested
        context.close()
