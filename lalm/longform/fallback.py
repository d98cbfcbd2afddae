"""Whisper's temperature fallback for transcription windows: decode greedily, and when the answer looks like a
decoding failure decode it again at the next temperature of a schedule.

OpenAI documents it for `temperature` 0 on /v1/audio/transcriptions ("the model will use log probability to
automatically increase the temperature until certain thresholds are hit"). The rule is openai-whisper's
`decode_with_fallback` and faster-whisper's `generate_with_fallback`, with their defaults (lalm.config.Settings):

- a try fails when its text's compression ratio is above 2.4 (a loop: the same phrase again and again, the main
  source of inserted words in chat audio-language models) or its tokens' mean logprob is below -1.0;
- the no-speech answer (lalm.tasks.NO_SPEECH), or no text, of the first, greedy try is final: Whisper does not
  retry silence either. A later, sampled try that answers it (or ends at once, with no text) fails, and is kept
  only if every try does: Whisper's no-speech verdict does not depend on the temperature, and a sampled
  "(no speech)" would drop the window's speech;
- when every try fails, the one kept is faster-whisper's choice: the highest mean logprob among the tries that
  did not loop, or among all of them when every one looped (openai-whisper keeps the last try);
- an engine error on a retry keeps the best try so far instead of failing the window;
- a retry is decoded without the window's previous-text prompt (SpeechRequest.prompt and .screen: the caller's
  `prompt`, on-screen text): a sampled try given a prompt can copy it, and copied text reads as likely, so it
  passes the logprob rule (measured: an unintelligible 2 s window of a slide talk written as three words of its
  slide). Whisper resets its prompt after a hot try as well (`prompt_reset_on_temperature`);
- lalm's own rule, for on-screen text (SpeechRequest.screen): a greedy try that passes but says no word of it
  (lalm.screen_text.says_screen_words) is decoded again greedily without it (the caller's prompt kept), and
  that try is kept if it passes too; a greedy try with it that fails is followed by the greedy try without it
  before the schedule climbs, and when every try fails it is left out of the choice unless it says a word of
  it. A window that says none of its slide is not about it, and as a prompt the slide only moves Whisper's
  guesses on speech it hears badly (measured on slides nobody reads out, the talks of bench/screen_text.py:
  +0.8 to +3.0 points of WER with the slide as the prompt); a window about its slide still decodes once.

Unlike both, each temperature is sampled once (they sample `best_of` = 5 candidates above 0 and keep the
likeliest), and the temperature reported for a window is that of the try kept (faster-whisper reports the
schedule's last one when every try fails).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from lalm.config import Settings
from lalm.engines.base import Completion, Engine, EngineError, Message, SamplingParams, Usage
from lalm.metrics import compression_ratio
from lalm.screen_text.context import says_screen_words
from lalm.tasks import is_no_speech

__all__ = ["Attempt", "Fallback", "avg_logprob", "compression_ratio", "generate_with_fallback", "keep_best",
           "needs_fallback", "says_nothing"]


@dataclass(frozen=True)
class Fallback:
    """The schedule and thresholds (lalm.config.Settings: fallback_temperatures, compression_ratio_threshold,
    logprob_threshold). A threshold of inf (compression) or -inf (logprob) turns its rule off; a schedule of
    one temperature turns the fallback off."""

    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float = 2.4
    logprob_threshold: float = -1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Fallback:
        return cls(tuple(settings.fallback_temperatures), settings.compression_ratio_threshold,
                   settings.logprob_threshold)


@dataclass(frozen=True)
class Attempt:
    """One try of a window: the engine's `completion` at `temperature`, with the figures the rule reads."""

    temperature: float
    completion: Completion
    compression_ratio: float
    avg_logprob: float


def avg_logprob(token_logprobs: Sequence[tuple[str, float]]) -> float:
    """Mean logprob of the sampled tokens, (token text, logprob) as engines give them, the end of turn included
    (as Whisper counts its end-of-text token); 0.0 when there are none, which no threshold fails."""
    return sum(lp for _, lp in token_logprobs) / len(token_logprobs) if token_logprobs else 0.0


def says_nothing(text: str) -> bool:
    """The no-speech answer, or no text at all (a sampled try can end at once)."""
    return not text.strip() or is_no_speech(text)


def needs_fallback(attempt: Attempt, rule: Fallback) -> bool:
    """Whether `attempt` looks like a decoding failure under `rule`, so the window is decoded again."""
    if says_nothing(attempt.completion.text):
        return attempt.temperature != rule.temperatures[0]
    return attempt.compression_ratio > rule.compression_ratio_threshold or attempt.avg_logprob < rule.logprob_threshold


def keep_best(attempts: Sequence[Attempt], rule: Fallback) -> Attempt:
    """The try to keep when every one of `attempts` (at least one) failed: among the tries that did not answer
    the no-speech answer (all, if each did), the highest mean logprob of those under the compression threshold,
    else of all (faster-whisper's choice)."""
    spoken = [a for a in attempts if not says_nothing(a.completion.text)] or list(attempts)
    unlooped = [a for a in spoken if a.compression_ratio <= rule.compression_ratio_threshold]
    return max(unlooped or spoken, key=lambda a: a.avg_logprob)


async def generate_with_fallback(engine: Engine, messages: Sequence[Message], params: SamplingParams,
                                 rule: Fallback) -> tuple[Attempt, Usage]:
    """Decode `messages` at each temperature of `rule` in turn (`params` otherwise, token logprobs asked for;
    sampled retries without the last message's Whisper prompt) until a try passes, with the greedy tries without
    the window's on-screen text of the module's docstring; the try kept and the usage of every try. Raises the
    engine's EngineError only when the first try fails; one on a later try keeps the best try so far."""
    usage = Usage()
    speech = messages[-1].speech if messages else None

    def without(**fields: None) -> Sequence[Message]:
        if speech is None:
            return messages
        return [*messages[:-1], dataclasses.replace(messages[-1], speech=dataclasses.replace(speech, **fields))]

    async def decode(asked: Sequence[Message], temperature: float) -> Attempt:
        nonlocal usage
        out = await engine.generate(asked, dataclasses.replace(params, temperature=temperature, logprobs=True))
        usage += out.usage
        mean = out.avg_logprob if out.avg_logprob is not None else avg_logprob(out.logprobs)
        return Attempt(temperature, out, compression_ratio(out.text.strip()), mean)

    first = await decode(messages, rule.temperatures[0])
    screen = speech.screen if speech is not None else None
    plain = without(screen=None) if screen else None
    if not needs_fallback(first, rule):
        if not screen or says_nothing(first.completion.text) or says_screen_words(first.completion.text, screen):
            return first, usage
        try:
            second = await decode(plain, first.temperature)
        except EngineError:
            return first, usage
        # a no-speech answer without the slide would drop words the try with it heard
        return (first if needs_fallback(second, rule) or says_nothing(second.completion.text) else second), usage
    attempts = [first]
    retries = [(without(prompt=None, screen=None), t) for t in rule.temperatures[1:]]
    for asked, temperature in ([(plain, first.temperature)] if plain is not None else []) + retries:
        try:
            attempts.append(await decode(asked, temperature))
        except EngineError:
            break
        if not needs_fallback(attempts[-1], rule):
            return attempts[-1], usage
    if screen and len(attempts) > 1 and not says_screen_words(first.completion.text, screen):
        attempts = attempts[1:]  # the slide was not said: the choice is the one made without it
    return keep_best(attempts, rule), usage
