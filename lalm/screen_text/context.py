"""The on-screen text each audio window is given: the lines visible during the window and shortly around it,
merged with the user's own `prompt` within a token budget. A model that reads instructions gets them in the
words of `lalm/prompts/screen_text.txt` (which, like `context.txt`, tells it the text may not be spoken); a
Whisper model gets their spellings as its previous-text prompt (`screen_spellings`), and a window that says none
of them is decoded again without (`says_screen_words`, lalm.longform.fallback)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence

from lalm.screen_text.scan import ScreenLine
from lalm.tasks import screen_text_context

__all__ = ["estimate_tokens", "says_screen_words", "screen_changes", "screen_spellings", "spellings", "visible_lines",
           "window_context"]

_LABEL = re.compile(r"\s*(?:\S+\s+){0,2}\S+:\s+(\S.*)")  # "Sponsor: X", "Part 2: X"; not "9:30"
_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")
# OCR misreadings a spelling should not teach: a capital I read as a small l before a consonant ("lsotherm": no
# word starts so), and the space between two capitalised words dropped ("RadoslawWieczorek"; parts of four
# letters or more, so "McDonald" or "YouTube" stay whole)
_SMALL_L = re.compile(r"\bl(?=[bcdfghjkmnpqrstvwxz])")
_JOINED = re.compile(r"(?<=[a-z]{4})(?=[A-Z][a-z]{3})")
# Times the screen changes closer together than this (seconds) are subtitles or builds, not slides
_STEADY_SECONDS = 8.0
_TELLING_LETTERS = 4  # says_screen_words: shorter words tell nothing of what is said
_SAME_CHANGE_SECONDS = 1.0  # a slide's lines are first read up to a probe or two apart


def estimate_tokens(text: str) -> int:
    """A ceiling on the tokens of `text` without the model's tokenizer: one per 3 characters (English prose
    runs ~4 per token in BPE vocabularies; names and terms split finer)."""
    return math.ceil(len(text) / 3)


def visible_lines(lines: Sequence[ScreenLine], start: float, end: float, margin: float) -> list[ScreenLine]:
    """The lines on screen at some time in [start - margin, end + margin] (seconds)."""
    return [x for x in lines if x.start < end + margin and x.end > start - margin]


def lines_within(lines: Sequence[ScreenLine], start: float, end: float) -> list[ScreenLine]:
    """The lines on screen at some time between `start` and `end` (seconds), their times on a clock that starts
    at `start`: the screen text of a piece of the recording cut out of it."""
    return [dataclasses.replace(x, start=x.start - start, end=x.end - start)
            for x in visible_lines(lines, start, end, 0.0)]


def _chosen(lines: Sequence[ScreenLine], start: float, end: float, margin: float, budget: int,
            cost: Callable[[str], int]) -> list[ScreenLine]:
    """The lines visible in or within `margin` of [start, end) that fit `budget` (tokens, `cost` each), most
    relevant first: on screen during the window before only seen around it, longer-shown first; a text shown
    twice once."""

    def overlap(x: ScreenLine) -> float:
        return min(x.end, end) - max(x.start, start)  # negative: distance from the window

    chosen: list[ScreenLine] = []
    seen: set[str] = set()
    for x in sorted(visible_lines(lines, start, end, margin), key=overlap, reverse=True):
        spent = cost(x.text)
        if not x.text.strip() or x.text.casefold() in seen or spent > budget:
            continue
        chosen.append(x)
        seen.add(x.text.casefold())
        budget -= spent
    return chosen


def window_context(lines: Sequence[ScreenLine], start: float, end: float, *, prompt: str | None = None,
                   margin: float = 0.5, max_tokens: int = 160) -> str | None:
    """The context of the audio window [start, end) seconds for a model that reads instructions: the user's
    `prompt` (always kept, it is theirs) then the on-screen lines visible in the window or within `margin`
    seconds of it, as many as fit in `max_tokens` (estimate_tokens) with the prompt, quoted under the rule of
    `lalm/prompts/screen_text.txt`. Lines on screen during the window go in before lines only seen around it,
    longer-shown first; a text shown twice goes in once; the chosen lines keep their order in `lines`
    (read_screen_text's: by start, top to bottom). None when there is neither prompt nor line."""
    prompt = prompt.strip() if prompt and prompt.strip() else None
    budget = max_tokens - (estimate_tokens(prompt) if prompt else 0)
    chosen = _chosen(lines, start, end, margin, budget, lambda text: estimate_tokens(text) + 2)  # quotes, separator
    order = {id(x): i for i, x in enumerate(lines)}
    screen = screen_text_context([x.text for x in sorted(chosen, key=lambda x: order[id(x)])])
    return " ".join(filter(None, [prompt, screen])) or None


def screen_changes(lines: Sequence[ScreenLine], *, steady: float = _STEADY_SECONDS) -> list[float]:
    """The times (seconds) the text on screen changes from one steady picture to another: a line appears or
    goes (changes within a second of each other are one, at their middle), with no other change within `steady`
    seconds before or after it (nor the video's start before it). Slides change so; burned-in subtitles and
    builds that change every few seconds give none. For cutting audio windows where the slide changes."""
    times = sorted({t for x in lines for t in (x.start, x.end) if t > 0})
    groups: list[list[float]] = []
    for t in times:
        if groups and t - groups[-1][-1] <= _SAME_CHANGE_SECONDS:
            groups[-1].append(t)
        else:
            groups.append([t])
    middles = [(g[0] + g[-1]) / 2 for g in groups]
    edges = [0.0, *middles, math.inf]
    return [t for i, t in enumerate(middles, 1)
            if t - edges[i - 1] >= steady and (edges[i + 1] - t >= steady or i == len(middles))]


def spellings(text: str) -> str:
    """What of a screen line can teach Whisper a spelling: its words of letters (inner hyphens and apostrophes
    kept), without a leading label (`Sponsor:`, `Part 2:`) and without words holding digits (times, room and
    slide numbers), which speech rarely says as written; the line's commas kept (a name apart from its place:
    measured, bench/screen_text.py); two OCR misreadings mended (a capital I read as `l`
    before a consonant, the space between two capitalised words dropped); "" when nothing is left."""
    labelled = _LABEL.match(text)
    if labelled:
        text = labelled.group(1)
    text = _JOINED.sub(" ", _SMALL_L.sub("I", text))
    parts = (" ".join(w for w in (w.strip(".,;:!?()[]\"'") for w in part.split()) if w and _WORD.fullmatch(w))
             for part in text.split(","))
    return ", ".join(p for p in parts if p)


def screen_spellings(lines: Sequence[ScreenLine], start: float, end: float, *, margin: float = 0.5,
                     max_tokens: int = 160) -> str | None:
    """The on-screen part of Whisper's previous-text prompt for the audio window [start, end) seconds: the
    spellings (`spellings`) of the lines visible in the window or within `margin` seconds of it, within
    `max_tokens` (estimate_tokens), chosen as window_context chooses them. Whisper reads its prompt as text said
    just before, so the lines go in as a list (`A, B, C.`), least relevant first: the lines on screen longest
    during the window come last, nearest the audio, and are the last a cut from the front would lose. Chosen by
    measurement (bench/screen_text.py, docs/benchmarks.md). None when no line has a spelling."""

    def cost(text: str) -> int:
        kept = spellings(text)
        return estimate_tokens(kept) + 1 if kept else 0  # the comma

    def overlap(x: ScreenLine) -> float:
        return min(x.end, end) - max(x.start, start)

    chosen = sorted(_chosen(lines, start, end, margin, max_tokens, cost), key=overlap)
    names = list(dict.fromkeys(kept for x in chosen if (kept := spellings(x.text))))
    return ", ".join(names) + "." if names else None


def says_screen_words(text: str, screen: str) -> bool:
    """Whether the transcript `text` holds a word of the on-screen text `screen` (words of at least
    `_TELLING_LETTERS` letters, case aside: shorter ones, "of", "the", "and", are said whatever the slide shows).
    A window that says none of its slide's words is not about it, and decoding it with the slide as the prompt
    only moves Whisper's guesses on speech it hears badly (measured: bench/screen_text.py, unspoken slides).
    True when `screen` has no word that long ("AI, ML, GPU"): nothing tells, so the slide is not taken away."""
    def words(s: str) -> set[str]:  # "Quintavell's" and "Well-Known" count by their pieces too
        found = {w.casefold() for w in _WORD.findall(s)}
        return found | {p for w in found for p in re.split(r"[-']", w)}

    shown = {w for w in words(screen) if len(w) >= _TELLING_LETTERS}
    return not shown or bool(shown & words(text))
