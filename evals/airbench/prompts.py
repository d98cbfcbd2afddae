"""AIR-Bench's own prompt texts, verbatim, and how the reference fills them.

These are evaluation prompts: a score is only comparable with the leaderboard when the model sees exactly
the reference's text, so they live here beside the code that reproduces the reference rather than in
lalm's prompts/ folder (which holds lalm's own task presets and is free to change). Do not edit them.

Sources (OFA-Sys/AIR-Bench, commit 9832476 "Update README.md"):
- `FOUNDATION_INSTRUCTION` and the choice lines: Inference_Foundation.py.
- `JUDGE_TEMPLATE`: score_chat.py, `build_test_file` (the judge model is gpt-4-0125-preview there).
- `ALIGN_TEMPLATE`, `ALIGN_ATTENTION`: align_in_foundation.py, `build_test_file`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ALIGN_ATTENTION",
    "ALIGN_TEMPLATE",
    "FOUNDATION_INSTRUCTION",
    "JUDGE_TEMPLATE",
    "align_prompt",
    "foundation_prompt",
    "judge_prompt",
]

FOUNDATION_INSTRUCTION = (
    "Choose the most suitable answer from options A, B, C, and D to respond the question in next line, "
    "you may only choose A or B or C or D."
)

JUDGE_TEMPLATE = (
    "You are a helpful and precise assistant for checking the quality of the answer.\n"
    "[Detailed Audio Description]\nXAudioX\n[Question]\nXQuestionX\n"
    "[The Start of Assistant 1s Answer]\nXAssistant1X\n[The End of Assistant 1s Answer]\n"
    "[The Start of Assistant 2s Answer]\nXAssistant2X\n[The End of Assistant 2s Answer]\n[System]\n"
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question and audio description displayed above. AI assistants are provided with detailed audio "
    "descriptions and questions.\n"
    "Please rate the helpfulness, relevance, accuracy, and comprehensiveness of their responses. "
    "Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better "
    "overall performance. "
    "Please output a single line containing only two values indicating the scores for Assistant 1 and 2, "
    "respectively. "
    "The two scores are separated by a space."
)

ALIGN_TEMPLATE = (
    'There is a question "QUESTION", and one response is "ANSWER". Among the following choices, which option '
    "best matches this response? You may only response with the letter of the option. If the letter of an "
    "option has already appeared in the Answer, then simply return that letter. If there are no matching "
    "options, then choose one at random. The following lines are the options."
)
ALIGN_ATTENTION = "To reiterate, the response you provide to me must be a single letter, either A, B, C, or D."


def foundation_prompt(item: Mapping[str, Any]) -> str:
    """The text sent with a Foundation item's audio (Inference_Foundation.py): the instruction, the question,
    then four choice lines. The reference formats missing choices with an f-string, so a two-choice item
    shows `C. None` and `D. None`; we keep that, since it is what the published models were asked."""
    choices = (
        f"A. {item['choice_a']}\nB. {item['choice_b']}\n"
        f"C. {item.get('choice_c')}\nD. {item.get('choice_d')}"
    )
    return FOUNDATION_INSTRUCTION + "\n" + item["question"] + "\n" + choices


def judge_prompt(meta_info: str, question: str, assistant1: str, assistant2: str) -> str:
    """The judge's single user message (score_chat.py). The reference fills the placeholders with a chain of
    `str.replace` in this order, so text that itself contains a later placeholder is replaced too; we chain
    the same way so the judge sees byte-identical prompts."""
    return (
        JUDGE_TEMPLATE.replace("XAudioX", meta_info)
        .replace("XQuestionX", question)
        .replace("XAssistant1X", assistant1)
        .replace("XAssistant2X", assistant2)
    )


def align_prompt(item: Mapping[str, Any]) -> str:
    """The message that asks an LLM to map a free-text Foundation answer to a letter (align_in_foundation.py).
    When choice_c or choice_d is missing the reference lists only A and B."""
    head = ALIGN_TEMPLATE.replace("ANSWER", item["response"]).replace("QUESTION", item["question"])
    choice_c, choice_d = item.get("choice_c"), item.get("choice_d")
    if choice_c is None or choice_d is None:
        return head + "\nA. " + item["choice_a"] + "\nB. " + item["choice_b"] + "\n" + ALIGN_ATTENTION
    return (
        head + "\nA. " + item["choice_a"] + "\nB. " + item["choice_b"] + "\nC. " + choice_c
        + "\nD. " + choice_d + "\n" + ALIGN_ATTENTION
    )
