"""lalm.align: forced alignment against word times known by construction (espeak-ng words joined with known
gaps, lalm.synth.word_timing_set), and its guarantees on text that does not fit the audio."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lalm.align import AlignedWord, align_words, boundary_errors, interpolate_words
from lalm.synth import espeak, word_timing_set


@pytest.mark.parametrize("gaps", [(0.05, 0.35), (0.0, 0.02)], ids=["pauses", "no-pauses"])
def test_word_boundaries_are_within_the_bar(gaps) -> None:
    errors, unplaced, total = [], 0, 0
    for audio, text, truth in word_timing_set(8, gaps=gaps):
        words = align_words(audio, text)
        assert [w.word for w in words] == text.split()
        errors.append(boundary_errors(words, truth))
        unplaced += sum(not w.aligned for w in words)
        total += len(words)
    e = np.concatenate(errors)
    # the bar: median <= 50 ms, 90th percentile <= 150 ms (measured here: ~5-10 ms and ~35-50 ms)
    assert np.median(e) <= 0.050 and np.percentile(e, 90) <= 0.150
    assert unplaced <= 0.05 * total


def _check(words: list[AlignedWord], text: str, duration: float) -> None:
    assert [w.word for w in words] == text.split()
    assert all(0.0 <= w.start <= w.end <= duration for w in words)
    assert all(a.end <= b.start for a, b in itertools.pairwise(words))


def test_words_without_sound_or_dictionary_entry_are_kept() -> None:
    audio = espeak("The quick brown fox jumps over Zorblax's lazy dog, 4 times.")
    text = "The quick — brown fox jumps over Zorblax's lazy dog, 4 times."
    words = align_words(audio, text)
    _check(words, text, len(audio) / 16000)
    # the dash has no sound: interpolated and flagged; the made-up name is placed from its spelling
    assert [w.word for w in words if not w.aligned] == ["—"]


def test_text_that_does_not_match_the_audio_still_gets_every_word() -> None:
    audio = espeak("Good morning everyone, welcome to the meeting.")
    text = "zxq blorft 123 ∑∑ the the the banana " * 5
    _check(align_words(audio, text), text, len(audio) / 16000)
    silence = np.zeros(16000, np.float32)
    _check(align_words(silence, "hello world"), "hello world", 1.0)
    assert align_words(audio, "   ") == []


def test_other_languages_are_spread_over_the_speech() -> None:
    audio = np.concatenate([np.zeros(16000, np.float32), espeak("Bonjour à tous", voice="fr"),
                            np.zeros(16000, np.float32)])
    speech = [(1.0, len(audio) / 16000 - 1.0)]
    words = align_words(audio, "Bonjour à tous", language="fr", speech=speech)
    _check(words, "Bonjour à tous", len(audio) / 16000)
    assert not any(w.aligned for w in words)
    assert words[0].start == pytest.approx(1.0) and words[-1].end == pytest.approx(speech[0][1], abs=1e-3)


def test_interpolation_fills_between_placed_neighbours() -> None:
    words = interpolate_words(["a", "bb", "c", "dd"], [(0.5, 1.0), None, None, (3.0, 3.5)], 4.0)
    assert [w.aligned for w in words] == [True, False, False, True]
    assert words[1].start == 1.0 and words[2].end == 3.0 and words[1].end == pytest.approx(1.0 + 2 * 3 / 5)
    lead = interpolate_words(["x", "y"], [None, None], 10.0, speech=[(2.0, 3.0), (7.0, 8.0)])
    assert (lead[0].start, lead[1].end) == (2.0, 8.0)
    with pytest.raises(ValueError):
        boundary_errors(words, [("z", 0.0, 1.0)])
