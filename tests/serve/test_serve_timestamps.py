"""Word timestamps, sentence-sized segments and subtitles through the API: the real openai SDK reads `words`
and `segments` of verbose_json, and a 10-minute recording through the real vLLM server comes back as
srt / vtt cues that keep the subtitle rules, words that are the transcript's own and in order."""

from __future__ import annotations

import html
import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import SENTENCES
from media import encode
from test_serve_transcriptions import _cues, _transcribe

from lalm.synth import espeak

MAX_LINES, LINE_CHARS, MIN_S, MAX_S, SEGMENT_CHARS = 2, 42, 1.0, 7.0, 84


def test_openai_sdk_reads_words_and_segments(gateway, speech_b):
    client = gateway.client()
    audio = encode(np.concatenate([np.zeros(8000, np.float32), speech_b, np.zeros(16000, np.float32)]), "wav")
    out = _transcribe(client, audio, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    plain = _transcribe(client, audio)
    assert out.text == plain.text  # word timestamps do not change the transcript
    assert [w.word for w in out.words] == out.text.split()
    starts = [w.start for w in out.words]
    assert starts == sorted(starts) and all(w.start <= w.end <= out.duration for w in out.words)
    # every word lies inside its segment, and the segments hold the words in order
    words = iter(out.words)
    for seg in out.segments:
        for text in seg.text.split():
            w = next(words)
            assert w.word == text and seg.start <= w.start <= w.end <= seg.end
    assert next(words, None) is None
    # without `word` there are no words, and segments are the same
    segments_only = _transcribe(client, audio, response_format="verbose_json", timestamp_granularities=["segment"])
    assert segments_only.words is None
    assert [(s.start, s.end, s.text) for s in segments_only.segments] == [(s.start, s.end, s.text)
                                                                          for s in out.segments]


@pytest.fixture(scope="module")
def ten_minutes() -> np.ndarray:
    """600 s of espeak sentences with pauses of 0.4-1.2 s, and 3 s every tenth sentence (16 kHz float32)."""
    rng = np.random.default_rng(1)
    spoken = [espeak(s, voice=v) for s in SENTENCES for v in ("en-us", "en-us+f3")]
    parts, total, i = [], 0, 0
    while total < 600 * 16000:
        gap = np.zeros(int((3.0 if i % 10 == 9 else rng.uniform(0.4, 1.2)) * 16000), np.float32)
        parts += [spoken[i % len(spoken)], gap]
        total += len(parts[-2]) + len(gap)
        i += 1
    return np.concatenate(parts)[: 600 * 16000]


def _check_cues(cues: list[tuple[float, float, str]], unescape) -> None:
    for start, end, text in cues:
        lines = unescape(text).split("\n")  # as shown: WebVTT's &lt; is one character
        assert 1 <= len(lines) <= MAX_LINES
        assert all(len(line) <= LINE_CHARS or " " not in line.strip() for line in lines), lines
        assert 0 <= end - start <= MAX_S + 0.001
    for (s0, e0, _), (s1, _, _) in itertools.pairwise(cues):
        assert s0 <= e0 <= s1 + 0.0005, "cues overlap or are out of order"
        assert e0 - s0 >= MIN_S - 0.001 or abs(e0 - s1) < 0.0015, "a short cue that could have stayed longer"


@pytest.mark.slow
def test_ten_minute_recording_makes_subtitles_within_the_rules(gateway_vllm, ten_minutes):
    client = gateway_vllm.client(timeout=1800)
    flac = encode(ten_minutes, "flac")
    formats = {"json": {}, "srt": {}, "vtt": {},
               "verbose_json": {"timestamp_granularities": ["word", "segment"]}}
    with ThreadPoolExecutor(len(formats)) as pool:
        futures = {f: pool.submit(_transcribe, client, flac, "talk.flac", response_format=f, **kw)
                   for f, kw in formats.items()}
        out = {f: fut.result() for f, fut in futures.items()}
    verbose, words = out["verbose_json"], out["verbose_json"].text.split()
    assert abs(verbose.duration - 600.0) < 0.05
    assert verbose.text == out["json"].text  # the same transcript as without timestamps
    # verbose_json: the transcript's words, monotonic, each inside its segment; segments sentence-sized
    assert [w.word for w in verbose.words] == words
    assert all(a.start <= b.start and a.end <= b.start + 1e-6 for a, b in itertools.pairwise(verbose.words))
    timed = iter(verbose.words)
    for seg in verbose.segments:
        assert seg.end - seg.start <= MAX_S + 1e-6
        assert len(seg.text) <= SEGMENT_CHARS or " " not in seg.text
        for _ in seg.text.split():
            w = next(timed)
            assert seg.start <= w.start <= w.end <= seg.end
    assert all(a.end <= b.start for a, b in itertools.pairwise(verbose.segments))
    # cues: the same words in order, within the rules, covering the speech from its start to its end
    for doc, unescape in ((out["srt"], str), (out["vtt"], html.unescape)):
        cues = _cues(doc)
        _check_cues(cues, unescape)
        assert unescape(" ".join(text for _, _, text in cues)).split() == [w.replace("-->", "->") for w in words]
        assert cues[0][0] < 1.0 and cues[-1][1] > 590.0
        assert len(cues) > 100
    assert out["srt"].count(" --> ") == len(_cues(out["srt"]))
