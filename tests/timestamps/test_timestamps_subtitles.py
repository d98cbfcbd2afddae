"""lalm.subtitles: sentence-sized segments and SRT / WebVTT cues that keep the subtitle rules."""

from __future__ import annotations

import itertools
import re

import pytest

from lalm.align import AlignedWord
from lalm.subtitles import Cue, SubtitleRules, cues, sentence_segments, srt, vtt

RULES = SubtitleRules()
TEXT = ("So this is the plan. We start early on Monday, drive north for about three hours, and stop for lunch "
        "somewhere near the lake; then we walk. Questions? The extraordinarily-long-hyphenated-compound-word-here "
        "is fine too and after that we keep talking without any punctuation for quite a while so that the "
        "splitter has to find its own places to cut")


def _words(text: str = TEXT, *, pause_every: int = 9) -> list[AlignedWord]:
    """Words at 0.3 s each with 0.05 s between them, and a 0.8 s pause after every `pause_every`-th."""
    out, t = [], 0.5
    for i, word in enumerate(text.split()):
        out.append(AlignedWord(word, round(t, 3), round(t + 0.3, 3)))
        t += 0.35 + (0.8 if (i + 1) % pause_every == 0 else 0.0)
    return out


def test_segments_are_sentence_or_pause_sized_and_keep_every_word() -> None:
    words = _words()
    segments = sentence_segments(words)
    assert [w for s in segments for w in s] == words
    for s in segments:
        assert len(" ".join(w.word for w in s)) <= RULES.segment_chars or len(s) == 1
        assert s[-1].end - s[0].start <= RULES.segment_seconds
    ends = [s[-1].word for s in segments]
    assert "plan." in ends and "Questions?" in ends
    # a pause of 0.8 s always ends a segment
    for s in segments:
        assert all(b.start - a.end < RULES.pause_seconds for a, b in itertools.pairwise(s))


def test_long_unpunctuated_speech_is_cut_at_clause_ends_first() -> None:
    words = _words("one two three four five six, seven eight nine ten eleven twelve thirteen fourteen "
                   "fifteen sixteen seventeen eighteen nineteen twenty", pause_every=1000)
    segments = sentence_segments(words)
    assert len(segments) >= 2 and segments[0][-1].word == "six,"


def _check_cues(items: list[Cue], words: list[AlignedWord]) -> None:
    assert " ".join(c.text.replace("\n", " ") for c in items).split() == [w.word for w in words]
    for c in items:
        assert 1 <= len(c.lines) <= RULES.max_lines
        assert all(len(line) <= RULES.line_chars or " " not in line for line in c.lines)
        assert c.end - c.start <= RULES.max_seconds + 1e-9
    for a, b in itertools.pairwise(items):
        assert a.start <= a.end <= b.start
        # shorter than the minimum only where the next cue follows at once
        assert a.end - a.start >= RULES.min_seconds or a.end == b.start


def test_cues_keep_the_rules() -> None:
    words = _words()
    items = cues(sentence_segments(words))
    _check_cues(items, words)
    assert len(items) > 5


def test_short_cues_are_lengthened_without_overlap() -> None:
    words = [AlignedWord("Yes.", 1.0, 1.2), AlignedWord("No.", 1.5, 1.7), AlignedWord("Maybe.", 5.0, 5.3)]
    items = cues(sentence_segments(words), until=10.0)
    assert [(c.start, c.end) for c in items] == [(1.0, 1.5), (1.5, 2.5), (5.0, 6.0)]
    # never past the audio's end; without it, the last cue ends with its last word
    assert [(c.start, c.end) for c in cues(sentence_segments(words), until=5.5)][-1] == (5.0, 5.5)
    assert [(c.start, c.end) for c in cues(sentence_segments(words))][-1] == (5.0, 5.3)


def test_srt_and_vtt_are_well_formed_and_escaped() -> None:
    items = [Cue(0.5, 2.0, ("a --> b", "x")), Cue(3661.25, 3662.0, ("<i>&",))]
    s = srt(items)
    assert s == "1\n00:00:00,500 --> 00:00:02,000\na -> b\nx\n\n2\n01:01:01,250 --> 01:01:02,000\n<i>&\n\n"
    v = vtt(items)
    assert v.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:02.000\na -> b\nx\n\n")
    assert "&lt;i>&amp;" in v
    assert len(re.findall("-->", s)) == 2


@pytest.mark.parametrize("text", ["", "word"])
def test_tiny_inputs(text: str) -> None:
    words = _words(text) if text else []
    items = cues(sentence_segments(words))
    assert len(items) == len(words)


def test_a_title_before_a_name_ends_no_sentence() -> None:
    """"Mr." and "e.g." keep their sentence together; a real full stop still ends one."""
    text = "And Mr. John Dashwood left, e.g. early. Then Dr. Smith came."
    words = [AlignedWord(w, i * 0.4, i * 0.4 + 0.3) for i, w in enumerate(text.split())]
    assert [" ".join(w.word for w in s) for s in sentence_segments(words)] == [
        "And Mr. John Dashwood left, e.g. early.", "Then Dr. Smith came."]
