"""`include[]=logprobs` on /v1/audio/transcriptions through the real openai SDK on both engines: the json
response and the stream events carry the logprob of each token of the transcript (OpenAI's `Logprob` shape),
the tokens spell the transcript, asking for them does not change it, and other formats are refused."""

from __future__ import annotations

import openai
import pytest
from media import encode


def _transcribe(client, data: bytes, name: str, **kw):
    return client.audio.transcriptions.create(model="tiny", file=(name, data), temperature=0, **kw)


def _ascii(text: str) -> str:
    """The ASCII characters of `text` but white space: a token holding part of a multi-byte character shows
    U+FFFD (the tiny random model writes such bytes), and the transcript joins windows with a space that no
    token wrote."""
    return "".join(c for c in text if c.isascii() and not c.isspace())


def _check_tokens(logprobs, text: str) -> None:
    assert logprobs, "no logprobs"
    assert _ascii("".join(t.token for t in logprobs)) == _ascii(text)
    for t in logprobs:
        assert t.logprob <= 0.0 and t.bytes == list(t.token.encode())


def test_json_has_the_logprobs_of_the_transcripts_tokens(gateway, speech, long_speech):
    client = gateway.client()
    for audio, name in ((encode(speech, "wav"), "a.wav"), (encode(long_speech, "flac"), "b.flac")):
        plain = _transcribe(client, audio, name)
        out = _transcribe(client, audio, name, include=["logprobs"])
        assert out.text == plain.text and out.usage == plain.usage
        assert getattr(plain, "logprobs", None) is None  # only when asked for
        _check_tokens(out.logprobs, out.text)
        assert len(out.logprobs) < out.usage.output_tokens  # the end-of-turn tokens show no text


def test_stream_events_carry_their_tokens_logprobs(gateway, speech):
    client = gateway.client()
    audio = encode(speech, "wav")
    whole = _transcribe(client, audio, "a.wav", include=["logprobs"])
    events = list(_transcribe(client, audio, "a.wav", include=["logprobs"], stream=True))
    deltas, done = events[:-1], events[-1]
    assert done.type == "transcript.text.done" and done.text == whole.text
    assert all(e.type == "transcript.text.delta" and e.logprobs for e in deltas)
    assert [t.model_dump() for e in deltas for t in e.logprobs] == [t.model_dump() for t in done.logprobs]
    _check_tokens(done.logprobs, done.text)
    # the same tokens and logprobs as the json answer (greedy; a logprob within float noise between paths)
    assert [t.token for t in done.logprobs] == [t.token for t in whole.logprobs]
    assert [t.logprob for t in done.logprobs] == pytest.approx([t.logprob for t in whole.logprobs], abs=1e-3)


@pytest.mark.parametrize("kw", [{"response_format": "verbose_json"}, {"response_format": "srt"},
                                {"response_format": "text", "stream": True}])
def test_logprobs_in_other_formats_are_refused(gateway_hf, speech, kw):
    with pytest.raises(openai.BadRequestError) as err:
        _transcribe(gateway_hf.client(), encode(speech, "wav"), "a.wav", include=["logprobs"], **kw)
    assert err.value.body["param"] == "include[]" and "response_format json" in err.value.body["message"]


def test_a_whisper_model_refuses_token_logprobs(gateway_whisper, speech):
    """Whisper's engine gives a window's mean logprob, not each token's: include[]=logprobs is a clear 400, and
    /v1/models says so."""
    client = gateway_whisper.client()
    with pytest.raises(openai.BadRequestError) as err:
        _transcribe(client, encode(speech, "wav"), "a.wav", include=["logprobs"])
    assert (err.value.body["param"], err.value.body["code"]) == ("include[]", "model_capability")
    assert client.models.retrieve("tiny").model_extra["lalm"]["logprobs"] is False
