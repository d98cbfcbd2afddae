"""Reading on-screen text from a slide video made at test time (tests/screen_text/conftest.py): the drawn
words come back, each line with the time it was on screen; a picture that cannot be read gives a warning,
not an exception; a file without a picture costs no OCR."""

from __future__ import annotations

import io
import threading

import pytest
from media import SLIDE_SECONDS, SLIDES, broken_picture_mkv, encode, slide_mp4

from lalm.audio import decode_audio
from lalm.screen_text import read_screen_text, visible_lines, window_context
from lalm.synth_video import Slide, slide_video


@pytest.fixture(scope="module")
def found():
    return read_screen_text(slide_mp4())


def _letters(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _line_of(word: str, lines) -> list:
    # the recogniser sometimes drops the space between two words ("OksanavichBrumley"): a word counts as read
    # when its letters appear in a line in order, spaces aside
    return [x for x in lines if _letters(word) in _letters(x.text)]


def test_drawn_words_are_read_with_the_time_they_were_on_screen(found) -> None:
    words = [(w, s) for s in SLIDES for line in s.lines for w in line.split()]
    recovered = [(w, s) for w, s in words if _line_of(w, found.lines)]
    assert len(recovered) >= 0.9 * len(words), (found.lines, set(words) - set(recovered))
    for word, slide in recovered:
        line = _line_of(word, found.lines)[0]
        # probes every 0.5 s: a line starts at the first probe that shows it and ends one probe after the last
        assert line.start == pytest.approx(slide.start, abs=0.6), (word, line)
        assert line.end == pytest.approx(slide.end, abs=0.6), (word, line)
    assert found.warning is None


def test_each_picture_is_read_once_and_nothing_else_is_kept(found) -> None:
    # five pictures (slide 1, slide 1 + subtitle, slide 1 again, slide 2, slide 3) and the black screen, which
    # is never OCR'd: a picture that stays on screen is not read again
    assert found.frames_read == 5, found
    assert found.probes == pytest.approx(SLIDE_SECONDS / 0.5, abs=2)
    drawn = {line.casefold() for s in SLIDES for line in s.lines}
    assert len(found.lines) == len(drawn)  # one line per drawn line: no duplicates, nothing invented
    assert all(x.score >= 0.8 for x in found.lines)


def test_each_window_gets_only_the_lines_around_it(found) -> None:
    # the audio windows of the three sentences lie inside their slides, more than the margin from the edges
    for slide, (start, end) in zip([SLIDES[0], SLIDES[2], SLIDES[3]], [(2.8, 6.5), (12.8, 16.0), (22.8, 26.0)],
                                   strict=True):
        context = window_context(found.lines, start, end, margin=2.0, max_tokens=400)
        shown = {x.text for x in visible_lines(found.lines, start, end, 2.0)}
        others = {x.text for x in found.lines} - shown
        assert shown and all(f'"{t}"' in context for t in shown), context
        assert not any(t in context for t in others), context
        assert all(_line_of(w, visible_lines(found.lines, start, end, 2.0)) for w in slide.lines[0].split())


def test_a_picture_that_cannot_be_read_gives_a_warning() -> None:
    result = read_screen_text(broken_picture_mkv())
    assert result.lines == [] and result.frames_read == 0
    assert result.warning and "cannot be read" in result.warning
    assert decode_audio(broken_picture_mkv()).duration == pytest.approx(SLIDE_SECONDS, abs=0.2)  # the sound is intact


def test_a_stopped_reading_ends_at_once_and_restores_the_file_position() -> None:
    stop = threading.Event()
    stop.set()
    upload = io.BytesIO(b"xyz" + slide_mp4())
    upload.seek(3)
    result = read_screen_text(upload, stop=stop)
    assert result.lines == [] and result.frames_read == 0 and result.probes <= 1
    assert upload.tell() == 3


def test_black_and_audio_only_files_cost_no_ocr() -> None:
    black = slide_video([Slide(0, 6, ())], [(1.0, "Nothing is shown.")], seconds=6, fmt="mkv", size=(640, 360))
    result = read_screen_text(black)
    assert result.lines == [] and result.frames_read == 0 and result.probes >= 10 and result.warning is None
    wav = encode(decode_audio(slide_mp4()).samples, "wav")
    result = read_screen_text(wav)
    assert result.lines == [] and result.probes == 0 and result.warning is None


def test_ocr_frames_are_capped_per_minute_of_video() -> None:
    # a new picture every 0.5 s for 12 s: 24 changes, but at most 12 a minute may be read: 10 s worth (2) at
    # the start, then 12/60 per second of video: reads at 0, 0.5, 5.5 and 10.5 s
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
             "lima"]
    slides = [Slide(i * 0.5, (i + 1) * 0.5, (f"{words[i % 12]} {words[(5 * i) % 12]} {i}",)) for i in range(24)]
    video = slide_video(slides, [(0.5, "Counting.")], seconds=12, fmt="mp4", size=(960, 540))
    result = read_screen_text(video, max_frames_per_minute=12)
    assert result.frames_read == 4, result
    unlimited = read_screen_text(video, max_frames_per_minute=600)
    assert unlimited.frames_read == 24 and len(unlimited.lines) == 24, unlimited
