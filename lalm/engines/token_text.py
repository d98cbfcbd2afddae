"""The text of a generated token, as a logprobs entry reports it.

A byte-level tokenizer may split one character over several tokens (accented letters, CJK, emoji: 2-4 UTF-8
bytes). Decoded alone, such a token shows U+FFFD. The rule here is vLLM's (v1/engine/logprobs.py,
`_correct_decoded_token`), so both engines report the same texts: a token that leaves a character unfinished
is reported as "", and the token that completes it as the whole character, so the tokens' texts join into the
answer. Special tokens are reported by their literal text (`<|im_end|>`), as vLLM reports them. (For
SentencePiece tokenizers vLLM also restores a leading space that decode drops; lalm's models use byte-level
BPE, where decode keeps it.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["REPLACEMENT", "token_text"]

REPLACEMENT = "\ufffd"  # what a decoder shows for bytes that do not form a character
# a UTF-8 character has at most 4 bytes, so at most 3 tokens before this one can hold the rest of it
_MAX_CONTEXT = 4


def token_text(decode: Callable[[list[int]], str], token_id: int, sampled: Sequence[int], at: int) -> str:
    """The text of `token_id` generated at position `at` of the answer whose sampled tokens are `sampled` (the
    sampled token there, or an alternative to it; only the 4 tokens before `at` are read). `decode` is the
    tokenizer's decode of a list of ids, special tokens kept."""
    before = sampled[max(0, at - _MAX_CONTEXT):at]
    text = decode([token_id])
    if not text.endswith(REPLACEMENT):
        return text
    for n in range(1, len(before) + 1):
        context = list(before[-n:])
        joined = decode([*context, token_id])
        if joined.endswith(REPLACEMENT):
            continue
        # the context tokens that were unfinished themselves (reported as "") hand their bytes to this token
        clean = n
        while clean > 0 and decode([context[clean - 1]]).endswith(REPLACEMENT):
            clean -= 1
        prefix = decode(context[:clean]) if clean else ""
        # past the characters the context alone shows (where a tokenizer's normalisation makes the two differ,
        # past what they share)
        shared = next((k for k, (a, b) in enumerate(zip(prefix, joined, strict=False)) if a != b),
                      min(len(prefix), len(joined)))
        return joined[shared:]
    return ""
