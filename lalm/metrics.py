"""Transcription and hallucination metrics: the one module that training, evals, tests and benchmarks use.

Both texts are normalized with Whisper's English normalizer (case, punctuation, spelled-out numbers,
British spellings), then aligned word by word with jiwer 4 (`process_words`), which gives hits,
substitutions (S), deletions (D) and insertions (I) and accepts an empty reference. A clip whose reference
is empty is non-speech: any word the model writes there is an insertion. The agreed no-speech answer
(`lalm.tasks.NO_SPEECH`) counts as empty output.

| figure                   | definition                                                    |
|--------------------------|---------------------------------------------------------------|
| wer                      | (S + D + I) / reference words, summed over all clips          |
| speech_wer               | the same over speech clips only (what fine-tuning must keep)  |
| insertion_rate           | I / reference words, all clips                                |
| speech_insertion_rate    | I / reference words, speech clips only                        |
| non_speech_output_rate   | share of non-speech clips with any output word                |
| inserted_words_per_clip  | I / clips                                                     |
| looping_answers          | clips whose answer's compression ratio is above 2.4 (a loop)  |

Corpus figures sum the counts first (a long clip weighs more than a short one), as jiwer and the papers do.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

from lalm.tasks import is_no_speech

__all__ = ["LOOP_COMPRESSION_RATIO", "AsrReport", "ClipScore", "compression_ratio", "format_table", "normalize",
           "score_clip", "score_corpus", "without_insertions"]

# Whisper's threshold: above it, an answer repeats itself (its temperature fallback retries such windows)
LOOP_COMPRESSION_RATIO = 2.4


@cache
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normalization; the no-speech answer becomes the empty string."""
    if is_no_speech(text):
        return ""
    return " ".join(_normalizer()(text).split())


def compression_ratio(text: str) -> float:
    """Whisper's repetition signal: bytes of the text over bytes of its zlib compression (0.0 for no text).
    Ordinary speech scores about 1-2; a phrase looping scores well above 2.4."""
    data = text.encode()
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


@dataclass(frozen=True)
class ClipScore:
    """One clip: the normalized texts and jiwer's alignment counts."""

    id: str
    reference: str
    hypothesis: str
    hits: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def reference_words(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def non_speech(self) -> bool:
        return self.reference_words == 0

    @property
    def has_output(self) -> bool:
        return bool(self.hypothesis)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def looping(self) -> bool:
        """Whether the (normalized) answer repeats itself: compression ratio above LOOP_COMPRESSION_RATIO."""
        return compression_ratio(self.hypothesis) > LOOP_COMPRESSION_RATIO

    @property
    def wer(self) -> float:
        """Errors per reference word; for a non-speech clip, the number of words written (0 when silent)."""
        return self.errors / max(self.reference_words, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reference_words": self.reference_words, "wer": self.wer}


def score_clip(reference: str, hypothesis: str, id: str = "") -> ClipScore:
    """Normalize both texts and count hits, S, D and I for one clip."""
    # imported here: the gateway imports this module for compression_ratio, and its image has no jiwer
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    out = jiwer.process_words(ref, hyp)
    return ClipScore(id, ref, hyp, out.hits, out.substitutions, out.deletions, out.insertions)


def _inserted_words(reference: str, words: Sequence[str]) -> set[int]:
    """Indices of `words` (raw, as written) whose every normalized token jiwer aligns as an insertion."""
    import jiwer

    tokens, owner = [], []
    for i, word in enumerate(words):
        for token in normalize(word).split():
            tokens.append(token)
            owner.append(i)
    if not tokens:
        return set()
    # the reference normalized word by word too: the normalizer rewrites spans ("24 dollars" -> "$24"), which
    # a word-by-word hypothesis would never match
    ref = " ".join(" ".join(normalize(word) for word in reference.split()).split())
    if not ref:
        return set(owner)
    inserted = [False] * len(tokens)
    for chunk in jiwer.process_words(ref, " ".join(tokens)).alignments[0]:
        if chunk.type == "insert":
            inserted[chunk.hyp_start_idx:chunk.hyp_end_idx] = [True] * (chunk.hyp_end_idx - chunk.hyp_start_idx)
    kept = {o for o, ins in zip(owner, inserted, strict=True) if not ins}
    return set(owner) - kept


def without_insertions(reference: str, hypothesis: str, max_rounds: int = 5) -> str:
    """`hypothesis` as written (case, punctuation) less the words aligned as insertions against `reference`;
    every other word, substitutions included, is kept. A minimal correction of the answer, as in RLHF-V's
    fine-grained corrective pairs (Yu et al., 2024, arXiv:2312.00849). Words are aligned one by one through
    the normalizer, so dropping some can realign the rest: the edit repeats until no insertion is left (at
    most `max_rounds` times). Returns "" when every word is inserted (a non-speech reference)."""
    words = hypothesis.split()
    for _ in range(max_rounds):
        drop = _inserted_words(reference, words)
        if not drop:
            break
        first = words[0]
        words = [w for i, w in enumerate(words) if i not in drop]
        if words and 0 in drop and first[:1].isupper():
            words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


@dataclass
class AsrReport:
    """Corpus figures (summed counts) over a list of clip scores; `clips` keeps the per-clip detail."""

    clips: list[ClipScore] = field(default_factory=list)

    def _sum(self, attr: str, *, speech_only: bool = False) -> int:
        return sum(getattr(c, attr) for c in self.clips if not (speech_only and c.non_speech))

    @property
    def n_clips(self) -> int:
        return len(self.clips)

    @property
    def n_speech(self) -> int:
        return sum(not c.non_speech for c in self.clips)

    @property
    def n_non_speech(self) -> int:
        return sum(c.non_speech for c in self.clips)

    @property
    def reference_words(self) -> int:
        return self._sum("reference_words")

    @property
    def hits(self) -> int:
        return self._sum("hits")

    @property
    def substitutions(self) -> int:
        return self._sum("substitutions")

    @property
    def deletions(self) -> int:
        return self._sum("deletions")

    @property
    def insertions(self) -> int:
        return self._sum("insertions")

    @property
    def wer(self) -> float:
        return _ratio(self.substitutions + self.deletions + self.insertions, self.reference_words)

    @property
    def speech_wer(self) -> float:
        errors = sum(c.errors for c in self.clips if not c.non_speech)
        return _ratio(errors, self.reference_words)

    @property
    def insertion_rate(self) -> float:
        return _ratio(self.insertions, self.reference_words)

    @property
    def speech_insertion_rate(self) -> float:
        return _ratio(self._sum("insertions", speech_only=True), self.reference_words)

    @property
    def non_speech_output_rate(self) -> float:
        return _ratio(sum(c.has_output for c in self.clips if c.non_speech), self.n_non_speech)

    @property
    def inserted_words_per_clip(self) -> float:
        return _ratio(self.insertions, self.n_clips)

    @property
    def looping_answers(self) -> int:
        return sum(c.looping for c in self.clips)

    def summary(self) -> dict[str, float | int]:
        """The corpus figures as a flat dict (what the table and the JSON show)."""
        return {name: getattr(self, name) for name in SUMMARY_FIELDS}

    def to_dict(self, *, per_clip: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary()}
        if per_clip:
            out["clips"] = [c.to_dict() for c in self.clips]
        return out

    def to_json(self, *, per_clip: bool = True, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(per_clip=per_clip), indent=indent)

    def table(self, label: str = "value") -> str:
        return format_table({label: self})


SUMMARY_FIELDS = (
    "n_clips", "n_speech", "n_non_speech", "reference_words", "hits", "substitutions", "deletions", "insertions",
    "wer", "speech_wer", "insertion_rate", "speech_insertion_rate", "non_speech_output_rate",
    "inserted_words_per_clip", "looping_answers",
)
_PERCENT = {"wer", "speech_wer", "insertion_rate", "speech_insertion_rate", "non_speech_output_rate"}


def score_corpus(references: Sequence[str], hypotheses: Sequence[str], ids: Sequence[str] | None = None) -> AsrReport:
    """Score paired references and hypotheses (same order); `ids` name the clips in the per-clip detail."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    names = ids if ids is not None else [str(i) for i in range(len(references))]
    return AsrReport([score_clip(r, h, n) for r, h, n in zip(references, hypotheses, names, strict=True)])


def format_table(reports: Mapping[str, AsrReport]) -> str:
    """A plain-text table, one column per report (e.g. before / after), rates in percent."""
    labels = list(reports)
    rows = [["metric", *labels]]
    for name in SUMMARY_FIELDS:
        cells = []
        for label in labels:
            value = getattr(reports[label], name)
            cells.append(f"{100 * value:.2f}%" if name in _PERCENT else
                         f"{value:.3f}" if isinstance(value, float) else str(value))
        rows.append([name, *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
