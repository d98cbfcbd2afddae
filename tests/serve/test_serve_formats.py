"""Subtitle and verbose_json building blocks (lalm.serve.formats)."""

from __future__ import annotations

from lalm.longform.run import Segment
from lalm.serve.formats import compression_ratio, srt, timestamp, vtt


def test_timestamps():
    assert timestamp(0) == "00:00:00,000"
    assert timestamp(3723.4567) == "01:02:03,457"
    assert timestamp(59.9996, ".") == "00:01:00.000"
    assert timestamp(-0.001) == "00:00:00,000"


def test_srt_and_vtt_documents():
    segs = [Segment(0.0, 29.5, "Hello there."), Segment(30.25, 61.0, "Line\nbreaks --> and\n\nblank lines")]
    assert srt(segs) == ("1\n00:00:00,000 --> 00:00:29,500\nHello there.\n\n"
                         "2\n00:00:30,250 --> 00:01:01,000\nLine breaks -> and blank lines\n\n")
    assert vtt(segs) == ("WEBVTT\n\n00:00:00.000 --> 00:00:29.500\nHello there.\n\n"
                         "00:00:30.250 --> 00:01:01.000\nLine breaks -> and blank lines\n\n")
    assert srt([]) == "" and vtt([]) == "WEBVTT\n\n"


def test_compression_ratio_flags_repetition():
    assert compression_ratio("") == 0.0
    varied = compression_ratio("The quick brown fox jumps over the lazy dog.")
    looped = compression_ratio("the the the the the the the the the the the the the the the the the the")
    assert looped > 2.4 > varied
