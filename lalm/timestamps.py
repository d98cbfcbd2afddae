"""Timed segments of one window's transcript: word times (lalm.align), subtitle-sized segments
(lalm.subtitles), and the confidence fields Whisper reports per segment — `avg_logprob` from the engine's
token logprobs, `no_speech_prob` from the voice-activity detector (lalm.vad)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lalm.align import AlignedWord, align_words
from lalm.audio import SAMPLE_RATE
from lalm.engines.messages import is_control_token
from lalm.engines.token_text import REPLACEMENT
from lalm.subtitles import SubtitleRules, sentence_segments
from lalm.vad import speech_probability, speech_segments

__all__ = ["Segment", "window_segments"]

# audio around a segment that its no_speech_prob also hears, in seconds (word edges are not sample-exact)
_CONTEXT_S = 0.1


@dataclass(frozen=True)
class Segment:
    """A piece of the answer with its place in the recording in seconds: a whole window, or (with word
    timestamps) a sentence-sized part of one with its `words`. `avg_logprob` is the mean logprob of the
    tokens that wrote it (0.0 when the engine gives none), `no_speech_prob` 1 - lalm.vad.speech_probability
    of its audio (0.0 when not measured), `temperature` that of the engine's try that wrote it (with the
    temperature fallback of lalm.longform.fallback, the try kept for its window)."""

    start: float
    end: float
    text: str
    words: tuple[AlignedWord, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0


def _token_spans(text: str, token_logprobs: Sequence[tuple[str, float]]) -> list[tuple[int, int, float]]:
    """Character span in `text` of each generated token, in order. The tokens spell `text` but for special
    tokens (reported by their control string, which the text does not show: they take no room) and characters
    no token wrote: white space a detokenizer may add where it skipped a special token (vLLM's
    spaces_between_special_tokens), and U+FFFD where bytes never formed a character (such tokens are reported
    as "": lalm.engines.token_text). A token is placed after such characters; one the text does not hold
    from there on (a stop string cut off the answer) takes no room."""
    spans, pos = [], 0
    for piece, logprob in token_logprobs:
        piece = "" if is_control_token(piece) else piece
        at = text.find(piece, pos) if piece else -1
        if at < 0:
            piece = ""
        elif at > pos and not text[pos:at].replace(REPLACEMENT, "").strip():
            pos = at
        spans.append((pos, pos + len(piece), logprob))
        pos += len(piece)
    return spans


def window_segments(samples: np.ndarray, offset: float, text: str, *,
                    token_logprobs: Sequence[tuple[str, float]] = (), avg_logprob: float = 0.0,
                    language: str | None = "en", rules: SubtitleRules | None = None) -> list[Segment]:
    """Sentence-sized `Segment`s with word times for `text`, the engine's answer for the window `samples`
    (16 kHz mono float32) that starts `offset` seconds into the recording. `token_logprobs` are the
    engine's (token text, logprob) pairs, which spell `text`; a segment none of them wrote gets `avg_logprob`
    (the window's mean, from an engine that reports only that: a Whisper one). `language` is the speech's ISO
    code for the aligner (None: try English). Segment texts are the words of `text`, each word in exactly one
    segment."""
    final = text.strip()
    if not final:
        return []
    speech = speech_segments(samples)
    rules = rules or SubtitleRules()
    # Times are rounded to milliseconds, then kept within the window, which rounding could leave by a fraction
    # of one (past the end of the last window: after the audio). A word the aligner could not place is spread
    # over the speech around it; when the model wrote one word for seconds of speech, that span is no word's
    # length: cut to a segment's longest, so every segment keeps within the rules.
    window_end = offset + len(samples) / SAMPLE_RATE

    def in_window(seconds: float) -> float:
        return min(max(round(seconds + offset, 3), offset), window_end)

    words = []
    for w in align_words(samples, final, language=language, speech=speech):
        start = in_window(w.start)
        words.append(replace(w, start=start, end=min(in_window(w.end), start + rules.segment_seconds)))
    lead = len(text) - len(text.lstrip())
    chars = [(m.start() + lead, m.end() + lead) for m in re.finditer(r"\S+", final)]
    tokens = _token_spans(text, token_logprobs)
    out, first = [], 0
    for group in sentence_segments(words, rules):
        lo, hi = chars[first][0], chars[first + len(group) - 1][1]
        first += len(group)
        logprobs = [lp for s, e, lp in tokens if s < hi and e > lo]
        a = max(0, int((group[0].start - offset - _CONTEXT_S) * SAMPLE_RATE))
        b = int((group[-1].end - offset + _CONTEXT_S) * SAMPLE_RATE)
        out.append(Segment(group[0].start, group[-1].end, " ".join(w.word for w in group), tuple(group),
                           round(float(np.mean(logprobs)), 4) if logprobs else avg_logprob,
                           round(1.0 - speech_probability(samples[a:b]), 4)))
    return out
