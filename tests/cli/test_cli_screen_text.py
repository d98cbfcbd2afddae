"""`lalm transcribe --screen-text` on the slide video (tests/media.py, made at test time) with the tiny model:
the command runs in this process (typer's runner) with the transformers engine wrapped to record each
window's prompt, so the test sees that every window was asked with the text on screen during it, as the
gateway does (tests/serve/test_serve_screen_text.py); the lines read are listed in verbose_json, or on
stderr beside text and subtitles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media import SLIDES, broken_picture_mkv, slide_mp4
from screen_text_support import RULE, RecordingEngine, windows_see_their_slides
from typer.testing import CliRunner

import lalm.engines.hf
from lalm.cli import app


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[RecordingEngine]:
    """The engines `lalm transcribe` makes, each recording its prompts."""
    made: list[RecordingEngine] = []
    real = lalm.engines.hf.HFEngine

    def engine(model: Path, **options: object) -> RecordingEngine:
        made.append(RecordingEngine(real(model, **options)))
        return made[-1]

    monkeypatch.setattr(lalm.engines.hf, "HFEngine", engine)
    return made


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-screen") / "slides.mp4"
    path.write_bytes(slide_mp4())
    return path


def _transcribe(*args: str):
    return CliRunner().invoke(app, ["transcribe", *args], catch_exceptions=False)


def test_verbose_json_windows_get_the_text_on_screen(video: Path, tiny_model: Path,
                                                     recorded: list[RecordingEngine]) -> None:
    out = _transcribe(str(video), "--model", str(tiny_model), "--max-tokens", "8", "--format", "verbose_json",
                      "--screen-text")
    assert out.exit_code == 0, out.stderr
    (engine,) = recorded
    windows_see_their_slides(engine.prompts)
    body = json.loads(out.stdout)
    zorblax = next(x for x in body["lalm_screen_text"] if x["text"] == "Zorblax Quintavell")
    assert zorblax["start"] == pytest.approx(SLIDES[0].start, abs=0.6)
    assert zorblax["end"] == pytest.approx(SLIDES[0].end, abs=0.6)
    assert body["lalm_warnings"] == []
    assert "screen text [" not in out.stderr and "warning:" not in out.stderr  # the JSON holds them


@pytest.mark.parametrize("fmt", ["text", "srt"])
def test_text_and_subtitles_list_the_lines_on_stderr(video: Path, tiny_model: Path, recorded: list[RecordingEngine],
                                                     fmt: str) -> None:
    out = _transcribe(str(video), "--model", str(tiny_model), "--max-tokens", "8", "--format", fmt,
                      "--screen-text")
    assert out.exit_code == 0, out.stderr
    windows_see_their_slides(recorded[0].prompts)
    shown = [line for line in out.stderr.splitlines() if line.startswith("screen text [")]
    assert any(line.endswith("] Zorblax Quintavell") and "0.00 ->" in line for line in shown), out.stderr
    assert "Zorblax" not in out.stdout  # stdout holds only the answer (the tiny model does not read slides)


def test_off_by_default_and_the_setting_turns_it_on(video: Path, tiny_model: Path, recorded: list[RecordingEngine],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = _transcribe(str(video), "--model", str(tiny_model), "--max-tokens", "4", "--format", "verbose_json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["lalm_screen_text"] is None
    assert len(recorded[0].prompts) == 3 and not any(RULE in p for p in recorded[0].prompts)
    monkeypatch.setenv("LALM_SCREEN_TEXT", "true")
    out = _transcribe(str(video), "--model", str(tiny_model), "--max-tokens", "4")
    assert out.exit_code == 0, out.stderr
    windows_see_their_slides(recorded[1].prompts)
    out = _transcribe(str(video), "--model", str(tiny_model), "--max-tokens", "4", "--no-screen-text")
    assert out.exit_code == 0 and not any(RULE in p for p in recorded[2].prompts)


def test_a_picture_that_cannot_be_decoded_is_a_warning(tmp_path: Path, tiny_model: Path,
                                                       recorded: list[RecordingEngine]) -> None:
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(broken_picture_mkv())
    out = _transcribe(str(broken), "--model", str(tiny_model), "--max-tokens", "4", "--screen-text")
    assert out.exit_code == 0, out.stderr
    assert "\nwarning: The video's picture cannot be read" in "\n" + out.stderr, out.stderr
    assert len(recorded[0].prompts) == 3 and not any(RULE in p for p in recorded[0].prompts)
