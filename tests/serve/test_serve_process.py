"""One end-to-end test per endpoint against `lalm serve` as a real process over a loopback socket (the other
endpoint tests run the gateway in the test process): /health and /metrics, /v1/models, chat completions
streamed as they are sent, transcriptions (whole and streamed) and translations, through the real openai SDK."""

from __future__ import annotations

import pytest
from media import encode
from serve_support import AUDIO_TOKENS_PER_SECOND, input_audio, user


def test_health_metrics_and_models(gateway_hf_process):
    assert gateway_hf_process.http.get("/health").json() == {"status": "ok"}
    assert "lalm_requests_total" in gateway_hf_process.http.get("/metrics").text
    assert [m.id for m in gateway_hf_process.client().models.list().data] == ["tiny"]


def test_chat_streamed_over_the_socket_equals_the_whole_answer(gateway_hf_process, speech):
    client = gateway_hf_process.client()
    kw = {"model": "tiny", "messages": [user(input_audio(speech), "What is said?")], "max_tokens": 12,
          "temperature": 0}
    whole = client.chat.completions.create(**kw)
    assert whole.usage.prompt_tokens > AUDIO_TOKENS_PER_SECOND * len(speech) / 16000
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks translations deprecated
def test_transcription_streamed_and_translation(gateway_hf_process, speech):
    client = gateway_hf_process.client()
    wav = encode(speech, "wav")
    whole = client.audio.transcriptions.create(model="tiny", file=("a.wav", wav), temperature=0)
    events = list(client.audio.transcriptions.create(model="tiny", file=("a.wav", wav), temperature=0, stream=True))
    assert whole.text and events[-1].type == "transcript.text.done" and events[-1].text == whole.text
    translated = client.audio.translations.create(model="tiny", file=("a.wav", wav), response_format="verbose_json",
                                                  temperature=0)
    # sentence-sized segments that together hold the whole text
    assert translated.text and " ".join(s.text for s in translated.segments) == " ".join(translated.text.split())
