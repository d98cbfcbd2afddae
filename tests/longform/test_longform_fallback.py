"""Whisper's temperature fallback (lalm.longform.fallback): the decision functions as units, and the window
runner (lalm.longform.run) driving it through a scripted engine at the Engine seam that answers by temperature,
so each rule can be met on cue. The endpoints are tested with a real engine in tests/serve/test_serve_fallback.py."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from lalm.config import Settings
from lalm.engines.base import (
    Capabilities,
    Completion,
    Delta,
    Engine,
    EngineError,
    SamplingParams,
    SpeechRequest,
    Usage,
)
from lalm.longform.fallback import (
    Attempt,
    Fallback,
    avg_logprob,
    compression_ratio,
    keep_best,
    needs_fallback,
)
from lalm.longform.run import TaskOptions, run_task, stream_task
from lalm.tasks import NO_SPEECH, get_task

SENTENCE = "The meeting starts at nine thirty on Monday, and the report is due on Friday."
LOOP = "and the report is due " * 12
RULE = Fallback()


def _attempt(text: str, logprob: float, temperature: float = 0.0) -> Attempt:
    return Attempt(temperature, Completion(text, "stop", Usage()), compression_ratio(text), logprob)


def test_compression_ratio_of_a_loop_is_above_the_threshold_and_of_speech_below():
    assert compression_ratio("") == 0.0
    assert compression_ratio(LOOP) > 2.4 > compression_ratio(SENTENCE)
    assert compression_ratio("the " * 18) > 2.4


def test_avg_logprob_is_the_mean_of_every_sampled_token():
    assert avg_logprob([("The", -0.5), (" end", -1.5), ("<|im_end|>", -1.0)]) == pytest.approx(-1.0)
    assert avg_logprob([]) == 0.0


def test_a_loop_or_an_unsure_answer_needs_a_fallback_and_no_speech_never():
    assert not needs_fallback(_attempt(SENTENCE, -0.3), RULE)
    assert needs_fallback(_attempt(LOOP, -0.1), RULE)  # a confident loop still fails
    assert needs_fallback(_attempt(SENTENCE, -1.2), RULE)
    assert not needs_fallback(_attempt(NO_SPEECH, -3.0), RULE)
    assert needs_fallback(_attempt(NO_SPEECH, -0.1, 0.4), RULE)  # sampled, it would drop the window's speech
    assert needs_fallback(_attempt("", 0.0, 0.2), RULE)  # a sampled try that ended at once, the same
    assert not needs_fallback(_attempt("", 0.0), RULE)
    assert not needs_fallback(_attempt(SENTENCE, -1.2), Fallback(logprob_threshold=-math.inf))
    assert not needs_fallback(_attempt(LOOP, -0.1), Fallback(compression_ratio_threshold=math.inf))


def test_when_every_try_fails_the_best_unlooped_one_is_kept_else_the_best_of_all():
    tries = [_attempt(LOOP, -0.2, 0.0), _attempt(SENTENCE, -1.8, 0.2), _attempt(SENTENCE, -1.4, 0.4),
             _attempt(LOOP, -0.5, 0.6)]
    assert keep_best(tries, RULE).temperature == 0.4  # not the loops, though they are more likely
    assert keep_best([tries[0], tries[3]], RULE).temperature == 0.0
    # a sampled no-speech answer is kept only when every try answered it
    assert keep_best([tries[0], _attempt(NO_SPEECH, -0.1, 0.2)], RULE).temperature == 0.0
    assert keep_best([_attempt(NO_SPEECH, -0.9, 0.2), _attempt(NO_SPEECH, -0.1, 0.4)], RULE).temperature == 0.4


def test_settings_hold_whispers_schedule_and_thresholds():
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    rule = Fallback.from_settings(Settings.model_construct(**defaults))
    assert rule == Fallback((0.0, 0.2, 0.4, 0.6, 0.8, 1.0), 2.4, -1.0)
    # a rule turned off survives the JSON that hands settings to worker processes
    off = Settings(logprob_threshold=-math.inf)
    assert Settings.model_validate_json(off.model_dump_json()).logprob_threshold == -math.inf
    assert Fallback.from_settings(Settings(fallback_temperatures=[0.0, 0.5])).temperatures == (0.0, 0.5)


@pytest.mark.parametrize("schedule", [[0.2, 0.4], [0.0, 2.5], [0.0, -0.2]])
def test_a_schedule_must_start_greedy_within_the_apis_temperatures(schedule):
    with pytest.raises(ValueError, match=r"must start at 0\.0"):
        Settings(fallback_temperatures=schedule)


class ByTemperature(Engine):
    """Answers with the scripted (text, logprob of each token) of the temperature asked for, recording the
    temperatures of its calls; each word is a token, and the end of turn one more. A temperature with no
    script fails as an upstream restarting would."""

    model_name = "by-temperature"

    def __init__(self, answers: dict[float, tuple[str, float]]) -> None:
        self.answers = answers
        self.temperatures: list[float] = []

    async def generate(self, messages, params: SamplingParams) -> Completion:
        self.temperatures.append(params.temperature)
        if params.temperature not in self.answers:
            raise EngineError("The vLLM upstream is restarting.", 503, "upstream_unavailable")
        text, logprob = self.answers[params.temperature]
        tokens = (*((w, logprob) for w in text.split(" ")), ("<|im_end|>", logprob))
        return Completion(text, "stop", Usage(100, len(tokens)), logprobs=tokens if params.logprobs else ())

    async def stream(self, messages, params: SamplingParams):
        out = await self.generate(messages, params)
        for i, word in enumerate(out.text.split(" ")):
            yield Delta((" " if i else "") + word)
        yield Delta("", out.finish_reason, out.usage)


def _run(engine: Engine, audio: np.ndarray, temperature: float = 0.0, task: str = "transcribe",
         fallback: Fallback | None = RULE):
    return asyncio.run(run_task(engine, audio, get_task(task), SamplingParams(temperature=temperature),
                                TaskOptions(fallback=fallback)))


def test_a_looping_window_is_decoded_again_at_the_next_temperature(speech):
    engine = ByTemperature({0.0: (LOOP, -0.1), 0.2: (SENTENCE, -0.3)})
    result = _run(engine, speech)
    assert engine.temperatures == [0.0, 0.2]
    assert result.text == SENTENCE
    assert [(s.text, s.temperature) for s in result.segments] == [(SENTENCE, 0.2)]
    assert result.usage.prompt_tokens == 200  # every try counts


def test_an_unsure_window_climbs_the_schedule_and_keeps_the_best_try(speech):
    answers = {0.0: (SENTENCE, -1.5), 0.2: (LOOP, -0.2), 0.4: (SENTENCE, -1.1), 0.6: (SENTENCE, -1.3),
               0.8: (SENTENCE, -2.0), 1.0: (SENTENCE, -1.9)}
    engine = ByTemperature(answers)
    result = _run(engine, speech)
    assert engine.temperatures == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert [s.temperature for s in result.segments] == [0.4]


@pytest.mark.parametrize("case", ["temperature above 0", "no fallback asked for", "not a transcript",
                                  "a schedule of one"])
def test_no_retry_unless_asked_at_temperature_0_for_a_transcript(speech, case):
    temperature = 0.5 if case == "temperature above 0" else 0.0
    engine = ByTemperature({temperature: (LOOP, -2.0)})
    fallback = {"no fallback asked for": None, "a schedule of one": Fallback((0.0,))}.get(case, RULE)
    result = _run(engine, speech, temperature, "summarize" if case == "not a transcript" else "transcribe", fallback)
    assert engine.temperatures == [temperature]
    assert result.text.strip() == LOOP.strip()
    assert all(s.temperature == temperature for s in result.segments)


def test_the_no_speech_answer_is_never_retried(speech):
    engine = ByTemperature({0.0: (NO_SPEECH, -4.0)})
    assert _run(engine, speech).text == "" and engine.temperatures == [0.0]


def test_a_sampled_no_speech_answer_does_not_drop_the_windows_speech(speech):
    engine = ByTemperature({0.0: (LOOP, -0.1), 0.2: (NO_SPEECH, -0.1), 0.4: (SENTENCE, -0.3)})
    assert _run(engine, speech).text == SENTENCE and engine.temperatures == [0.0, 0.2, 0.4]


def test_an_engine_error_on_a_retry_keeps_the_best_try_so_far_and_on_the_first_fails(speech):
    engine = ByTemperature({0.0: (SENTENCE, -1.5), 0.2: (SENTENCE.upper(), -1.2)})  # 0.4 fails
    result = _run(engine, speech)
    assert engine.temperatures == [0.0, 0.2, 0.4] and result.text == SENTENCE.upper()
    assert [s.temperature for s in result.segments] == [0.2]
    with pytest.raises(EngineError, match="restarting"):
        _run(ByTemperature({}), speech)


def test_a_streamed_window_shows_only_the_try_kept(speech):
    engine = ByTemperature({0.0: (LOOP, -0.1), 0.2: (SENTENCE, -0.3)})

    async def events():
        return [e async for e in stream_task(engine, speech, get_task("transcribe"), SamplingParams(temperature=0),
                                             TaskOptions(fallback=RULE))]

    streamed = asyncio.run(events())
    assert "".join(e.text for e in streamed) == SENTENCE
    assert [e.segment.temperature for e in streamed if e.segment] == [0.2]
    assert engine.temperatures == [0.0, 0.2]


def test_retries_are_decoded_without_the_whisper_prompt(speech):
    """A sampled retry given the window's prompt can copy it (on-screen names written for speech nobody
    understood), so only the greedy try reads it."""
    prompts = []

    class Prompted(ByTemperature):
        async def generate(self, messages, params: SamplingParams) -> Completion:
            prompts.append(messages[-1].speech.prompt)
            return await super().generate(messages, params)

    engine = Prompted({0.0: (LOOP, -0.1), 0.2: (SENTENCE, -1.5), 0.4: (SENTENCE, -0.3)})
    result = asyncio.run(run_task(engine, speech, get_task("transcribe"), SamplingParams(temperature=0.0),
                                  TaskOptions(fallback=RULE, speech=SpeechRequest("transcribe", "en", "Zorblax."))))
    assert prompts == ["Zorblax.", None, None] and result.text == SENTENCE


class ByScreen(ByTemperature):
    """A Whisper model that answers a greedy try by whether the window's on-screen text is in its prompt; records
    (prompt, screen) of each call."""

    capabilities = Capabilities(family="whisper")

    def __init__(self, with_screen: tuple[str, float], without_screen: tuple[str, float]) -> None:
        super().__init__({0.2: (SENTENCE, -0.3)})
        self.greedy = {True: with_screen, False: without_screen}
        self.asked: list[tuple[str | None, str | None]] = []

    async def generate(self, messages, params: SamplingParams) -> Completion:
        speech = messages[-1].speech
        self.asked.append((speech.prompt, speech.screen))
        self.answers[0.0] = self.greedy[speech.screen is not None]
        return await super().generate(messages, params)


def _screened(engine: Engine, audio: np.ndarray, screen: str = "Zorblax Quintavell, Castelvetrano."):
    options = TaskOptions(fallback=RULE, speech=SpeechRequest("transcribe", "en", "Glossary."),
                          window_screen=lambda start, end: screen)
    return asyncio.run(run_task(engine, audio, get_task("transcribe"), SamplingParams(temperature=0.0), options))


def test_a_window_that_says_none_of_its_screen_text_is_decoded_again_without_it(speech):
    """Slides nobody talks about only move Whisper's guesses: the greedy try without them is kept, with the
    caller's own prompt still given, and both tries count in the usage."""
    engine = ByScreen(("The meeting starts at nine on Monday.", -0.4), (SENTENCE, -0.3))
    result = _screened(engine, speech)
    assert engine.asked == [("Glossary.", "Zorblax Quintavell, Castelvetrano."), ("Glossary.", None)]
    assert engine.temperatures == [0.0, 0.0]
    assert result.text == SENTENCE and result.usage.prompt_tokens == 200


def test_a_window_that_says_a_screen_word_decodes_once(speech):
    said = "Our speaker is Zorblax Quintavell."
    engine = ByScreen((said, -0.4), (SENTENCE, -0.3))
    assert _screened(engine, speech).text == said
    assert engine.temperatures == [0.0]


def test_the_try_with_screen_text_stays_when_the_one_without_fails(speech):
    engine = ByScreen(("The meeting starts at nine on Monday.", -0.4), (LOOP, -0.1))
    assert _screened(engine, speech).text == "The meeting starts at nine on Monday."
    assert engine.temperatures == [0.0, 0.0]


def test_a_failed_try_with_screen_text_is_followed_by_the_greedy_try_without_it(speech):
    engine = ByScreen((LOOP, -0.1), (SENTENCE, -0.3))
    assert _screened(engine, speech).text == SENTENCE
    assert engine.asked == [("Glossary.", "Zorblax Quintavell, Castelvetrano."), ("Glossary.", None)]
    assert engine.temperatures == [0.0, 0.0]
    # and when that fails too, the schedule climbs without any prompt
    engine = ByScreen((LOOP, -0.1), (LOOP, -0.1))
    assert _screened(engine, speech).text == SENTENCE
    assert engine.asked[2:] == [(None, None)] and engine.temperatures == [0.0, 0.0, 0.2]


def test_when_every_try_fails_the_try_with_screen_text_is_chosen_only_if_it_says_some(speech):
    """The choice among failed tries is the one the window would get without its slide, unless the greedy try
    with the slide says a word of it."""
    unsure = {t: (SENTENCE, -1.5) for t in (0.2, 0.4, 0.6, 0.8, 1.0)}
    engine = ByScreen(("The children play the fungalda.", -1.1), (SENTENCE, -1.6))
    engine.answers.update(unsure)
    assert _screened(engine, speech).text == SENTENCE  # -1.5 beats -1.6; the try with the slide (-1.1) is out
    engine = ByScreen(("Our speaker is Zorblax Quintavell.", -1.1), (SENTENCE, -1.6))
    engine.answers.update(unsure)
    assert _screened(engine, speech).text == "Our speaker is Zorblax Quintavell."


def test_a_chat_model_gets_no_screen_text_in_its_speech_request(speech):
    """A model that reads instructions has the slide in its instruction (window_context): the Whisper-only rule
    would decode its windows twice for nothing."""
    engine = ByScreen(("The meeting starts at nine on Monday.", -0.4), (SENTENCE, -0.3))
    engine.capabilities = Capabilities(family="lalm")
    _screened(engine, speech)
    assert engine.asked == [("Glossary.", None)] and engine.temperatures == [0.0]  # one decode, no slide in it


def test_a_no_speech_answer_without_the_screen_text_does_not_drop_the_window(speech):
    engine = ByScreen(("The meeting starts at nine on Monday.", -0.4), (NO_SPEECH, -0.3))
    assert _screened(engine, speech).text == "The meeting starts at nine on Monday."
