"""On-screen text end to end, on the tiny model through the gateway in this process: a slide video made at
test time (tests/media.py) sent with `lalm_screen_text`, over the real openai SDK. The engine seam records
what each audio window asks the model, so the test sees that every window's prompt carries the text on
screen during it, and only that; the request succeeds in every response format; a picture that cannot be
decoded is answered from the audio alone, with a warning."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from media import SLIDES, broken_picture_mkv, slide_mp4
from screen_text_support import RULE, RecordingEngine, windows_see_their_slides
from serve_support import InProcessGateway

from lalm.config import Settings
from lalm.serve.registry import ModelRegistry
from lalm.synth_video import Slide, slide_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fetch"))
from fetch_testkit import start_server  # the fetch guard's own loopback test servers


@contextlib.contextmanager
def _recording(gw: InProcessGateway) -> Iterator[RecordingEngine]:
    app = gw.http.app
    models = app.state.models
    served = models.get(None)
    recording = RecordingEngine(served.engine)
    app.state.models = ModelRegistry([dataclasses.replace(served, engine=recording)])
    try:
        yield recording
    finally:
        app.state.models = models


@pytest.fixture
def recorded(gateway_hf: InProcessGateway) -> Iterator[RecordingEngine]:
    with _recording(gateway_hf) as engine:
        yield engine


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_transcription_windows_get_the_text_on_screen_in_every_format(gateway_hf: InProcessGateway,
                                                                        recorded: RecordingEngine, fmt: str) -> None:
    out = gateway_hf.client().audio.transcriptions.create(
        model="tiny", file=("slides.mp4", slide_mp4()), response_format=fmt, temperature=0,
        extra_body={"lalm_screen_text": "true"})
    assert out is not None
    windows_see_their_slides(recorded.prompts)
    if fmt == "verbose_json":
        body = out.model_dump()
        lines = body["lalm_screen_text"]
        assert {x["text"] for x in lines} >= {"Zorblax Quintavell", "Quillfeather Dynamics"}, lines
        zorblax = next(x for x in lines if x["text"] == "Zorblax Quintavell")
        assert zorblax["start"] == pytest.approx(SLIDES[0].start, abs=0.6)
        assert zorblax["end"] == pytest.approx(SLIDES[0].end, abs=0.6)
        assert body["lalm_warnings"] == []


def test_without_the_flag_no_text_is_read(gateway_hf: InProcessGateway, recorded: RecordingEngine) -> None:
    body = gateway_hf.http.post("/v1/audio/transcriptions", files={"file": ("slides.mp4", slide_mp4())},
                                data={"model": "tiny", "response_format": "verbose_json"}).json()
    assert body["lalm_screen_text"] is None
    assert recorded.prompts and not any(RULE in p or "Zorblax" in p for p in recorded.prompts)


def test_translation_and_streaming_carry_the_text_on_screen(gateway_hf: InProcessGateway,
                                                           recorded: RecordingEngine) -> None:
    resp = gateway_hf.http.post("/v1/audio/translations", files={"file": ("slides.mp4", slide_mp4())},
                                data={"model": "tiny", "response_format": "verbose_json", "lalm_screen_text": "true"})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["lalm_screen_text"]) >= 6
    windows_see_their_slides(recorded.prompts)
    recorded.prompts.clear()
    resp = gateway_hf.http.post("/v1/audio/transcriptions", files={"file": ("slides.mp4", slide_mp4())},
                                data={"model": "tiny", "stream": "true", "lalm_screen_text": "true"})
    assert resp.status_code == 200 and "transcript.text.done" in resp.text, resp.text
    windows_see_their_slides(recorded.prompts)


def test_chat_task_windows_get_the_text_on_screen(gateway_hf: InProcessGateway, recorded: RecordingEngine) -> None:
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(slide_mp4()).decode(), "format": "mp4"}}
    out = gateway_hf.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [part]}], temperature=0, max_tokens=8,
        extra_body={"task": "transcribe", "lalm_screen_text": True})
    assert out.choices[0].finish_reason in ("stop", "length")
    windows_see_their_slides(recorded.prompts)


def test_a_chat_transcript_gives_an_lalm_the_text_on_screen_in_its_instruction_only(
        gateway_hf: InProcessGateway, recorded: RecordingEngine) -> None:
    """A chat `transcribe` task's windows carry their slide in the instruction of a model that reads one (after
    the request's own `context`), and not again in the Whisper request beside it: SpeechRequest.screen is for a
    model whose Whisper hears (lalm.longform.run), whose fallback would otherwise decode such a window twice."""
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(slide_mp4()).decode(), "format": "mp4"}}
    gateway_hf.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [part]}], temperature=0, max_tokens=8,
        extra_body={"task": "transcribe", "lalm_screen_text": True, "context": "Agenda."})
    windows_see_their_slides(recorded.prompts)
    assert recorded.speech_prompts == ["Agenda."] * 3, recorded.speech_prompts


def test_plain_chat_gets_the_text_on_screen_after_its_own(gateway_hf: InProcessGateway,
                                                          recorded: RecordingEngine) -> None:
    clip = slide_video([Slide(0, 6, ("Zorblax Quintavell",))], [(1.0, "Hello there.")], seconds=6, fmt="mov",
                       size=(640, 360))
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(clip).decode(), "format": "mov"}}
    gateway_hf.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [{"type": "text", "text": "What is shown?"}, part]}],
        max_tokens=4, extra_body={"lalm_screen_text": True})
    (prompt,) = recorded.prompts
    assert prompt.startswith("What is shown?") and RULE in prompt and "Zorblax" in prompt and "Quintavell" in prompt


def test_a_picture_that_cannot_be_decoded_falls_back_to_the_audio(gateway_hf: InProcessGateway,
                                                                   recorded: RecordingEngine) -> None:
    resp = gateway_hf.http.post("/v1/audio/transcriptions", files={"file": ("broken.mkv", broken_picture_mkv())},
                                data={"model": "tiny", "response_format": "verbose_json", "lalm_screen_text": "true"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["lalm_screen_text"] == [] and body["duration"] == pytest.approx(32.0, abs=0.2)
    assert len(body["lalm_warnings"]) == 1 and "answered from the audio alone" in body["lalm_warnings"][0]
    assert resp.headers["X-Lalm-Warning"] == body["lalm_warnings"][0]
    assert len(recorded.prompts) == 3 and not any(RULE in p for p in recorded.prompts)


@pytest.fixture(scope="module")
def video_server():
    """A loopback HTTP server of the test's own serving the slide video and a short slide clip."""
    clip = slide_video([Slide(0, 6, ("Zorblax Quintavell",))], [(1.0, "Hello there.")], seconds=6, fmt="mov",
                       size=(640, 360))
    server = start_server(files={"/slides.mp4": slide_mp4(), "/clip.mov": clip})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote_hf(video_server, tiny_model: Path) -> Iterator[InProcessGateway]:
    """The gateway in this process on the transformers engine with remote audio on, only the video server
    allow-listed (the fetch guard refuses loopback otherwise)."""
    gw = InProcessGateway(Settings(engine="hf", model=str(tiny_model), served_model_name="tiny",
                                   allow_remote_audio_urls=True,
                                   url_fetch_allowlist=[f"127.0.0.1:{video_server.port}"])).start()
    yield gw
    gw.stop()


def _transcribe_chat(gw: InProcessGateway, part: dict) -> list[str]:
    """The prompts of a chat `task: transcribe` on `part` with screen text."""
    with _recording(gw) as engine:
        gw.client().chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": [part]}], temperature=0, max_tokens=8,
            extra_body={"task": "transcribe", "lalm_screen_text": True})
    return engine.prompts


def test_a_fetched_video_gets_its_screen_text_like_an_inline_one(remote_hf: InProcessGateway, video_server) -> None:
    fetched = _transcribe_chat(remote_hf, {"type": "audio_url", "audio_url": {"url": video_server.url("/slides.mp4")}})
    windows_see_their_slides(fetched)
    data_url = f"data:video/mp4;base64,{base64.b64encode(slide_mp4()).decode()}"
    inline = _transcribe_chat(remote_hf, {"type": "audio_url", "audio_url": {"url": data_url}})
    assert sorted(fetched) == sorted(inline)
    assert video_server.seen.paths == ["/slides.mp4"]  # fetched once: its picture is read from the same bytes


def test_a_fetched_clip_after_text_gets_its_screen_text_in_plain_chat(remote_hf: InProcessGateway,
                                                                      video_server) -> None:
    part = {"type": "audio_url", "audio_url": {"url": video_server.url("/clip.mov")}}
    with _recording(remote_hf) as engine:
        resp = remote_hf.http.post("/v1/chat/completions", json={
            "model": "tiny", "max_tokens": 4, "lalm_screen_text": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is shown?"}, part]}]})
    assert resp.status_code == 200, resp.text
    assert "X-Lalm-Warning" not in resp.headers
    (prompt,) = engine.prompts
    assert prompt.startswith("What is shown?") and RULE in prompt and "Zorblax" in prompt and "Quintavell" in prompt


def _record_composed(gw: InProcessGateway, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """What the built-in `default`'s text LLM is asked (each request's last message) and the previous-text prompt
    its Whisper gets for each window it hears."""
    composed = gw.http.app.state.models.get(None).engine
    asked, heard, generate, hear = [], [], composed.llm.generate, composed.asr.generate

    async def answering(messages, params):
        asked.append(messages[-1].content)
        return await generate(messages, params)

    async def hearing(messages, params):
        heard.append(messages[-1].speech.previous_text)
        return await hear(messages, params)

    monkeypatch.setattr(composed.llm, "generate", answering)
    monkeypatch.setattr(composed.asr, "generate", hearing)
    return asked, heard


def test_the_composed_default_answers_with_the_text_on_screen_apart_from_the_transcript(
        gateway_default: InProcessGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chat with a video on the built-in `default` (Whisper hears, a text LLM answers): the LLM reads what was said
    as the transcript and the slide's text after it, under the on-screen rule, not inside the transcript; the
    Whisper that hears it gets the slide's spellings as its prompt, as a transcription does."""
    asked, heard = _record_composed(gateway_default, monkeypatch)
    clip = slide_video([Slide(0, 6, ("Zorblax Quintavell",))], [(1.0, "Hello there.")], seconds=6, fmt="mov",
                       size=(640, 360))
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(clip).decode(), "format": "mov"}}
    gateway_default.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [{"type": "text", "text": "Who is on the slide?"}, part]}],
        max_tokens=4, temperature=0, extra_body={"lalm_screen_text": True})
    (prompt,) = asked
    said, rule, shown = prompt.partition(RULE)
    assert rule and "hello" in said.lower() and "Who is on the slide?" in said, prompt
    assert "Zorblax" in shown and "Zorblax" not in said, prompt  # the OCR may run the two words together
    assert heard and all(p is not None and "Zorblax" in p and RULE not in p for p in heard), heard


def test_a_composed_summary_hears_each_window_with_its_own_slide(gateway_default: InProcessGateway,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A `summarize` task on a slide video on `default`: the Whisper hearing each audio window gets the spellings
    of that window's slide, and no other's, as its prompt (the LLM reads the same lines as on-screen text)."""
    _, heard = _record_composed(gateway_default, monkeypatch)
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(slide_mp4()).decode(), "format": "mp4"}}
    gateway_default.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [part]}], temperature=0, max_tokens=8,
        extra_body={"task": "summarize", "lalm_screen_text": True})
    windows_see_their_slides([p or "" for p in heard], rule=False)


def test_each_audio_part_of_a_composed_chat_is_heard_with_its_own_slide(gateway_default: InProcessGateway,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two videos in one message on `default`: the Whisper hearing each gets the slide of that video only (the
    lines are timed on the parts joined with a second between them)."""
    _, heard = _record_composed(gateway_default, monkeypatch)
    parts = []
    for name, said in (("Zorblax Quintavell", "Hello there."), ("Przemysl Kelvinator", "Good morning.")):
        clip = slide_video([Slide(0, 5, (name,))], [(1.0, said)], seconds=5, fmt="mov", size=(640, 360))
        parts.append({"type": "input_audio", "input_audio": {"data": base64.b64encode(clip).decode(), "format": "mov"}})
    gateway_default.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [{"type": "text", "text": "Who is shown?"}, *parts]}],
        max_tokens=4, temperature=0, extra_body={"lalm_screen_text": True})
    first, second = heard[0] or "", heard[-1] or ""
    assert "Zorblax" in first and "Przemysl" not in first, heard
    assert "Przemysl" in second and "Zorblax" not in second, heard
