"""Forced alignment: when each word of a known transcript is spoken in the audio.

A chat LALM writes text without times, so lalm aligns the model's own words to the window's audio afterwards.
The aligner is CMU PocketSphinx (`pocketsphinx` on PyPI, BSD-2): its US-English acoustic model and CMU
pronouncing dictionary ship inside the wheel, and `Decoder.set_align_text` aligns a word sequence to audio
(a linear grammar with optional silences between words) at 10 ms frames. Chosen by measurement on espeak-ng
words joined with known gaps (bench/word_timing.py): median boundary error ~20 ms, p90 ~100 ms, where the
cross-attention alignment of Whisper tiny.en (what faster-whisper's `word_timestamps` does) gave ~130 / ~370 ms.

The aligned words are exactly the transcript's words (split at whitespace, punctuation kept), in order, none
dropped or invented. Words outside the dictionary get a pronunciation made from their parts (hyphenated
pieces, digits spoken one by one) or, failing that, letter by letter, so their neighbours still align.
Words the aligner cannot place (no sound of their own such as "—", text that does not match the audio,
other languages) get times interpolated between their placed neighbours, or over the speech the VAD finds,
and `aligned=False`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lalm.audio import SAMPLE_RATE

__all__ = ["AlignedWord", "align_words", "boundary_errors", "interpolate_words"]

_FRAME_S = 0.01  # PocketSphinx's frame rate: 100 frames a second
_TRIM_DB = 30.0
# Letter -> CMU phones, only to give a word outside the dictionary a pronunciation of about the right length
# and sound class, so the words around it keep their places; the word itself is then approximate.
_LETTER_PHONES = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH",
    "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T",
    "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z",
}
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NON_WORD = re.compile(r"[^a-z0-9']+")


@dataclass(frozen=True)
class AlignedWord:
    """A transcript word (as written, punctuation kept) and when it is spoken, in seconds. `aligned` is
    False when the time is interpolated rather than found in the audio."""

    word: str
    start: float
    end: float
    aligned: bool = True


_local = threading.local()


# words added to a decoder's dictionary before it is replaced by a fresh one, so a long-running server's
# dictionaries do not grow without bound
_MAX_ADDED_WORDS = 20_000


def _decoder():
    """One PocketSphinx decoder per thread (a decoder is not thread-safe; loading one takes ~0.3 s)."""
    decoder = getattr(_local, "decoder", None)
    if decoder is None or _local.added > _MAX_ADDED_WORDS:
        from pocketsphinx import Decoder

        decoder = _local.decoder = Decoder(loglevel="FATAL")
        _local.added = 0
    return decoder


def _key(word: str) -> str:
    """The dictionary spelling of a transcript word: lower case, without surrounding punctuation."""
    return _NON_WORD.sub("", word.lower().replace("’", "'")).strip("'")


def _pronunciation(decoder, key: str) -> str | None:
    """CMU phones for `key`: the dictionary's, else its parts' (pieces around hyphens and the like, digits
    by name), else letter by letter."""
    if (known := decoder.lookup_word(key)) is not None:
        return known
    phones = []
    for piece in re.findall(r"[a-z']+|\d", key):
        if piece.isdigit():
            phones.append(decoder.lookup_word(_DIGITS[int(piece)]))
        elif (known := decoder.lookup_word(piece)) is not None:
            phones.append(known)
        else:
            phones.append(" ".join(_LETTER_PHONES[c] for c in piece if c in _LETTER_PHONES))
    spoken = " ".join(p for p in phones if p)
    return spoken or None


def align_words(samples: np.ndarray, text: str, *, language: str | None = "en",
                speech: Sequence[tuple[float, float]] | None = None) -> list[AlignedWord]:
    """Word times for `text` spoken in `samples` (16 kHz mono float32), in seconds from the first sample.

    Returns one `AlignedWord` per whitespace-separated word of `text`, in order; times never decrease and
    lie within the audio. English (`language` "en", "en-*" or None) is force-aligned; other languages and
    words that cannot be placed are interpolated (`interpolate_words`) over `speech` (spans in seconds,
    e.g. from `lalm.vad.speech_segments`; the whole audio if None). Never raises on a mismatch between
    text and audio: it interpolates instead.
    """
    words = text.split()
    duration = len(samples) / SAMPLE_RATE
    if not words:
        return []
    placed: list[tuple[float, float] | None] = [None] * len(words)
    if language is None or language.lower().split("-")[0] == "en":
        placed = _force_align(samples, words)
    return interpolate_words(words, placed, duration, speech)


def _force_align(samples: np.ndarray, words: list[str]) -> list[tuple[float, float] | None]:
    """PocketSphinx alignment of the words that have a sound; None for the others and for words after the
    point where the aligner lost the path (its result is then a partial one)."""
    decoder = _decoder()
    sounding: list[tuple[int, str]] = []
    for i, word in enumerate(words):
        key = _key(word)
        if not key:
            continue
        if decoder.lookup_word(key) is None:
            phones = _pronunciation(decoder, key)
            if phones is None:
                continue
            decoder.add_word(key, phones, False)
            _local.added += 1
        sounding.append((i, key))
    placed: list[tuple[float, float] | None] = [None] * len(words)
    if not sounding or len(samples) < SAMPLE_RATE // 10:
        return placed
    # Digital silence (exact zeros, as synthesised or padded audio has) makes PocketSphinx's features
    # degenerate and the alignment fail: a fixed, inaudible dither (-80 dBFS) avoids it.
    dither = np.random.default_rng(0).normal(0.0, 1e-4, len(samples))
    pcm = (np.clip(samples + dither, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    try:
        decoder.set_align_text(" ".join(k for _, k in sounding))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    except RuntimeError:
        return placed
    found = [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame) for s in decoder.seg() or ()]
    found = [f for f in found if not f[0].startswith(("<", "[", "+"))]
    # a full path names every word in order; a partial one a prefix, whose last word may be stretched
    complete = [w for w, _, _ in found] == [k for _, k in sounding]
    matched = found if complete else found[:-1]
    for (i, key), (name, start, end) in zip(sounding, matched, strict=False):
        if name != key:
            break
        placed[i] = _trim_to_sound(samples, start, end + 1)
    return placed


def _trim_to_sound(samples: np.ndarray, start: int, end: int) -> tuple[float, float]:
    """A word's frames [start, end) in seconds, without leading and trailing frames more than
    `_TRIM_DB` below the word's loudest frame: the aligner lets a word absorb part of a pause next to it
    (mostly after a final stop consonant), and a word's time should not include a pause."""
    hop = int(_FRAME_S * SAMPLE_RATE)
    frames = samples[start * hop:end * hop]
    n = len(frames) // hop
    if n < 3:
        return start * _FRAME_S, end * _FRAME_S
    db = 10 * np.log10(np.square(frames[:n * hop].reshape(n, hop), dtype=np.float64).mean(axis=1) + 1e-10)
    loud = np.flatnonzero(db >= db.max() - _TRIM_DB)
    return (start + loud[0]) * _FRAME_S, (start + loud[-1] + 1) * _FRAME_S


def interpolate_words(words: Sequence[str], placed: Sequence[tuple[float, float] | None], duration: float,
                      speech: Sequence[tuple[float, float]] | None = None) -> list[AlignedWord]:
    """`AlignedWord`s for `words` given the times found for some of them (`placed[i]` in seconds, or None).

    Unplaced words share the time between their placed neighbours (from the start of `speech` or of the
    audio, to its end, for leading and trailing runs) in proportion to their lengths in characters; with
    no word placed at all they are spread over the `speech` spans. Times are clamped to [0, duration] and
    made non-decreasing.
    """
    spans = [(max(0.0, s), min(duration, e)) for s, e in (speech or [(0.0, duration)]) if e > s] or [(0.0, duration)]
    out: list[AlignedWord] = []
    i = 0
    while i < len(words):
        if placed[i] is not None:
            start, end = placed[i]
            out.append(AlignedWord(words[i], start, end, True))
            i += 1
            continue
        j = i
        while j < len(words) and placed[j] is None:
            j += 1
        lo = out[-1].end if out else spans[0][0]
        hi = placed[j][0] if j < len(words) else spans[-1][1]
        run_spans = [(max(s, lo), min(e, hi)) for s, e in spans if min(e, hi) > max(s, lo)] or [(lo, max(lo, hi))]
        out += _spread(words[i:j], run_spans)
        i = j
    return _monotonic(out, duration)


def _spread(words: Sequence[str], spans: Sequence[tuple[float, float]]) -> list[AlignedWord]:
    """Words laid end to end over `spans` (seconds), each taking time in proportion to its length."""
    weights = np.array([len(w) + 1 for w in words], float)
    total = sum(e - s for s, e in spans)
    edges = np.concatenate([[0.0], np.cumsum(weights) / weights.sum() * total])

    def at(offset: float) -> float:
        for s, e in spans:
            if offset <= e - s:
                return s + offset
            offset -= e - s
        return spans[-1][1]

    return [AlignedWord(w, at(edges[k]), at(edges[k + 1]), False) for k, w in enumerate(words)]


def _monotonic(words: list[AlignedWord], duration: float) -> list[AlignedWord]:
    out, last = [], 0.0
    for w in words:
        start = min(max(w.start, last), duration)
        end = min(max(w.end, start), duration)
        out.append(AlignedWord(w.word, round(start, 3), round(end, 3), w.aligned))
        last = end
    return out


def boundary_errors(words: Sequence[AlignedWord], truth: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """|start - true start| and |end - true end| in seconds of each aligned word against `truth` (word, start,
    end) in the same order: shape (2 * n_aligned,). Interpolated words (`aligned=False`) are left out;
    Raises ValueError if the word sequences differ."""
    if [w.word for w in words] != [t[0] for t in truth]:
        raise ValueError("aligned words and reference words differ")
    return np.array([abs(x) for w, (_, s, e) in zip(words, truth, strict=True) if w.aligned
                     for x in (w.start - s, w.end - e)], float)
