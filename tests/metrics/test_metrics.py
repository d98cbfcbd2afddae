"""The metrics module against hand-counted substitutions, deletions and insertions."""

from __future__ import annotations

import json

import pytest

from lalm.metrics import (
    LOOP_COMPRESSION_RATIO,
    compression_ratio,
    format_table,
    normalize,
    score_clip,
    score_corpus,
    without_insertions,
)
from lalm.tasks import NO_SPEECH

# (reference, hypothesis, hits, S, D, I), counted by hand after normalization
CASES = [
    ("the cat sat", "the cat sat", 3, 0, 0, 0),
    ("", "", 0, 0, 0, 0),  # both empty: silence answered with silence
    ("", "thank you for watching", 0, 0, 0, 4),  # empty reference: every word is an insertion
    ("the cat sat", "", 0, 0, 3, 0),  # empty hypothesis: every word deleted
    ("the cat sat", "the dog sat", 2, 1, 0, 0),
    ("the cat sat", "the cat sat on the mat", 3, 0, 0, 3),
    ("The Cat, sat!", "the cat sat", 3, 0, 0, 0),  # case and punctuation are normalized away
    ("go go go", "go", 1, 0, 2, 0),  # repeated words
    ("go", "go go go go", 1, 0, 0, 3),  # a repetition loop
    ("seven three nine", "739", 1, 0, 0, 0),  # the normalizer writes spelled-out numbers as digits
    ("it costs twenty one dollars", "it costs 21 dollars", 3, 0, 0, 0),  # both become "it costs $21"
    ("", NO_SPEECH, 0, 0, 0, 0),  # the no-speech answer counts as no output
    ("", "(No speech).", 0, 0, 0, 0),
    ("hello world", NO_SPEECH, 0, 0, 2, 0),  # ... and on speech it deletes every word
    ("colour of the sky", "color of the sky", 4, 0, 0, 0),  # British spellings are unified
]


@pytest.mark.parametrize(("ref", "hyp", "hits", "s", "d", "i"), CASES)
def test_clip_counts_match_hand_counts(ref: str, hyp: str, hits: int, s: int, d: int, i: int) -> None:
    c = score_clip(ref, hyp)
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (hits, s, d, i)
    assert c.reference_words == hits + s + d
    assert c.non_speech == (c.reference_words == 0)


# (reference, hypothesis, the hypothesis less its insertions), by hand
EDITS = [
    ("Keep your laws off my body!", "Keep your laws off my body! Thank you for watching.",
     "Keep your laws off my body!"),  # a stock phrase appended
    ("Keep your laws off my body!", "Keep your long tack off my budget.",
     "Keep your tack off my budget."),  # substitutions stay: only the inserted word goes
    ("Is your job running?", "Thank you. Is your job running?", "Is your job running?"),  # capital kept
    ("Call Oscar at 2 o'clock.", "Call Oscar at 2 o'clock. o'clock. o'clock.", "Call Oscar at 2 o'clock."),  # loop
    ("Please turn the volume down to 76 percent.", "Please turn the volume down to 76 percent. Thank you.",
     "Please turn the volume down to 76 percent."),  # "76 percent" is "76%" to the normalizer, as one span
    ("the cat sat", "the cat sat", "the cat sat"),  # nothing inserted, nothing changed
    ("", "Thank you.", ""),  # on non-speech every word is inserted
]


@pytest.mark.parametrize(("ref", "hyp", "edited"), EDITS)
def test_without_insertions_keeps_every_other_word_as_written(ref: str, hyp: str, edited: str) -> None:
    assert without_insertions(ref, hyp) == edited
    before, after = score_clip(ref, hyp), score_clip(ref, edited)
    assert after.insertions == 0
    assert (after.hits, after.substitutions) == (before.hits, before.substitutions)


def test_normalize_drops_case_punctuation_and_the_no_speech_answer() -> None:
    assert normalize("Hello, World!") == "hello world"
    assert normalize(NO_SPEECH) == ""
    assert normalize("  a   b ") == "a b"


def test_corpus_sums_counts_before_dividing() -> None:
    refs = ["the cat sat", "", "go", "", "one two"]
    hyps = ["the dog sat down", "thank you", "go", NO_SPEECH, ""]
    r = score_corpus(refs, hyps, ids=[f"c{i}" for i in range(5)])
    # clip by clip: (h,S,D,I) = (2,1,0,1) (0,0,0,2) (1,0,0,0) (0,0,0,0) (0,0,1,0); "one two" -> "12", one word
    assert (r.hits, r.substitutions, r.deletions, r.insertions) == (3, 1, 1, 3)
    assert r.reference_words == 5
    assert r.n_clips == 5 and r.n_speech == 3 and r.n_non_speech == 2
    assert r.wer == pytest.approx((1 + 1 + 3) / 5)
    assert r.speech_wer == pytest.approx((1 + 1 + 1) / 5)  # the 2 words on silence are not speech errors
    assert r.insertion_rate == pytest.approx(3 / 5)
    assert r.speech_insertion_rate == pytest.approx(1 / 5)
    assert r.non_speech_output_rate == pytest.approx(1 / 2)  # "thank you" yes, the no-speech answer no
    assert r.inserted_words_per_clip == pytest.approx(3 / 5)
    assert [c.id for c in r.clips] == ["c0", "c1", "c2", "c3", "c4"]
    # per-clip WER: errors over reference words; on non-speech, the words written
    assert [c.wer for c in r.clips] == pytest.approx([2 / 3, 2.0, 0.0, 0.0, 1.0])


def test_report_json_and_table() -> None:
    before = score_corpus(["a b", ""], ["a b c", "x"])
    after = score_corpus(["a b", ""], ["a b", ""])
    data = json.loads(before.to_json())
    assert data["summary"]["insertions"] == 2
    assert data["clips"][1]["hypothesis"] == "x"
    assert "clips" not in before.to_dict(per_clip=False)
    table = format_table({"before": before, "after": after})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "before", "after"]
    row = next(line for line in lines if line.startswith("non_speech_output_rate"))
    assert row.split()[1:] == ["100.00%", "0.00%"]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        score_corpus(["a", "b"], ["a"])


def test_looping_answers_are_those_above_whispers_compression_ratio() -> None:
    loop = "and then we went home " * 6
    report = score_corpus(["we went home", "we went home", ""], [loop, "we went home", "thank you"])
    assert [c.looping for c in report.clips] == [True, False, False]
    assert report.looping_answers == 1 and report.summary()["looping_answers"] == 1
    assert compression_ratio(loop) > LOOP_COMPRESSION_RATIO > compression_ratio("we went home")
    assert "looping_answers" in report.table()
