"""Chat completions with audio through the real openai SDK, over HTTP, against `lalm serve` on both engines.

The tiny model's weights are random, so its text means nothing: the tests check structure, usage (audio
reaches the model as ~25 tokens per second), streaming against the whole answer, seeds, stops, and that
the vLLM engine's greedy output equals the transformers engine's."""

from __future__ import annotations

import numpy as np
import pytest
from serve_support import AUDIO_TOKENS_PER_SECOND, audio_url, input_audio, same_tokens, user

QUESTION = "What is said in this audio?"


def _chat(client, messages, **kw):
    kw.setdefault("max_tokens", 12)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="tiny", messages=messages, **kw)


def _audio_tokens(seconds: float) -> float:
    return seconds * AUDIO_TOKENS_PER_SECOND


def test_models_lists_the_served_name(gateway):
    assert [m.id for m in gateway.client().models.list().data] == ["tiny"]


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_input_audio_reaches_the_model(gateway, speech, fmt):
    client = gateway.client()
    text_only = _chat(client, [user(QUESTION)])
    with_audio = _chat(client, [user(input_audio(speech, fmt), QUESTION)])
    added = with_audio.usage.prompt_tokens - text_only.usage.prompt_tokens
    # the audio's placeholder expands to ~25 tokens per second (plus a few for "Audio 1:" and its markers)
    assert abs(added - _audio_tokens(len(speech) / 16000)) < 12, added
    choice = with_audio.choices[0]
    assert with_audio.object == "chat.completion" and with_audio.model == "tiny"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 1 <= with_audio.usage.completion_tokens <= 12
    assert with_audio.usage.total_tokens == with_audio.usage.prompt_tokens + with_audio.usage.completion_tokens


def test_audio_url_data_url_equals_input_audio(gateway, speech):
    client = gateway.client()
    a = _chat(client, [user(input_audio(speech), QUESTION)])
    b = _chat(client, [user(audio_url(speech), QUESTION)])
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    assert a.choices[0].message.content == b.choices[0].message.content


def test_two_audios_in_one_message(gateway, speech, speech_b):
    client = gateway.client()
    one = _chat(client, [user(input_audio(speech), QUESTION)])
    two = _chat(client, [user(input_audio(speech), input_audio(speech_b, "mp3"), QUESTION)])
    added = two.usage.prompt_tokens - one.usage.prompt_tokens
    assert abs(added - _audio_tokens(len(speech_b) / 16000)) < 12, added


def test_multi_turn_and_text_only(gateway, speech):
    client = gateway.client()
    first = _chat(client, [user(input_audio(speech), QUESTION)])
    history = [{"role": "system", "content": "You are a careful listener."}, user(input_audio(speech), QUESTION),
               {"role": "assistant", "content": first.choices[0].message.content}, user("Say it again, slowly.")]
    second = _chat(client, history)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens
    text_only = _chat(client, [user("Hello there.")], max_tokens=4)
    assert isinstance(text_only.choices[0].message.content, str) and text_only.usage.completion_tokens <= 4


def test_streaming_equals_the_whole_answer(gateway, speech):
    client = gateway.client()
    messages = [user(input_audio(speech), QUESTION)]
    whole = _chat(client, messages, max_tokens=24)
    chunks = list(_chat(client, messages, max_tokens=24, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == whole.choices[0].message.content
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_n_choices_follow_seed_plus_index(gateway, speech):
    client = gateway.client()
    messages = [user(input_audio(speech), QUESTION)]
    both = _chat(client, messages, temperature=1.0, seed=11, n=2, max_tokens=16)
    assert [c.index for c in both.choices] == [0, 1]
    for i, choice in enumerate(both.choices):
        alone = _chat(client, messages, temperature=1.0, seed=11 + i, max_tokens=16)
        assert choice.message.content == alone.choices[0].message.content
    assert both.usage.completion_tokens == sum(
        _chat(client, messages, temperature=1.0, seed=11 + i, max_tokens=16).usage.completion_tokens for i in (0, 1))


def test_streaming_n_choices(gateway, speech):
    client = gateway.client()
    messages = [user(input_audio(speech), QUESTION)]
    whole = _chat(client, messages, temperature=1.0, seed=5, n=2, max_tokens=10)
    texts = {0: "", 1: ""}
    for chunk in _chat(client, messages, temperature=1.0, seed=5, n=2, max_tokens=10, stream=True):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]


def test_stop_and_max_completion_tokens(gateway, speech):
    client = gateway.client()
    messages = [user(input_audio(speech), QUESTION)]
    full = _chat(client, messages, max_tokens=40).choices[0].message.content
    words = [w for w in full.split(" ") if len(w) >= 3]
    if not words:
        pytest.fail(f"the greedy answer has no word to stop at: {full!r}")
    stop = words[len(words) // 2]
    cut = _chat(client, messages, max_tokens=40, stop=[stop])
    assert cut.choices[0].message.content == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    short = _chat(client, messages, max_completion_tokens=3, max_tokens=40)
    assert short.usage.completion_tokens <= 3


def test_vllm_greedy_output_equals_hf(gateway_hf, gateway_vllm, speech, speech_b):
    messages = [user(input_audio(speech), input_audio(speech_b, "mp3"), QUESTION)]
    hf = _chat(gateway_hf.client(), messages, max_tokens=32)
    vllm = _chat(gateway_vllm.client(), messages, max_tokens=32)
    assert same_tokens(vllm.choices[0].message.content, hf.choices[0].message.content)
    assert vllm.usage.model_dump() == hf.usage.model_dump()


def test_silence_is_valid_audio(gateway):
    out = _chat(gateway.client(), [user(input_audio(np.zeros(16000, np.float32)), QUESTION)])
    assert out.usage.prompt_tokens > _audio_tokens(1.0)
