"""Foundation scoring against hand-computed examples of score_foundation.py's rules."""

from __future__ import annotations

import json

import pytest

from evals.airbench.score import GroundTruthError, gt_letter, parse_letter, score_foundation
from evals.airbench.store import read_results


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("A", "A"),
        ("B.", "B"),
        ("  C\n", "C"),
        ("D. Dogs barking", "D"),
        ("The answer is A.", "A"),  # second-to-last character
        ("The answer is (B)", "B"),
        ("It is\nB.", "B"),  # newlines are removed before parsing
        ("Answer: C.", "A"),  # reference quirk: "Answer" starts with A
        ("A dog barks.", "A"),  # reference quirk: free text starting with A-D reads as that letter
        ("The answer is A", None),  # last char 'A', second-to-last ' '
        ("the answer is b.", None),  # lowercase letters never count
        ("a", None),
        ("c.", None),
        ("I think it is a cat", None),
        ("Sound of rain", None),
        ("", None),
        ("   ", None),
        ("None", None),
        (None, None),
        ("E.", None),
        ("x", None),  # a single character that is not A-D: no second-to-last one
    ],
)
def test_parse_letter(response: str | None, letter: str | None) -> None:
    assert parse_letter(response) == letter


def test_gt_letter_matches_choice_text_in_order() -> None:
    item = {"choice_a": "dog", "choice_b": "cat", "choice_c": "bird", "choice_d": "cat", "answer_gt": "cat"}
    assert gt_letter(item) == "B"  # first match wins, as the reference's if/elif chain
    two = {"choice_a": "male", "choice_b": "female", "answer_gt": "female"}
    assert gt_letter(two) == "B"
    two_null = {"choice_a": "male", "choice_b": "female", "choice_c": None, "choice_d": None, "answer_gt": "male"}
    assert gt_letter(two_null) == "A"
    with pytest.raises(GroundTruthError, match="uniq_id 7"):
        gt_letter({"choice_a": "a", "choice_b": "b", "answer_gt": "Female", "uniq_id": 7})  # exact match only


def _rec(uid: int, task: str, dataset: str, response: str | None, gt: str, **extra) -> dict:
    return {"uniq_id": uid, "task_name": task, "dataset_name": dataset, "response": response, "question": "Q?",
            "choice_a": "one", "choice_b": "two", "choice_c": "three", "choice_d": "four", "answer_gt": gt, **extra}


def test_score_foundation_hand_computed() -> None:
    records = [
        # Task_X on dataset d1: 3 scored (2 right), 1 unparsable
        _rec(0, "Task_X", "d1", "A", "one"),
        _rec(1, "Task_X", "d1", "The answer is B.", "two"),
        _rec(2, "Task_X", "d1", "C", "one"),
        _rec(3, "Task_X", "d1", "no idea", "one"),
        # Task_X on dataset d2: 1 scored, right
        _rec(4, "Task_X", "d2", "D.", "four"),
        # Task_Y: 2 scored (0 right), one failed request
        _rec(5, "Task_Y", "d1", "A", "two"),
        _rec(6, "Task_Y", "d1", "B", "three"),
        _rec(7, "Task_Y", "d1", None, "one", error="HTTP 500: boom"),
        # task_name None is skipped like the reference
        _rec(8, None, "d1", "A", "one"),
        # a two-choice item written the reference's way (choice_c/d null)
        {"uniq_id": 9, "task_name": "Task_Z", "dataset_name": "d1", "response": "B", "choice_a": "male",
         "choice_b": "female", "choice_c": None, "choice_d": None, "answer_gt": "female"},
    ]
    s = score_foundation(records)
    assert {k: (v.total, v.correct, v.unparsable) for k, v in s.by_task_id.items()} == {
        "Task_X_d1": (3, 2, 1), "Task_X_d2": (1, 1, 0), "Task_Y_d1": (2, 0, 1), "Task_Z_d1": (1, 1, 0)}
    assert {k: (v.total, v.correct) for k, v in s.by_task.items()} == {
        "Task_X": (4, 3), "Task_Y": (2, 0), "Task_Z": (1, 1)}
    assert s.by_task_id["Task_X_d1"].accuracy == pytest.approx(2 / 3)
    assert (s.unparsable, s.errors, s.skipped) == (2, 1, 1)
    assert s.plain_mean == pytest.approx((3 / 4 + 0 + 1) / 3)
    assert s.weighted_mean == pytest.approx(4 / 7)
    out = s.to_json()
    assert out["by_task"]["Task_X"]["accuracy"] == pytest.approx(0.75)
    json.dumps(out)


def test_score_reads_reference_format_files(tmp_path) -> None:
    """A file as Inference_Foundation.py writes it (no extra fields), with a rerun record for one uniq_id
    and a final line cut off by a crash."""
    rows = [_rec(0, "Task_X", "d1", None, "one", error="timeout"), _rec(1, "Task_X", "d1", "B", "two"),
            _rec(0, "Task_X", "d1", "A.", "one")]
    path = tmp_path / "Foundation_result_modelx.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"uniq_id": 2, "task_na')
    records = read_results(path)
    assert [r["uniq_id"] for r in records] == [0, 1]
    s = score_foundation(records)
    assert (s.total, s.correct, s.unparsable, s.errors) == (2, 2, 0, 0)


def test_score_cli_prints_and_writes(tmp_path) -> None:
    from typer.testing import CliRunner

    from evals.airbench.cli import app

    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [_rec(0, "Sound_AQA", "x", "A", "one"),
                                                            _rec(1, "Sound_AQA", "x", "zzz", "one")]))
    result = CliRunner().invoke(app, ["score", str(path), "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "Sound_AQA_x: Sum=1, correct=1, acc=100.00%, no letter=1" in result.output
    assert json.loads((tmp_path / "s.json").read_text())["weighted_mean"] == 1.0


def test_align_maps_free_text_to_letters(scripted, tmp_path) -> None:
    """align_in_foundation.py's flow over real HTTP: the reference prompt goes out, the reply becomes the
    response that score_foundation parses; scope "all" sends every answered item, "unparsable" only the rest;
    replies are cached."""
    import asyncio

    from evals.airbench.align import AlignConfig, align

    def script(req: dict) -> tuple[int, str]:
        return 200, "B" if "a cat" in req["messages"][0]["content"] else "A"

    scripted.script = script
    records = [_rec(0, "Sound_AQA", "x", "It is a cat", "two"), _rec(1, "Sound_AQA", "x", "C", "one"),
               _rec(2, "Sound_AQA", "x", None, "one", error="HTTP 500")]
    config = AlignConfig(base_url=scripted.url, model="mapper", cache=tmp_path / "cache.jsonl")
    aligned = asyncio.run(align(records, config))
    assert len(scripted.requests) == 2 and {r["temperature"] for r in scripted.requests} == {1.0}
    assert scripted.requests[0]["messages"][0]["content"].startswith('There is a question "')
    assert [r["response"] for r in aligned] == ["B", "A", None]
    assert aligned[0]["response_raw"] == "It is a cat"
    s = score_foundation(aligned)
    assert (s.total, s.correct, s.unparsable) == (2, 2, 1)  # B for "two", A for "one"

    scripted.requests.clear()
    only = asyncio.run(align(records, AlignConfig(**{**config.__dict__, "scope": "unparsable"})))
    assert scripted.requests == []  # "It is a cat" was asked before: served from the cache
    assert [r["response"] for r in only] == ["B", "C", None]
