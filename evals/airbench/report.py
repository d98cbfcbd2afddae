"""A Markdown report and PNG charts of AIR-Bench scores, beside the published leaderboard numbers
(published.json: OFA-Sys/AIR-Bench's README, with its commit)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["load_published", "write_report"]

FOUNDATION_MODELS = ("Qwen-Audio-Turbo", "Qwen-Audio", "SALMONN")
CHAT_MODELS = ("Qwen2-Audio", "Qwen-Audio-Turbo", "SALMONN", "Qwen-Audio", "Gemini-1.5-pro")
CHAT_CATEGORIES = ("speech", "sound", "music", "mixed", "average")


def load_published() -> dict[str, Any]:
    """The checked-in leaderboard numbers."""
    return json.loads(resources.files("evals.airbench").joinpath("published.json").read_text())


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _foundation_md(scores: dict[str, Any], published: dict[str, Any], label: str) -> list[str]:
    pub = published["foundation"]
    rows = []
    for task, s in scores["by_task"].items():
        rows.append([published["foundation_labels"].get(task, task), f"`{task}`", _fmt(_pct(s["accuracy"]), 1),
                     str(s["total"]), str(s["unparsable"]), *(_fmt(pub[m].get(task), 1) for m in FOUNDATION_MODELS)])
    rows.append(["**Plain mean of tasks**", "", _fmt(_pct(scores["plain_mean"]), 1), str(scores["total"]),
                 str(scores["unparsable"]), *("" for _ in FOUNDATION_MODELS)])
    rows.append(["**Question-weighted mean**", "", _fmt(_pct(scores["weighted_mean"]), 1), "", "",
                 *("" for _ in FOUNDATION_MODELS)])
    rows.append(["Leaderboard average (as published)", "", "", "", "",
                 *(_fmt(pub[m]["average"], 1) for m in FOUNDATION_MODELS)])
    per_id = [[f"`{tid}`", _fmt(_pct(s["accuracy"]), 1), str(s["total"]), str(s["correct"]), str(s["unparsable"])]
              for tid, s in scores["by_task_id"].items()]
    return [
        "## Foundation (accuracy, %)", "",
        f"Answers with no letter the reference parser can read are left out of the denominators, as in "
        f"score_foundation.py: {scores['unparsable']} here ({scores['errors']} of them failed requests).", "",
        *_table(["Task", "task_name", label, "scored", "no letter", *FOUNDATION_MODELS], rows), "",
        "Per task_name_dataset_name (the unit score_foundation.py prints):", "",
        *_table(["task_id", "accuracy", "scored", "correct", "no letter"], per_id), "",
        "![foundation](foundation_tasks.png)", "",
    ]


def _chat_md(scores: dict[str, Any], published: dict[str, Any], label: str) -> list[str]:
    pub = published["chat"]
    rows = [[c, _fmt(scores["categories"].get(c)), *(_fmt(pub[m].get(c)) for m in CHAT_MODELS)]
            for c in CHAT_CATEGORIES]
    tasks = [[f"`{t}`", _fmt(s["model"]), _fmt(s["reference"]), _fmt(s["win_rate"]), str(s["judged"]),
              str(s["failed"])] for t, s in scores["by_task"].items()]
    return [
        f"## Chat (judge scores 1-10, judge `{scores.get('judge_model')}`, temperature {scores.get('temperature')})",
        "",
        "The model's score averaged over both answer orders; mixed is the mean of speech_and_sound and "
        "speech_and_music, average the mean of the four categories (cal_score.py and the AIR-Bench README). "
        f"Judge replies that never parsed: {scores['failed']} of {scores['judged'] + scores['failed']}. "
        "Published numbers were judged by gpt-4-0125-preview; another judge gives other numbers.", "",
        *_table(["Category", label, *CHAT_MODELS], rows), "",
        *_table(["task_name", "model", "reference answer", "win rate", "judged", "failed"], tasks), "",
        "![chat categories](chat_categories.png)", "", "![chat tasks](chat_tasks.png)", "",
    ]


def _bars(path: Path, labels: list[str], series: dict[str, list[float | None]], title: str, xlabel: str,
          xmax: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(series)
    height = 0.8 / max(1, n)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(labels) * max(1, n) ** 0.5))
    for k, (name, values) in enumerate(series.items()):
        ys = [i + (k - (n - 1) / 2) * height for i in range(len(labels))]
        ax.barh(ys, [v if v is not None else 0 for v in values], height=height, label=name)
        for y, v in zip(ys, values, strict=True):
            if v is None:  # no bar is not a zero score: say so
                ax.text(0, y, " n/a", va="center", fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: str | Path, *, foundation: dict[str, Any] | None = None, chat: dict[str, Any] | None = None,
                 label: str = "this model") -> list[Path]:
    """Write report.md and the charts for whichever scores are given; returns the files written."""
    if foundation is None and chat is None:
        raise ValueError("nothing to report: give foundation and/or chat scores")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    published = load_published()
    lines = ["# AIR-Bench results", "", f"Published numbers: {published['source']}", ""]
    written = []
    if foundation is not None:
        lines += _foundation_md(foundation, published, label)
        tasks = list(foundation["by_task"])
        series = {label: [_pct(foundation["by_task"][t]["accuracy"]) for t in tasks]}
        series |= {m: [published["foundation"][m].get(t) for t in tasks] for m in FOUNDATION_MODELS}
        _bars(out / "foundation_tasks.png", tasks, series, "AIR-Bench Foundation", "accuracy (%)", 100)
        written.append(out / "foundation_tasks.png")
    if chat is not None:
        lines += _chat_md(chat, published, label)
        series = {label: [chat["categories"].get(c) for c in CHAT_CATEGORIES]}
        series |= {m: [published["chat"][m].get(c) for c in CHAT_CATEGORIES] for m in CHAT_MODELS}
        _bars(out / "chat_categories.png", list(CHAT_CATEGORIES), series, "AIR-Bench Chat", "judge score (1-10)", 10)
        tasks = list(chat["by_task"])
        series = {label: [chat["by_task"][t]["model"] for t in tasks],
                  "reference answer": [chat["by_task"][t]["reference"] for t in tasks]}
        _bars(out / "chat_tasks.png", tasks, series, "AIR-Bench Chat per task", "judge score (1-10)", 10)
        written += [out / "chat_categories.png", out / "chat_tasks.png"]
    (out / "report.md").write_text("\n".join(lines))
    return [out / "report.md", *written]
