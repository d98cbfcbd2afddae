"""`logprobs` / `top_logprobs` on /v1/chat/completions through the real openai SDK on both engines: each token
of the answer with its log probability and the most likely tokens at its step (OpenAI's shape), the same whole
or streamed, the same answer as without them, the same tokens from transformers and vLLM; refused where an
answer is made from several generations."""

from __future__ import annotations

import openai
import pytest
from serve_support import input_audio, user

QUESTION = "What is said?"


def _ask(client, speech, **kw):
    kw = {"temperature": 0, "max_tokens": 24, **kw}
    return client.chat.completions.create(model="tiny", messages=[user(input_audio(speech), QUESTION)], **kw)


def _ascii(text: str) -> str:
    """The ASCII characters of `text` but white space (a token holding part of a multi-byte character shows
    U+FFFD: the tiny random model writes such bytes)."""
    return "".join(c for c in text if c.isascii() and not c.isspace())


def test_whole_answer_has_each_tokens_logprob_and_alternatives(gateway, speech):
    client = gateway.client()
    plain = _ask(client, speech)
    out = _ask(client, speech, logprobs=True, top_logprobs=3)
    answer = out.choices[0].message.content
    assert answer == plain.choices[0].message.content and plain.choices[0].logprobs is None
    tokens = out.choices[0].logprobs.content
    assert tokens and _ascii("".join(t.token for t in tokens)) == _ascii(answer)
    for t in tokens:
        assert t.logprob <= 0.0 and t.bytes == list(t.token.encode())
        assert len(t.top_logprobs) == 3
        assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
        # greedy: the token chosen is the most likely one
        assert t.top_logprobs[0].token == t.token
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob, abs=1e-4)
    bare = _ask(client, speech, logprobs=True)
    assert [t.token for t in bare.choices[0].logprobs.content] == [t.token for t in tokens]
    assert all(t.top_logprobs == [] for t in bare.choices[0].logprobs.content)


def test_sampled_tokens_have_the_most_likely_alternatives(gateway, speech):
    # sampling: the token chosen need not be the most likely, and the alternatives are still the k most likely
    tokens = _ask(gateway.client(), speech, temperature=1.0, seed=3, logprobs=True,
                  top_logprobs=3).choices[0].logprobs.content
    assert tokens
    for t in tokens:
        alternatives = [a.logprob for a in t.top_logprobs]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        assert t.logprob <= alternatives[0] + 1e-4
        same_text = [a.logprob for a in t.top_logprobs if a.token == t.token]
        if not same_text:  # not among the most likely
            assert t.logprob <= alternatives[-1] + 1e-4
        elif t.token:  # among them, with its own logprob ("" is the text of many byte tokens: not told apart)
            assert any(abs(lp - t.logprob) < 1e-4 for lp in same_text)


def test_streamed_chunks_carry_the_same_logprobs(gateway, speech):
    client = gateway.client()
    whole = _ask(client, speech, logprobs=True, top_logprobs=2).choices[0]
    chunks = list(_ask(client, speech, logprobs=True, top_logprobs=2, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert text == whole.message.content
    assert [t.token for t in streamed] == [t.token for t in whole.logprobs.content]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in whole.logprobs.content], abs=1e-3)
    assert [[a.token for a in t.top_logprobs] for t in streamed] == \
        [[a.token for a in t.top_logprobs] for t in whole.logprobs.content]


def test_both_engines_give_the_same_tokens_and_logprobs(gateway_hf, gateway_vllm, speech):
    hf = _ask(gateway_hf.client(), speech, logprobs=True, top_logprobs=2).choices[0].logprobs.content
    vllm = _ask(gateway_vllm.client(), speech, logprobs=True, top_logprobs=2).choices[0].logprobs.content
    assert [t.token for t in hf] == [t.token for t in vllm]
    assert [t.logprob for t in hf] == pytest.approx([t.logprob for t in vllm], abs=1e-3)
    assert [[a.token for a in t.top_logprobs] for t in hf] == [[a.token for a in t.top_logprobs] for t in vllm]


@pytest.mark.parametrize("kw", [{"extra_body": {"task": "transcribe"}}, {"extra_body": {"task": "summarize"}}])
def test_logprobs_of_an_answer_made_from_several_generations_are_refused(gateway_hf, speech, kw):
    with pytest.raises(openai.BadRequestError) as err:
        _ask(gateway_hf.client(), speech, logprobs=True, **kw)
    assert err.value.body["param"] == "logprobs" and "include[]=logprobs" in err.value.body["message"]
