"""lalm.engines.token_text on the tiny checkpoint's byte-level tokenizer, which splits every non-ASCII character
into one token a byte: the tokens' texts join into the text, a token that leaves a character unfinished is "",
the one that completes it carries the whole character, and special tokens show their control string."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from lalm.engines.token_text import token_text


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.mark.parametrize("text", ["café au lait", "☃ snow", "naïve 日本 ok", "plain ascii"])
def test_token_texts_join_into_the_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    texts = [token_text(tokenizer.decode, t, ids, i) for i, t in enumerate(ids)]
    assert "".join(texts) == tokenizer.decode(ids) == text
    assert "\ufffd" not in "".join(texts)
    if not text.isascii():
        # the byte tokens of a character: "" until the last, which shows the character
        assert "" in texts
        assert any(len(t) == 1 and not t.isascii() for t in texts)


def test_a_character_left_unfinished_shows_nothing(tokenizer):
    ids = tokenizer("☃", add_special_tokens=False)["input_ids"]
    assert len(ids) == 3
    assert token_text(tokenizer.decode, ids[1], ids, 1) == ""
    assert token_text(tokenizer.decode, ids[2], ids, 2) == "☃"
    assert token_text(tokenizer.decode, ids[0], ids, 0) == ""  # nothing before it to finish it with


def test_special_tokens_show_their_control_string(tokenizer):
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert token_text(tokenizer.decode, end, [10, 11], 2) == "<|im_end|>"
