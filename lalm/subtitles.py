"""Subtitle-sized segments and SRT / WebVTT cues from timed words.

A window's transcript (up to 30 s) is far too long for a subtitle. `sentence_segments` groups aligned words
(lalm.align) into sentence- or pause-sized segments; `cues` lays segments out as subtitle cues following
common broadcast rules (the BBC subtitle guidelines, Netflix's timed-text style guide): at most 2 lines of
at most 42 characters, shown at least `min_seconds` and at most `max_seconds`, in order and never
overlapping, lines broken only between words. `srt` and `vtt` write the files.

The writers are lalm's own, a dozen lines: pysubs2 (the library considered) reads `{...}` in cue text as
ASS override tags and drops it, and writes `-->` and WebVTT's `<` `&` unescaped, which would change or break
a model's text.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from lalm.align import AlignedWord

__all__ = ["Cue", "SubtitleRules", "cues", "sentence_segments", "srt", "timestamp", "vtt"]

_SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
_CLAUSE_END = (",", ";", ":", "—", "–", "，", "；")
# English titles and abbreviations written before a name or a number, whose period ends no sentence
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "mt.", "jr.", "sr.", "vs.", "etc.",
                            "e.g.", "i.e.", "no.", "fig.", "gen.", "gov.", "rev.", "sgt.", "capt.", "lt."})


def ends_sentence(word: str) -> bool:
    """Whether `word` ends a sentence: it ends with . ? ! (or their CJK forms) and is not an abbreviation such as
    "Mr." or "e.g." that goes before the next word."""
    return word.endswith(_SENTENCE_END) and word.lower() not in _ABBREVIATIONS


@dataclass(frozen=True)
class SubtitleRules:
    """Limits of segments and cues. Segments: `segment_seconds` and `segment_chars` at most, split at a
    sentence end or a pause of `pause_seconds`. Cues: `max_lines` lines of `line_chars` characters (a single
    word longer than a line gets a line of its own), shown between `min_seconds` and `max_seconds`."""

    segment_seconds: float = 7.0
    segment_chars: int = 84
    pause_seconds: float = 0.5
    line_chars: int = 42
    max_lines: int = 2
    min_seconds: float = 1.0
    max_seconds: float = 7.0


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from `start` to `end` seconds, its text in `lines`."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _text(words: Sequence[AlignedWord]) -> str:
    return " ".join(w.word for w in words)


def _best_split(words: Sequence[AlignedWord]) -> int:
    """Where to end the first part of `words` that grew too long: after the last clause punctuation in its
    last two thirds, else at the longest pause in its second half (the latest of equal ones). Returns a count
    of words (the first part's)."""
    if len(words) < 2:
        return len(words)
    for k in range(len(words) - 1, max(1, len(words) // 3) - 1, -1):
        if words[k - 1].word.endswith(_CLAUSE_END + _SENTENCE_END):
            return k
    return max(range(max(1, len(words) // 2), len(words)), key=lambda k: (words[k].start - words[k - 1].end, k))


def sentence_segments(words: Sequence[AlignedWord], rules: SubtitleRules = SubtitleRules()) -> list[list[AlignedWord]]:
    """Group `words` (in time order) into segments: a segment ends after a word ending a sentence (. ? !),
    before a pause of at least `rules.pause_seconds`, or where it would exceed `rules.segment_chars`
    characters or `rules.segment_seconds` (then at the best place inside it: clause punctuation, else the
    longest pause). Every word is in exactly one segment, in order."""
    segments: list[list[AlignedWord]] = []
    current: list[AlignedWord] = []

    def too_long(group: Sequence[AlignedWord]) -> bool:
        return len(group) > 1 and (len(_text(group)) > rules.segment_chars
                                   or group[-1].end - group[0].start > rules.segment_seconds)

    for i, word in enumerate(words):
        while current and too_long([*current, word]):
            k = _best_split([*current, word])
            if k > len(current):
                k = len(current)
            segments.append(current[:k])
            current = current[k:]
        current.append(word)
        pause = i + 1 < len(words) and words[i + 1].start - word.end >= rules.pause_seconds
        if ends_sentence(word.word) or pause:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def _lines(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def _fit(words: Sequence[AlignedWord], rules: SubtitleRules) -> list[list[AlignedWord]]:
    """`words` cut into runs whose text fits the cue's lines and whose time fits `max_seconds`, halving at
    the best place until each fits."""
    fits = len(_lines(_text(words), rules.line_chars)) <= rules.max_lines
    if len(words) <= 1 or (fits and words[-1].end - words[0].start <= rules.max_seconds):
        return [list(words)]
    k = _balanced_split(words)
    return _fit(words[:k], rules) + _fit(words[k:], rules)


def _balanced_split(words: Sequence[AlignedWord]) -> int:
    """The split into two parts of about equal length in characters, preferring a clause end nearby."""
    total = len(_text(words))
    lengths = [len(_text(words[:k])) for k in range(1, len(words))]
    return min(range(1, len(words)), key=lambda k: (abs(2 * lengths[k - 1] - total)
                                                    - (total // 4 if words[k - 1].word.endswith(_CLAUSE_END) else 0)))


def cues(segments: Sequence[Sequence[AlignedWord]], rules: SubtitleRules = SubtitleRules(), *,
         until: float | None = None) -> list[Cue]:
    """Cues for `segments` (from `sentence_segments`, in time order): each segment's words in one cue, or in
    several if they do not fit `rules.max_lines` x `rules.line_chars`; a cue lasts from its first word's start
    to its last word's end, lengthened to `rules.min_seconds` where the next cue leaves room, cut to
    `rules.max_seconds`, and never overlaps the next. `until` is the audio's end (seconds), which no cue
    outlasts, the last one lengthened up to it at most; without it the last cue ends with its last word, as
    nothing says the audio lasts longer."""
    runs = [run for segment in segments if segment for run in _fit(segment, rules)]
    limit = until if until is not None else runs[-1][-1].end if runs else 0.0
    out: list[Cue] = []
    for i, run in enumerate(runs):
        start = max(run[0].start, out[-1].end if out else 0.0)
        end = max(run[-1].end, start + rules.min_seconds)
        if i + 1 < len(runs):
            end = min(end, max(runs[i + 1][0].start, run[-1].end))
        end = min(end, start + rules.max_seconds)
        lines = _lines(_text(run), rules.line_chars)
        if len(lines) > rules.max_lines:  # only when a single word is longer than a line
            lines = [" ".join(lines)]
        # bounded after rounding, which could otherwise carry a time that ends with the audio past it
        out.append(Cue(min(round(start, 3), limit), min(round(max(end, start), 3), limit), tuple(lines)))
    return out


def timestamp(seconds: float, decimal: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT) or, with decimal ".", `HH:MM:SS.mmm` (WebVTT)."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def _safe(line: str) -> str:
    """A line that cannot break the cue structure: no timing arrow, no blank line."""
    return " ".join(line.replace("-->", "->").split())


def srt(items: Sequence[Cue]) -> str:
    """SubRip text: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, the lines, a blank line."""
    return "".join(f"{i}\n{timestamp(c.start)} --> {timestamp(c.end)}\n" + "\n".join(map(_safe, c.lines)) + "\n\n"
                   for i, c in enumerate(items, 1))


def vtt(items: Sequence[Cue]) -> str:
    """WebVTT text, with `&` and `<` escaped as the format requires of cue text."""
    def esc(line: str) -> str:
        return _safe(line).replace("&", "&amp;").replace("<", "&lt;")

    return "WEBVTT\n\n" + "".join(f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n"
                                  + "\n".join(map(esc, c.lines)) + "\n\n" for c in items)
