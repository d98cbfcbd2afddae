"""No time lalm reports lies after the audio: segment and word ends from lalm.timestamps (bounded by their
window's end, the audio's end for the last window) and cue ends from lalm.subtitles (bounded by `until`, or
by the last word without it), over many random durations and offsets; and every start <= its end."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lalm.align import AlignedWord
from lalm.subtitles import SubtitleRules, cues, sentence_segments, srt, timestamp, vtt
from lalm.synth import espeak
from lalm.timestamps import window_segments

SR = 16000
TEXT = "Please call Stella and ask her to bring these things with her from the store."


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return espeak(TEXT)


def _times(text: str) -> list[float]:
    """Every HH:MM:SS,mmm / HH:MM:SS.mmm of an SRT or WebVTT text, in seconds."""
    return [int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
            for h, m, s, ms in re.findall(r"(\d\d):(\d\d):(\d\d)[,.](\d{3})", text)]


def _check_cues(items, until: float, words: list[AlignedWord]) -> None:
    assert [w for c in items for w in c.text.split()] == [w.word for w in words]
    assert all(c.start <= c.end <= until for c in items)
    assert all(a.end <= b.start for a, b in itertools.pairwise(items))
    for text in (srt(items), vtt(items)):
        # written to the millisecond: no later than the audio's end written so
        assert max(_times(text), default=0.0) <= _times(timestamp(until))[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.integers(SR // 4, 6 * SR), offset=st.floats(0, 5000, allow_subnormal=False))
def test_no_segment_word_or_cue_ends_after_the_audio(sentence, keep: int, offset: float) -> None:
    """A window that is the recording's end: the sentence cut after `keep` samples (any length, mostly not a
    whole millisecond) or followed by silence, `offset` seconds into the recording."""
    samples = np.pad(sentence, (0, max(0, keep - len(sentence))))[:keep]
    audio_end = offset + keep / SR
    segments = window_segments(samples, offset, TEXT)
    words = [w for s in segments for w in s.words]
    assert segments and [w.word for w in words] == TEXT.split()
    for item in [*segments, *words]:
        assert offset - 1e-9 <= item.start <= item.end <= audio_end
    assert all(s.end == s.words[-1].end for s in segments)
    groups = [list(s.words) for s in segments]
    _check_cues(cues(groups, until=audio_end), audio_end, words)
    _check_cues(cues(groups), words[-1].end, words)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(1, 40), duration=st.floats(0.5, 20_000, allow_subnormal=False))
def test_cues_never_outlast_the_audio(data, n: int, duration: float) -> None:
    """Words anywhere up to the audio's end, some at its very end (the last cue's lengthening to its minimum
    and the rounding to milliseconds could carry them past it)."""
    edges = sorted(data.draw(st.lists(st.floats(0, duration, allow_subnormal=False), min_size=2 * n,
                                      max_size=2 * n)))
    if data.draw(st.booleans()):
        edges[-1] = duration
    words = [AlignedWord(f"w{i}.", edges[2 * i], edges[2 * i + 1]) for i in range(n)]
    rules = SubtitleRules()
    _check_cues(cues(sentence_segments(words, rules), rules, until=duration), duration, words)
    _check_cues(cues(sentence_segments(words, rules), rules), words[-1].end, words)
