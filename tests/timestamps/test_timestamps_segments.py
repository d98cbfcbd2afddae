"""lalm.timestamps: one window's answer -> sentence-sized segments with word times, avg_logprob from the
engine's token logprobs and no_speech_prob from the VAD."""

from __future__ import annotations

import numpy as np
import pytest

from lalm.synth import espeak
from lalm.timestamps import window_segments


def test_a_window_becomes_timed_sentences() -> None:
    first, second = "The weather is cloudy today.", "Can you hear me now?"
    pause = np.zeros(8000, np.float32)
    audio = np.concatenate([pause, espeak(first), pause, espeak(second), pause])
    raw = f" {first} {second}\n"
    # tokens spell the raw text; the first sentence's tokens at -0.1, the second's at -2.0
    tokens = [(" The", -0.1), (" weather is cloudy", -0.1), (" today.", -0.1), (" Can you", -2.0),
              (" hear me now?", -2.0), ("\n", -5.0)]
    segments = window_segments(audio, 60.0, raw, token_logprobs=tokens)
    assert [s.text for s in segments] == [first, second]
    assert [w.word for s in segments for w in s.words] == f"{first} {second}".split()
    assert [s.avg_logprob for s in segments] == [pytest.approx(-0.1), pytest.approx(-2.0)]
    duration = len(audio) / 16000
    for s in segments:
        assert 60.0 <= s.start <= s.words[0].start <= s.words[-1].end <= s.end <= 60.0 + duration
        assert s.no_speech_prob < 0.2
    assert segments[0].end <= segments[1].start


def test_text_over_noise_gets_a_high_no_speech_prob_and_no_logprobs() -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * 16000).astype(np.float32)
    (segment,) = window_segments(noise, 0.0, "Thank you.")
    assert segment.no_speech_prob > 0.8 and segment.avg_logprob == 0.0
    assert window_segments(noise, 0.0, "  ") == []


def test_one_unplaceable_word_over_long_speech_keeps_its_segment_within_the_rules() -> None:
    """A random model may write one made-up word for many seconds of speech: the aligner cannot place it and
    spreads it over the speech, but its segment still lasts at most the rules' segment_seconds (7 s)."""
    sentence = espeak("The weather is cloudy today and we will stay inside to read some books.")
    audio = np.concatenate([sentence, sentence, sentence])
    assert len(audio) / 16000 > 8.0
    (segment,) = window_segments(audio, 30.0, "cransPleaseGtyangu")
    assert segment.text == "cransPleaseGtyangu" and not segment.words[0].aligned
    assert 30.0 <= segment.start < segment.end <= segment.start + 7.0


def test_token_spans_step_over_space_a_detokenizer_added() -> None:
    # vLLM joins the text around a skipped special token with a space no token wrote
    from lalm.timestamps import _token_spans

    text = " Hello world again"
    spans = _token_spans(text, [(" Hello", -1.0), ("world", -2.0), (" again", -3.0)])
    assert [text[s:e] for s, e, _ in spans] == [" Hello", "world", " again"]


def test_token_spans_give_control_tokens_no_room() -> None:
    # a special token mid-answer is reported by its control string, which the text does not show
    from lalm.timestamps import _token_spans

    text = "Hello world"
    spans = _token_spans(text, [("Hello", -1.0), ("<|endoftext|>", -2.0), (" world", -3.0), ("<|im_end|>", -0.1)])
    assert [text[s:e] for s, e, _ in spans] == ["Hello", "", " world", ""]


def test_token_spans_step_over_bytes_that_never_formed_a_character() -> None:
    # a token that leaves a character unfinished is reported as ""; if no token finishes it, the text shows
    # U+FFFD that no token wrote
    from lalm.timestamps import _token_spans

    text = "ab\ufffdcd span"
    spans = _token_spans(text, [("ab", -1.0), ("", -2.0), ("cd", -3.0), (" span", -4.0)])
    assert [text[s:e] for s, e, _ in spans] == ["ab", "", "cd", " span"]


def test_token_spans_give_tokens_the_text_does_not_hold_no_room() -> None:
    # the tokens of a stop string are generated but cut off the answer
    from lalm.timestamps import _token_spans

    text = "Hello world"
    spans = _token_spans(text, [("Hello", -1.0), ("STOP", -2.0), (" world", -3.0)])
    assert [text[s:e] for s, e, _ in spans] == ["Hello", "", " world"]
