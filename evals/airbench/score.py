"""Foundation scoring, exactly as OFA-Sys/AIR-Bench's score_foundation.py (commit 9832476).

- The predicted letter: the response with surrounding space stripped and newlines removed; its first
  character if that is A, B, C or D, else its second-to-last character if that is one ("The answer is A."),
  else no letter. Only capital letters count, and free text that happens to start with A-D ("A dog barks")
  reads as that letter: both are the reference's behaviour, kept so numbers stay comparable.
- The right letter: the first of choice_a..choice_d whose text equals answer_gt.
- Accuracy per task_name_dataset_name over the answers with a letter; answers with no letter (and missing
  responses) are failures, counted but left out of every denominator.
Beyond the reference: accuracy per task_name (datasets of a task pooled, the rows of the leaderboard), their
plain mean and the question-weighted mean (the leaderboard's "Average" is neither exactly; notes/airbench.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from evals.airbench.aggregate import mean
from evals.airbench.layout import task_id, task_sort_key

__all__ = ["FoundationScore", "GroundTruthError", "TaskScore", "gt_letter", "parse_letter", "score_foundation"]

LETTERS = ("A", "B", "C", "D")
_CHOICE_FIELDS = ("choice_a", "choice_b", "choice_c", "choice_d")


class GroundTruthError(ValueError):
    """answer_gt matches none of the choices (score_foundation.py stops with exit(1) there)."""


def parse_letter(response: str | None) -> str | None:
    """The answer letter score_foundation.py reads from a response, or None when it reads none (its
    `fail_num` branch)."""
    if response is None:
        return None
    predict = response.strip().replace("\n", "")
    if not predict or predict == "None":
        return None
    if predict[0] in LETTERS:
        return predict[0]
    if len(predict) > 1 and predict[-2] in LETTERS:
        return predict[-2]
    return None


def gt_letter(record: dict[str, Any]) -> str:
    """The letter of the choice whose text equals answer_gt, checked in the order A, B, C, D (score_foundation.py's
    if/elif chain, exact string equality)."""
    for letter, name in zip(LETTERS, _CHOICE_FIELDS, strict=True):
        if record["answer_gt"] == record.get(name):
            return letter
    raise GroundTruthError(f"uniq_id {record.get('uniq_id')}: answer_gt {record['answer_gt']!r} is none of the "
                           "choices; the reference script stops here, fix the meta file")


@dataclass
class TaskScore:
    """Counts for one task: `total` answers with a letter, `correct` among them, `unparsable` answers left out."""

    total: int = 0
    correct: int = 0
    unparsable: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None


@dataclass
class FoundationScore:
    """The result of `score_foundation`. Accuracies are fractions (0-1)."""

    by_task_id: dict[str, TaskScore] = field(default_factory=dict)
    by_task: dict[str, TaskScore] = field(default_factory=dict)
    unparsable: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return sum(t.total for t in self.by_task.values())

    @property
    def correct(self) -> int:
        return sum(t.correct for t in self.by_task.values())

    @property
    def plain_mean(self) -> float | None:
        """Mean of the per-task_name accuracies (tasks with at least one scored answer)."""
        return mean(t.accuracy for t in self.by_task.values() if t.accuracy is not None)

    @property
    def weighted_mean(self) -> float | None:
        """Correct answers over all scored answers."""
        return self.correct / self.total if self.total else None

    def to_json(self) -> dict[str, Any]:
        def table(scores: dict[str, TaskScore]) -> dict[str, Any]:
            return {k: {**asdict(v), "accuracy": v.accuracy} for k, v in scores.items()}

        return {
            "split": "foundation",
            "by_task_id": table(self.by_task_id),
            "by_task": table(self.by_task),
            "plain_mean": self.plain_mean,
            "weighted_mean": self.weighted_mean,
            "total": self.total,
            "correct": self.correct,
            "unparsable": self.unparsable,
            "errors": self.errors,
            "skipped": self.skipped,
        }


def score_foundation(records: Iterable[dict[str, Any]]) -> FoundationScore:
    """Score Foundation result records (the reference's fields; `error` marks a request that failed) as
    score_foundation.py: per task_name_dataset_name Sum/correct/acc over parsable answers, and its fail_num
    (`unparsable`); records with no task_name are skipped as it does."""
    out = FoundationScore()
    names: dict[str, str] = {}
    for record in records:
        if record.get("task_name") is None:
            out.skipped += 1
            continue
        tid = task_id(record)
        names[tid] = record["task_name"]
        per_id = out.by_task_id.setdefault(tid, TaskScore())
        per_task = out.by_task.setdefault(record["task_name"], TaskScore())
        if record.get("error"):
            out.errors += 1
        letter = parse_letter(record.get("response"))
        if letter is None:
            out.unparsable += 1
            per_id.unparsable += 1
            per_task.unparsable += 1
            continue
        hit = int(letter == gt_letter(record))
        for score in (per_id, per_task):
            score.total += 1
            score.correct += hit
    out.by_task = {t: out.by_task[t] for t in sorted(out.by_task, key=task_sort_key)}
    out.by_task_id = {t: out.by_task_id[t] for t in sorted(out.by_task_id, key=lambda t: (task_sort_key(names[t]), t))}
    return out
