"""Judge-reply parsing, chat aggregation on a hand-computed example, and the judge loop (both orders, retries,
cache) over real HTTP against a scripted judge."""

from __future__ import annotations

import asyncio
import re

import pytest

from evals.airbench.aggregate import aggregate_chat
from evals.airbench.client import Retry
from evals.airbench.judge import JudgeConfig, judge, parse_judge_reply


@pytest.mark.parametrize(
    ("reply", "scores"),
    [
        ("8 7", (8, 7)),
        ("10 1", (10, 1)),
        (" 9 6\n", (9, 6)),
        ("8 7 6", None),  # three numbers
        ("11 7", None),
        ("8 11", None),
        ("0 5", None),
        ("-1 5", None),
        ("+8 7", None),
        ("08 7", None),
        ("8.5 7", None),
        ("8  7", None),  # two spaces: three parts, as cal_score.py's split(' ')
        ("8\n7", None),  # newlines removed first: "87"
        ("8,7", None),
        ("eight seven", None),
        ("Assistant 1: 8, Assistant 2: 7", None),
        ("The scores are 8 and 7.", None),
        ("8", None),
        ("", None),
        (None, None),
        ("٨ ٧", None),  # non-ASCII digits that int() would accept
    ],
)
def test_parse_judge_reply(reply: str | None, scores: tuple[int, int] | None) -> None:
    assert parse_judge_reply(reply) == scores


def _j(task: str, order: str, model: int | None, reference: int | None = 5) -> dict:
    if model is None:
        return {"task_name": task, "order": order, "scores": None}
    scores = [reference, model] if order == "gt_first" else [model, reference]
    return {"task_name": task, "order": order, "scores": scores, "model_score": model, "reference_score": reference}


def test_aggregate_chat_hand_computed() -> None:
    judgments = [
        # speech pools speech_QA and speech_dialogue_QA per order
        _j("speech_QA", "gt_first", 8), _j("speech_QA", "model_first", 6),
        _j("speech_dialogue_QA", "gt_first", 4), _j("speech_dialogue_QA", "model_first", 10),
        _j("speech_dialogue_QA", "gt_first", None),  # a failure: counted, left out of the mean
        # sound
        _j("sound_QA", "gt_first", 7), _j("sound_QA", "model_first", 7),
        _j("sound_generation_QA", "gt_first", 1), _j("sound_generation_QA", "model_first", 3),
        # music
        _j("music_QA", "gt_first", 9), _j("music_generation_analysis_QA", "model_first", 5),
        # mixed = mean of the two mixed tasks
        _j("speech_and_sound_QA", "gt_first", 6), _j("speech_and_sound_QA", "model_first", 8),
        _j("speech_and_music_QA", "gt_first", 2), _j("speech_and_music_QA", "model_first", 4),
    ]
    out = aggregate_chat(judgments)
    cats = out["categories"]
    # speech: gt_first mean (8+4)/2=6, model_first (6+10)/2=8 -> 7
    assert cats["speech"] == pytest.approx(7.0)
    # sound: gt_first (7+1)/2=4, model_first (7+3)/2=5 -> 4.5
    assert cats["sound"] == pytest.approx(4.5)
    # music: gt_first 9, model_first 5 -> 7
    assert cats["music"] == pytest.approx(7.0)
    # speech_and_sound 7, speech_and_music 3 -> mixed 5
    assert cats["mixed"] == pytest.approx(5.0)
    assert cats["average"] == pytest.approx((7 + 4.5 + 7 + 5) / 4)
    assert out["by_group"]["speech"]["failed"] == 1
    assert out["by_group"]["speech"]["judged"] == 4
    assert out["by_task"]["speech_QA"]["model"] == pytest.approx(7.0)
    # win rate (model above the reference answer's 5): speech gt_first 1/2, model_first 2/2 -> 0.75
    assert out["by_group"]["speech"]["win_rate"] == pytest.approx(0.75)
    assert (out["judged"], out["failed"]) == (14, 1)
    assert list(out["by_task"])[:2] == ["speech_QA", "speech_dialogue_QA"]


def test_aggregate_chat_partial_run_has_no_average() -> None:
    out = aggregate_chat([_j("speech_QA", "gt_first", 8), _j("speech_and_sound_QA", "gt_first", 6)])
    assert out["categories"]["speech"] == 8
    assert out["categories"]["mixed"] is None  # speech_and_music missing
    assert out["categories"]["average"] is None


def _chat_records() -> list[dict]:
    base = {"meta_info": "a dog barks", "question": "What animal?", "answer_gt": "A dog.", "dataset_name": "d"}
    return [base | {"uniq_id": 0, "task_name": "sound_QA", "response": "A cat."},
            base | {"uniq_id": 1, "task_name": "speech_QA", "response": "A dog barking."},
            base | {"uniq_id": 2, "task_name": "music_QA", "response": None, "error": "HTTP 500"}]


def _answer_in(prompt: str, n: int) -> str:
    return re.search(rf"\[The Start of Assistant {n}s Answer\]\n(.*?)\n", prompt).group(1)


def test_judge_both_orders_retries_and_cache(scripted, tmp_path) -> None:
    """The judge sees both orders; an unparsable reply is asked again; the model's score comes from its own
    position; a rerun is served from the cache without a single request."""
    calls: dict[str, int] = {}

    def script(req: dict) -> tuple[int, str]:
        prompt = req["messages"][0]["content"]
        model_first = _answer_in(prompt, 1) != "A dog."
        calls[prompt] = calls.get(prompt, 0) + 1  # the prompt differs per record and per order
        if "A cat." in prompt:  # the cat answer: first reply is words, then scores
            if calls[prompt] == 1:
                return 200, "Assistant 1 is better."
            return 200, "3 9" if model_first else "9 3"  # reference answer 9, model 3
        return 200, "8 6" if model_first else "6 8"  # model 8, reference 6

    scripted.script = script
    config = JudgeConfig(base_url=scripted.url, model="judge", cache=tmp_path / "cache.jsonl", temperature=0.7,
                         attempts=3, retry=Retry(attempts=2, base=0.01))
    out = asyncio.run(judge(_chat_records(), config))
    assert out["requests"] == 6 and out["cache_hits"] == 0  # 2 records x 2 orders + 2 retries
    assert out["skipped_no_response"] == 1
    assert {r["temperature"] for r in scripted.requests} == {0.7}
    assert {r["max_tokens"] for r in scripted.requests} == {1024}
    assert out["by_task"]["sound_QA"]["model"] == pytest.approx(3.0)
    assert out["by_task"]["sound_QA"]["reference"] == pytest.approx(9.0)
    assert out["by_task"]["speech_QA"]["model"] == pytest.approx(8.0)
    orders = {(j["uniq_id"], j["order"]): j for j in out["judgments"]}
    assert orders[(0, "gt_first")]["replies"] == ["Assistant 1 is better.", "9 3"]
    assert orders[(0, "model_first")]["model_score"] == 3

    scripted.requests.clear()
    again = asyncio.run(judge(_chat_records(), config))
    assert scripted.requests == [] and again["requests"] == 0 and again["cache_hits"] == 4
    assert again["categories"] == out["categories"]
    # a different judge model is a different key: asked again
    asyncio.run(judge(_chat_records(), JudgeConfig(base_url=scripted.url, model="other", cache=config.cache,
                                                   temperature=0.7, retry=Retry(attempts=1))))
    assert len(scripted.requests) == 4


def test_judge_counts_failures_after_attempts(scripted, tmp_path) -> None:
    scripted.script = lambda req: (200, "8 7 6")
    config = JudgeConfig(base_url=scripted.url, model="judge", cache=tmp_path / "c.jsonl", attempts=2,
                         retry=Retry(attempts=1))
    out = asyncio.run(judge(_chat_records()[:1], config))
    assert out["requests"] == 4 and out["failed"] == 2 and out["judged"] == 0
    assert out["categories"]["sound"] is None
    # cached failures are not paid for again, unless asked to
    scripted.requests.clear()
    asyncio.run(judge(_chat_records()[:1], config))
    assert scripted.requests == []
    scripted.script = lambda req: (200, "5 5")
    retried = asyncio.run(judge(_chat_records()[:1], JudgeConfig(**{**config.__dict__, "retry_failures": True})))
    assert retried["judged"] == 2 and retried["by_task"]["sound_QA"]["model"] == 5


def test_judge_endpoint_errors_are_not_cached(scripted, tmp_path) -> None:
    scripted.script = lambda req: (503, "overloaded")
    config = JudgeConfig(base_url=scripted.url, model="judge", cache=tmp_path / "c.jsonl",
                         retry=Retry(attempts=3, base=0.01))
    out = asyncio.run(judge(_chat_records()[:1], config))
    assert out["http_errors"] == 2 and len(scripted.requests) == 6  # 3 tries per order
    assert "HTTP 503" in out["judgments"][0]["error"]
    scripted.script = lambda req: (200, "4 6")
    out = asyncio.run(judge(_chat_records()[:1], config))
    assert out["judged"] == 2 and out["http_errors"] == 0
