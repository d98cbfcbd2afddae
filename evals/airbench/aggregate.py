"""Chat aggregation, as OFA-Sys/AIR-Bench's cal_score.py and its README (commit 9832476).

cal_score.py pools the judged lines of one answer order into five groups (speech = speech_QA +
speech_dialogue_QA, sound = sound_QA + sound_generation_QA, music = music_QA + music_generation_analysis_QA,
speech_and_sound, speech_and_music) and averages the model's score over the lines whose judge reply parsed.
The README says to judge a second time with the two answers swapped and to average the two orders; "mixed"
is the mean of speech_and_sound and speech_and_music, and the leaderboard's "Average" the mean of speech,
sound, music and mixed. Win rate is cal_score.py's (model score above the reference answer's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from evals.airbench.layout import task_sort_key

__all__ = ["CATEGORIES", "GROUP_OF_TASK", "ORDERS", "Tally", "aggregate_chat", "mean"]

GROUP_OF_TASK = {
    "speech_QA": "speech",
    "speech_dialogue_QA": "speech",
    "sound_QA": "sound",
    "sound_generation_QA": "sound",
    "music_QA": "music",
    "music_generation_analysis_QA": "music",
    "speech_and_sound_QA": "speech_and_sound",
    "speech_and_music_QA": "speech_and_music",
}
GROUPS = ("speech", "sound", "music", "speech_and_sound", "speech_and_music")
CATEGORIES = ("speech", "sound", "music", "mixed", "average")
# gt_first: Assistant 1 is answer_gt, Assistant 2 the model (score_chat.py); model_first: swapped (README).
ORDERS = ("gt_first", "model_first")


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


@dataclass
class Tally:
    """Judged lines of one group in one order: `n` parsed, `failed` unparsable after retries."""

    n: int = 0
    failed: int = 0
    model_sum: int = 0
    reference_sum: int = 0
    wins: int = 0

    def add(self, model: int, reference: int) -> None:
        self.n += 1
        self.model_sum += model
        self.reference_sum += reference
        self.wins += model > reference


def _mean_of_all(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values) / len(values)


def _summary(per_order: dict[str, Tally]) -> dict[str, Any]:
    """Means over the lines of each order, then over the orders that have any."""
    tallies = [per_order[o] for o in ORDERS if o in per_order]
    return {
        "model": mean(t.model_sum / t.n for t in tallies if t.n),
        "reference": mean(t.reference_sum / t.n for t in tallies if t.n),
        "win_rate": mean(t.wins / t.n for t in tallies if t.n),
        "judged": sum(t.n for t in tallies),
        "failed": sum(t.failed for t in tallies),
        "per_order": {o: asdict(t) for o, t in per_order.items()},
    }


def aggregate_chat(judgments: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate judgments (dicts with task_name, order, and `model_score`/`reference_score` ints, or
    `scores` None for a reply that never parsed) per task, per group and per leaderboard category: cal_score.py's
    grouping and per-order means (failures counted, left out of the means), then the README's mean over the two
    orders, mixed and average."""
    by_task: dict[str, dict[str, Tally]] = {}
    by_group: dict[str, dict[str, Tally]] = {}
    unknown = 0
    for j in judgments:
        group = GROUP_OF_TASK.get(j["task_name"])
        if group is None:
            unknown += 1
        targets = [by_task.setdefault(j["task_name"], {}).setdefault(j["order"], Tally())]
        if group is not None:
            targets.append(by_group.setdefault(group, {}).setdefault(j["order"], Tally()))
        for tally in targets:
            if j.get("scores") is None:
                tally.failed += 1
            else:
                tally.add(j["model_score"], j["reference_score"])
    groups = {g: _summary(by_group[g]) for g in GROUPS if g in by_group}
    model = {g: s["model"] for g, s in groups.items()}
    categories = {c: model.get(c) for c in ("speech", "sound", "music")}
    # A partial run (--tasks) gets no mixed / average rather than one that is not the leaderboard's.
    categories["mixed"] = _mean_of_all([model.get("speech_and_sound"), model.get("speech_and_music")])
    categories["average"] = _mean_of_all([categories["speech"], categories["sound"], categories["music"],
                                          categories["mixed"]])
    return {
        "split": "chat",
        "categories": categories,
        "by_group": groups,
        "by_task": {t: _summary(by_task[t]) for t in sorted(by_task, key=task_sort_key)},
        "judged": sum(s["judged"] for s in groups.values()),
        "failed": sum(s["failed"] for s in groups.values()),
        "unknown_tasks": unknown,
    }
