"""Subtitle and verbose_json building blocks (lalm.formats)."""

from __future__ import annotations

from lalm.align import AlignedWord
from lalm.formats import srt, timestamp, vtt
from lalm.longform.run import Segment


def test_timestamps():
    assert timestamp(0) == "00:00:00,000"
    assert timestamp(3723.4567) == "01:02:03,457"
    assert timestamp(59.9996, ".") == "00:01:00.000"
    assert timestamp(-0.001) == "00:00:00,000"


def test_srt_and_vtt_documents():
    words = (AlignedWord("Hello", 0.0, 0.4), AlignedWord("there.", 0.5, 0.9))
    arrow = (AlignedWord("Line", 30.25, 30.5), AlignedWord("-->", 30.6, 30.7), AlignedWord("x", 30.8, 31.5))
    segs = [Segment(0.0, 0.9, "Hello there.", words), Segment(30.25, 31.5, "Line --> x", arrow)]
    assert srt(segs) == ("1\n00:00:00,000 --> 00:00:01,000\nHello there.\n\n"
                         "2\n00:00:30,250 --> 00:00:31,500\nLine -> x\n\n")
    assert vtt(segs) == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello there.\n\n"
                         "00:00:30.250 --> 00:00:31.500\nLine -> x\n\n")
    assert srt([]) == "" and vtt([]) == "WEBVTT\n\n"


def test_a_segment_without_word_times_still_makes_cues_within_the_rules():
    text = "Line\nbreaks and\n\nblank lines in a window long answer " * 4
    doc = srt([Segment(0.0, 29.5, text)])
    cues = [c.split("\n") for c in doc.strip().split("\n\n")]
    assert " ".join(" ".join(c[2:]) for c in cues).split() == text.split()
    assert all(len(c) <= 4 and all(len(line) <= 42 for line in c[2:]) for c in cues)
