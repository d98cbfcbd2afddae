"""The on-screen text each audio window is given: the lines visible during the window and shortly around it,
merged with the user's own `prompt` within a token budget, in the words of `lalm/prompts/screen_text.txt`
(which, like `context.txt`, tells the model the text may not be spoken)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lalm.screen_text.scan import ScreenLine
from lalm.tasks import screen_text_context

__all__ = ["estimate_tokens", "visible_lines", "window_context"]


def estimate_tokens(text: str) -> int:
    """A ceiling on the tokens of `text` without the model's tokenizer: one per 3 characters (English prose
    runs ~4 per token in BPE vocabularies; names and terms split finer)."""
    return math.ceil(len(text) / 3)


def visible_lines(lines: Sequence[ScreenLine], start: float, end: float, margin: float) -> list[ScreenLine]:
    """The lines on screen at some time in [start - margin, end + margin] (seconds)."""
    return [x for x in lines if x.start < end + margin and x.end > start - margin]


def window_context(lines: Sequence[ScreenLine], start: float, end: float, *, prompt: str | None = None,
                   margin: float = 2.0, max_tokens: int = 160, quoted: bool = True) -> str | None:
    """The context of the audio window [start, end) seconds: the user's `prompt` (always kept, it is theirs)
    then the on-screen lines visible in the window or within `margin` seconds of it, as many as fit in
    `max_tokens` (estimate_tokens) with the prompt. Lines on screen during the window go in before lines
    only seen around it, longer-shown first; a text shown twice goes in once; the chosen lines keep their
    order in `lines` (read_screen_text's: by start, top to bottom). None when there is neither prompt nor line.
    `quoted` False gives the lines as plain text, one after another, for a model that takes context as earlier
    text (Whisper's `<|startofprev|>` prompt) instead of an instruction."""
    prompt = prompt.strip() if prompt and prompt.strip() else None
    budget = max_tokens - (estimate_tokens(prompt) if prompt else 0)

    def rank(x: ScreenLine) -> float:
        return min(x.end, end) - max(x.start, start)  # overlap with the window; negative: distance from it

    chosen: list[ScreenLine] = []
    seen: set[str] = set()
    for x in sorted(visible_lines(lines, start, end, margin), key=rank, reverse=True):
        cost = estimate_tokens(x.text) + 2  # quotes and separator
        if x.text.casefold() in seen or cost > budget:
            continue
        chosen.append(x)
        seen.add(x.text.casefold())
        budget -= cost
    order = {id(x): i for i, x in enumerate(lines)}
    texts = [x.text for x in sorted(chosen, key=lambda x: order[id(x)])]
    screen = screen_text_context(texts) if quoted else " ".join(texts) or None
    return " ".join(filter(None, [prompt, screen])) or None
