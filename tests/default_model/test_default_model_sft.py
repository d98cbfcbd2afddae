"""The SFT stage's shuffled-word copy rows: each is one training text's words in another order, never a
non-speech clip's empty reference."""

from __future__ import annotations

import numpy as np
import pytest

from lalm.default_model.sft import shuffled_words


def test_a_copy_row_holds_one_texts_words_in_another_order() -> None:
    references = ["", "the quick brown fox jumps over the lazy dog", ""]
    rng = np.random.default_rng(0)
    rows = [shuffled_words(references, rng) for _ in range(20)]
    assert all(sorted(r.split()) == sorted(references[1].split()) for r in rows)
    assert any(r != references[1] for r in rows)


def test_only_empty_references_are_refused() -> None:
    with pytest.raises(ValueError, match="no non-empty reference"):
        shuffled_words(["", ""], np.random.default_rng(0))
