"""Whisper's temperature fallback on /v1/audio/transcriptions and /translations, through the real openai SDK
against the gateway on the transformers engine, with a checkpoint whose greedy answer loops (the
`looping_model` fixture: " the the the ..."; sampling writes varied tokens, each about as unlikely as the
next, mean logprob about -6.7). A request at temperature 0 is decoded again at higher temperatures and
verbose_json reports the temperature of the try kept; a request above 0 is decoded once, as asked; chat
completions keep OpenAI's chat meaning of temperature 0 (greedy)."""

from __future__ import annotations

import math

import pytest
from media import encode
from serve_support import InProcessGateway, input_audio, user

from lalm.config import Settings
from lalm.longform.fallback import compression_ratio

SCHEDULE = Settings.model_fields["fallback_temperatures"].default  # the tests' environment turns it off
LOOP = "the the the the"  # in the greedy answer; sampled answers are checked by the rule itself (ratio <= 2.4)


def _gateway(model, **settings) -> InProcessGateway:
    return InProcessGateway(Settings(engine="hf", model=str(model), served_model_name="tiny", window_max_tokens=48,
                                     fallback_temperatures=SCHEDULE, **settings)).start()


@pytest.fixture(scope="module")
def loops_only(looping_model):
    """The gateway with the compression rule alone (the logprob rule off): only a loop is decoded again."""
    gw = _gateway(looping_model, logprob_threshold=-math.inf)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def whispers_rules(looping_model):
    """The gateway with Whisper's thresholds: every try of the looping model fails one of them."""
    gw = _gateway(looping_model)
    yield gw
    gw.stop()


def _transcribe(client, speech, temperature: float, **kw):
    return client.audio.transcriptions.create(model="tiny", file=("a.wav", encode(speech, "wav")),
                                              temperature=temperature, **kw)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks translations deprecated
def test_a_looping_window_is_retried_at_the_next_temperature(loops_only, speech):
    client = loops_only.client()
    # the model's greedy answer loops: chat completions (no fallback there) show it
    chat = client.chat.completions.create(model="tiny", messages=[user(input_audio(speech))], temperature=0,
                                          max_tokens=48, extra_body={"task": "transcribe"})
    assert LOOP in chat.choices[0].message.content
    verbose = _transcribe(client, speech, 0, response_format="verbose_json")
    assert verbose.segments and {s.temperature for s in verbose.segments} == {0.2}
    assert compression_ratio(verbose.text) <= 2.4
    translated = client.audio.translations.create(model="tiny", file=("a.wav", encode(speech, "wav")),
                                                  temperature=0, response_format="verbose_json")
    assert translated.segments and {s.temperature for s in translated.segments} == {0.2}
    # two tries, both counted; a request at 0.2 is one try
    assert _transcribe(client, speech, 0).usage.input_tokens == 2 * _transcribe(client, speech, 0.2).usage.input_tokens
    # streamed: the loop is never shown, only the try kept
    events = list(_transcribe(client, speech, 0, stream=True))
    done = events[-1]
    assert done.type == "transcript.text.done" and "".join(e.delta for e in events[:-1]) == done.text
    assert compression_ratio(done.text) <= 2.4


def test_temperature_above_0_is_used_as_it_is(whispers_rules, speech):
    client = whispers_rules.client()
    # at 0 every try fails (a loop, then answers with a mean logprob far below -1.0): the whole schedule runs
    # and the best try that does not loop is kept, though the loop is the likelier answer
    zero = _transcribe(client, speech, 0)
    assert compression_ratio(zero.text) <= 2.4
    # above 0 the same failing answers are not retried: one try, reported at the temperature asked for
    warm = _transcribe(client, speech, 0.5)
    assert zero.usage.input_tokens == len(SCHEDULE) * warm.usage.input_tokens
    verbose = _transcribe(client, speech, 0.5, response_format="verbose_json")
    assert verbose.segments and {s.temperature for s in verbose.segments} == {0.5}


def test_the_vllm_engine_climbs_the_schedule_too(vllm_server, tiny_model, speech):
    """On the vLLM engine (the session's real vLLM server) with Whisper's thresholds: the tiny random model's
    answers are far below a mean logprob of -1.0 (about -2), so at temperature 0 every temperature of the
    schedule is tried, each counted, and the window reports the temperature of the try kept; at 0.5, one try."""
    gw = InProcessGateway(Settings(engine="vllm", upstreams=[vllm_server.url], model=str(tiny_model),
                                   served_model_name="tiny", window_max_tokens=24,
                                   fallback_temperatures=SCHEDULE)).start()
    try:
        client = gw.client()
        zero, warm = _transcribe(client, speech, 0), _transcribe(client, speech, 0.5)
        verbose = _transcribe(client, speech, 0, response_format="verbose_json")
    finally:
        gw.stop()
    assert zero.usage.input_tokens == len(SCHEDULE) * warm.usage.input_tokens
    assert verbose.segments and {s.temperature for s in verbose.segments} <= set(SCHEDULE)
