"""The reference prompt texts and how they are filled."""

from __future__ import annotations

from evals.airbench.prompts import ALIGN_ATTENTION, JUDGE_TEMPLATE, align_prompt, foundation_prompt, judge_prompt


def test_foundation_prompt_four_and_two_choices() -> None:
    four = {"question": "What is the gender?", "choice_a": "a1", "choice_b": "b1", "choice_c": "c1", "choice_d": "d1"}
    assert foundation_prompt(four) == (
        "Choose the most suitable answer from options A, B, C, and D to respond the question in next line, you may "
        "only choose A or B or C or D.\nWhat is the gender?\nA. a1\nB. b1\nC. c1\nD. d1")
    # Inference_Foundation.py formats missing choices with an f-string: "None"
    two = {"question": "Q?", "choice_a": "male", "choice_b": "female"}
    assert foundation_prompt(two).endswith("\nQ?\nA. male\nB. female\nC. None\nD. None")


def test_judge_prompt_fills_in_reference_order() -> None:
    text = judge_prompt("a dog barks", "What animal?", "A dog.", "A cat.")
    assert text.startswith("You are a helpful and precise assistant for checking the quality of the answer.\n"
                           "[Detailed Audio Description]\na dog barks\n[Question]\nWhat animal?\n"
                           "[The Start of Assistant 1s Answer]\nA dog.\n[The End of Assistant 1s Answer]\n"
                           "[The Start of Assistant 2s Answer]\nA cat.\n[The End of Assistant 2s Answer]\n[System]\n")
    assert text.endswith("The two scores are separated by a space.")
    assert not any(p in text for p in ("XAudioX", "XQuestionX", "XAssistant1X", "XAssistant2X"))
    # chained str.replace, as score_chat.py: a later placeholder inside earlier text is replaced too
    assert "[Question]\nQ\n" in judge_prompt("XQuestionX", "Q", "a", "b").split("[Detailed Audio Description]\n")[1]
    assert JUDGE_TEMPLATE.count("X") >= 4


def test_align_prompt_two_and_four_choices() -> None:
    item = {"question": "Which?", "response": "It sounds like a cat", "choice_a": "dog", "choice_b": "cat",
            "choice_c": "cow", "choice_d": "hen"}
    text = align_prompt(item)
    assert text.startswith('There is a question "Which?", and one response is "It sounds like a cat".')
    assert text.endswith("\nA. dog\nB. cat\nC. cow\nD. hen\n" + ALIGN_ATTENTION)
    two = item | {"choice_c": None, "choice_d": None}
    assert align_prompt(two).endswith("\nA. dog\nB. cat\n" + ALIGN_ATTENTION)
