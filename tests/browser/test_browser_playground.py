"""The playground page at `/` in real headless Chromium on a running gateway that wants an API key: the key is
asked once and kept in the tab; a WAV and an MP4 are transcribed and summarized, text and timestamps appear,
a clicked timestamp seeks the player; an API error is shown as the API's message; the fake microphone is
transcribed live through the realtime endpoint and its recording transcribed as a file; the page asks
nothing of any host but the gateway. Screenshots are saved (the README's comes from here:
LALM_SCREENSHOT_DIR=docs)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from browser_support import KEY, same_origin
from media import encode
from playwright.sync_api import Page, expect

from lalm.serve.routes.playground import STATIC_DIR
from lalm.synth import espeak

pytestmark = pytest.mark.browser

LEAD_S = 3.0  # silence before the speech of the uploaded files, so their first segment starts later than 0


@pytest.fixture(scope="module")
def media_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    speech = espeak("Please send the slides to Maria before the call with the Berlin office.")
    audio = np.concatenate([np.zeros(int(LEAD_S * 16000), np.float32), speech])
    folder = tmp_path_factory.mktemp("media")
    files = {"wav": folder / "meeting.wav", "mp4": folder / "clip.mp4", "bad": folder / "notes.wav"}
    files["wav"].write_bytes(encode(audio, "wav"))
    files["mp4"].write_bytes(encode(audio, "mp4"))
    files["bad"].write_bytes(b"these are not audio bytes at all " * 40)
    return files


@pytest.fixture(scope="module")
def page(browser_context, gateway_browser) -> Page:
    """The playground, with the API key given once in the dialog the first 401 opens."""
    context, _ = browser_context
    page = context.new_page()
    page.goto(gateway_browser.url + "/")
    expect(page.locator("#key-dialog")).to_be_visible()
    expect(page.locator("#key-reason")).to_contain_text("Missing API key")
    page.fill("#key-input", KEY)
    page.click("#key-save")
    expect(page.locator("#model")).to_have_value("tiny")
    yield page
    page.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("LALM_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def _run(page: Page, task: str, fmt: str | None = None) -> None:
    _run_until(page, task, fmt, "done")


def _run_until(page: Page, task: str, fmt: str | None, state: str) -> None:
    page.select_option("#task", task)
    if fmt is not None:
        page.select_option("#format", fmt)
    page.click("#run")
    expect(page.locator("#run-form")).to_have_attribute("data-state", state, timeout=180_000)


def test_the_page_shows_the_model_what_it_can_do_and_a_random_weights_warning(page: Page, gateway_browser,
                                                                             media_files, shots: Path):
    cards = httpx.get(f"{gateway_browser.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()["data"]
    assert [c["id"] for c in cards] == ["tiny", "plain", "asr"]
    picker = page.locator("#model")
    assert picker.locator("option").all_inner_texts() == ["tiny", "plain", "asr"]
    expect(picker).to_be_enabled()  # a picker: there are several
    info = page.locator("#model-info")
    for text in ("audio-language model", "chat", "tasks: transcribe, translate, summarize, emotion, qa, describe",
                 "translates to English", "engine hf", "weights 2.9 MiB"):
        expect(info).to_contain_text(text)
    warning = page.locator("#model-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("random weights")
    page.screenshot(path=str(shots / "playground-random-weights.png"), full_page=True)
    picker.select_option("plain")  # no random-weights mark: no warning
    expect(warning).to_be_hidden()
    expect(info).to_contain_text("audio-language model")
    with page.expect_request("**/v1/chat/completions") as request:  # the picked model is asked
        page.set_input_files("#file", str(media_files["bad"]))
        _run_until(page, "summarize", None, "failed")
    assert json.loads(request.value.post_data)["model"] == "plain"
    picker.select_option("asr")  # a Whisper model: transcribes English only; the other tasks cannot be picked
    for text in ("speech recognition", "no chat", "tasks: transcribe", "no translation", "languages: en",
                 "engine ctranslate2"):
        expect(info).to_contain_text(text)
    expect(warning).to_be_hidden()
    disabled = page.locator("#task option:disabled")
    assert sorted(disabled.evaluate_all("os => os.map(o => o.value)")) == ["describe", "emotion", "qa", "summarize",
                                                                          "translate"]
    expect(page.locator("#task")).to_have_value("transcribe")
    expect(page.locator("#mic")).to_be_enabled()
    page.screenshot(path=str(shots / "playground-whisper.png"), full_page=True)
    picker.select_option("tiny")
    expect(warning).to_be_visible()
    expect(page.locator("#task option:disabled")).to_have_count(0)


def test_api_errors_show_the_api_message(page: Page, media_files, gateway_browser):
    page.set_input_files("#file", str(media_files["bad"]))
    page.select_option("#task", "transcribe")
    page.select_option("#format", "json")
    page.click("#run")
    expect(page.locator("#run-form")).to_have_attribute("data-state", "failed", timeout=60_000)
    direct = httpx.post(f"{gateway_browser.url}/v1/audio/transcriptions", headers={"Authorization": f"Bearer {KEY}"},
                        data={"model": "tiny", "response_format": "json", "stream": "true"},
                        files={"file": ("notes.wav", media_files["bad"].read_bytes())})
    assert direct.status_code == 400
    expect(page.locator("#error")).to_have_text(direct.json()["error"]["message"])


def _assert_seeks_to(page: Page, media: str, stamp, start: float) -> None:
    """Clicking `stamp` seeks `media` to `start` seconds. The position is read at the `seeking` event (the
    spec sets it to the target before firing it): the page then plays on, so a later read would drift."""
    page.evaluate(f"window._seekedTo = null; const m = document.querySelector('{media}');"
                  "m.addEventListener('seeking', () => { window._seekedTo = m.currentTime; }, {once: true});")
    stamp.click()
    page.wait_for_function("window._seekedTo !== null")
    assert abs(page.evaluate("window._seekedTo") - start) < 0.05


def test_mp4_cues_and_streamed_summary(page: Page, media_files, browser_context, shots: Path):
    _, requested = browser_context
    page.set_input_files("#file", str(media_files["mp4"]))
    expect(page.locator("#player-box video")).to_have_count(1)
    _run(page, "transcribe", "srt")
    assert page.inner_text("#answer").startswith("1\n")
    stamps = page.locator("#segments button.ts")  # one per subtitle cue
    expect(stamps.first).to_be_visible()
    start = float(stamps.first.get_attribute("data-start"))
    _assert_seeks_to(page, "#player-box video", stamps.first, start)

    with page.expect_request("**/v1/chat/completions") as request:
        _run(page, "summarize")
    body = json.loads(request.value.post_data)
    assert body["task"] == "summarize" and body["stream"] is True
    assert body["messages"][0]["content"][0]["input_audio"]["format"] == "mp4"
    assert page.inner_text("#answer").strip()
    assert not page.is_visible("#error")
    assert any(u.endswith("/v1/chat/completions") for u in requested)


def test_wav_transcript_with_timestamps_that_seek(page: Page, media_files, shots: Path):
    page.set_input_files("#file", str(media_files["wav"]))
    expect(page.locator("#player-box audio")).to_have_count(1)
    answers = []

    def keep(response) -> None:
        if response.url.endswith("/v1/audio/transcriptions"):
            answers.append(response)

    page.on("response", keep)
    _run(page, "transcribe", "verbose_json")
    page.remove_listener("response", keep)
    # word timestamps are asked for: shown when the server has them; refused by name when it has not, and the
    # page asks again for segments
    if answers[0].status == 400:
        assert answers[0].json()["error"]["param"] == "timestamp_granularities[]"
        assert [a.status for a in answers[1:]] == [200]
    else:
        expect(page.locator("#segments span.word").first).to_be_visible()
    assert page.inner_text("#answer").strip()
    stamps = page.locator("#segments button.ts")
    expect(stamps.first).to_be_visible()
    start = float(stamps.first.get_attribute("data-start"))
    assert LEAD_S - 0.5 < start < LEAD_S + 0.5  # the speech starts after the leading silence
    assert page.evaluate("document.querySelector('#player-box audio').currentTime") == 0
    _assert_seeks_to(page, "#player-box audio", stamps.first, start)
    page.screenshot(path=str(shots / "playground-transcript.png"), full_page=True)


def test_live_transcription_from_the_microphone_and_its_recording(page: Page, shots: Path):
    page.click("#mic")
    expect(page.locator("#live-status")).not_to_have_text("connecting", timeout=30_000)
    done = page.locator("#live li.completed")
    expect(done.first).to_be_visible(timeout=180_000)
    assert done.first.inner_text().strip()
    assert page.is_hidden("#live-error")
    page.screenshot(path=str(shots / "playground.png"), full_page=True)
    page.click("#mic")
    expect(page.locator("#live-status")).to_have_text("off")
    # what the microphone heard becomes the file panel's recording, ready for any task
    expect(page.locator("#file-name")).to_have_text("recording.wav")
    _run(page, "transcribe", "verbose_json")
    expect(page.locator("#segments button.ts").first).to_be_visible()


def test_the_page_asks_only_the_gateway(page: Page, browser_context, gateway_browser):
    _, requested = browser_context
    assert any(u.startswith("ws://") and "/v1/realtime?intent=transcription" in u for u in requested)
    for path in ("/", "/static/playground.js", "/static/api.js", "/static/live.js", "/static/playground.css",
                 "/v1/models", "/v1/audio/transcriptions"):
        assert gateway_browser.url + path in requested, path
    elsewhere = [u for u in requested if not same_origin(u, gateway_browser.url)]
    assert elsewhere == [], elsewhere


def test_the_page_names_no_other_host():
    """Requests from worklets escape Playwright's request events, so the page's files are read as well: no
    absolute or protocol-relative URL anywhere in them (the WebSocket URL is built from location.host)."""
    files = sorted(STATIC_DIR.iterdir())
    assert {f.name for f in files} >= {"index.html", "playground.js", "pcm-worklet.js"}
    for f in files:
        text = f.read_text()
        assert not re.search(r"(https?:|wss?:)?//[\w.-]+\.\w", text.replace("://${location.host}", "")), f.name
        assert "@import" not in text and "url(" not in text, f.name
