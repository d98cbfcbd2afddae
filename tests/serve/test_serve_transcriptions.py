"""/v1/audio/transcriptions and /translations through the real openai SDK on both LALM engines
and on Whisper tiny.en: all five response
formats agree with each other, long recordings are covered by in-order windows cut at pauses, videos are
read from their audio track, streaming events add up to the whole transcript, `prompt` reaches the model."""

from __future__ import annotations

import html
import itertools
import json
import re

import numpy as np
import openai
import pytest
from conftest import ALL_ENGINES, is_whisper
from media import encode
from serve_support import AUDIO_TOKENS_PER_SECOND, same_tokens

from lalm.audio import decode_audio, encode_wav

_CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _cues(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of an SRT or WebVTT document (its lines joined with newlines)."""
    cues = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if m := _CUE.match(line):
            text = list(itertools.takewhile(bool, lines[i + 1:]))
            cues.append((_seconds(*m.groups()[:4]), _seconds(*m.groups()[4:]), "\n".join(text)))
    return cues


def _transcribe(client, data: bytes, name: str = "speech.wav", **kw):
    return client.audio.transcriptions.create(model="tiny", file=(name, data), temperature=0, **kw)


@ALL_ENGINES
def test_five_formats_agree(gateway, speech):
    client = gateway.client()
    wav = encode(speech, "wav")
    as_json = _transcribe(client, wav)
    text = _transcribe(client, wav, response_format="text")
    srt = _transcribe(client, wav, response_format="srt")
    vtt = _transcribe(client, wav, response_format="vtt")
    verbose = _transcribe(client, wav, response_format="verbose_json")
    whisper = is_whisper(gateway)
    if whisper:  # real weights hear the real words; its usage counts the tokens it wrote
        assert "quick brown fox" in as_json.text.lower() and as_json.usage.output_tokens > 0
    else:  # a random model writes noise; the audio's tokens are counted
        assert as_json.text and as_json.usage.input_tokens > AUDIO_TOKENS_PER_SECOND * 2.5
    assert text == as_json.text == verbose.text
    assert abs(verbose.duration - len(speech) / 16000) < 0.01
    # a Whisper model names the language it heard; a LALM does not say
    assert verbose.language == ("en" if whisper else "unknown") and verbose.usage.seconds == verbose.duration
    segs = verbose.segments
    # sentence-sized segments that hold the transcript's words, in order, inside the recording
    assert " ".join(s.text for s in segs) == " ".join(as_json.text.split())
    assert [s.id for s in segs] == list(range(len(segs)))
    assert all(0 <= s.start <= s.end <= verbose.duration for s in segs)
    assert all(a.end <= b.start for a, b in itertools.pairwise(segs))
    for seg in segs:
        assert seg.seek == round(seg.start * 100) and seg.tokens == [] and seg.temperature == 0
        assert 0 <= seg.no_speech_prob <= 1 and seg.compression_ratio > 0
        # the mean of the engine's token logprobs (the Whisper engine gives none per token: 0)
        assert seg.avg_logprob <= 0 if whisper else seg.avg_logprob < 0
    assert srt.startswith("1\n") and vtt.startswith("WEBVTT\n\n")
    for doc, unescape in ((srt, str), (vtt, html.unescape)):
        cues = _cues(doc)
        assert unescape(" ".join(text for _, _, text in cues)).split() == as_json.text.replace("-->", "->").split()
        assert cues[0][0] == pytest.approx(segs[0].start, abs=0.002)


@ALL_ENGINES
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks translations deprecated
def test_translation(gateway, speech):
    client = gateway.client()
    wav = encode(speech, "wav")
    if is_whisper(gateway):  # tiny.en is English-only: it does not translate, and says so before any work
        with pytest.raises(openai.BadRequestError) as err:
            client.audio.translations.create(model="tiny", file=("speech.wav", wav), temperature=0)
        assert (err.value.body["code"], err.value.body["param"]) == ("model_capability", "model")
        return
    out = client.audio.translations.create(model="tiny", file=("speech.wav", wav), response_format="verbose_json",
                                           temperature=0)
    assert out.text and out.segments and " ".join(s.text for s in out.segments) == " ".join(out.text.split())
    raw = client.audio.translations.with_raw_response.create(model="tiny", file=("s.wav", wav),
                                                             response_format="verbose_json", temperature=0)
    body = json.loads(raw.http_response.text)
    assert body["task"] == "translate" and body["language"] == "english"
    # a translation is asked for with another instruction than a transcription
    translated = client.audio.translations.with_raw_response.create(model="tiny", file=("s.wav", wav),
                                                                    temperature=0)
    assert json.loads(translated.http_response.text)["usage"]["input_tokens"] != \
        _transcribe(client, wav).usage.input_tokens


@ALL_ENGINES
def test_95_second_recording_is_covered_in_order(gateway, long_speech):
    client = gateway.client()
    out = _transcribe(client, encode(long_speech, "flac"), "long.flac", response_format="verbose_json")
    assert abs(out.duration - 95.0) < 0.05
    segs = out.segments
    assert len(segs) >= 4  # 95 s need at least four windows of at most 30 s
    assert [s.id for s in segs] == list(range(len(segs)))
    assert segs[0].start < 1.0 and segs[-1].end > 93.0
    for a, b in itertools.pairwise(segs):
        assert a.end <= b.start, "segments overlap"
        assert b.start - a.end < 2.0, "a stretch longer than the longest pause was left out"
    assert all(0 <= s.end - s.start <= 7.0 for s in segs)
    assert " ".join(out.text.split()) == " ".join(s.text for s in segs)
    srt = _transcribe(client, encode(long_speech, "flac"), "long.flac", response_format="srt")
    cues = _cues(srt)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(cues))
    assert cues[0][0] == pytest.approx(segs[0].start, abs=0.002) and cues[-1][1] >= segs[-1].end - 0.002


def test_long_recording_vllm_equals_hf(gateway_hf, gateway_vllm, long_speech):
    flac = encode(long_speech, "flac")
    hf = _transcribe(gateway_hf.client(), flac, "long.flac", response_format="verbose_json")
    vllm = _transcribe(gateway_vllm.client(), flac, "long.flac", response_format="verbose_json")
    assert same_tokens(vllm.text, hf.text)
    if vllm.text == hf.text:  # the same words over the same audio: the same times
        assert [(s.start, s.end) for s in vllm.segments] == [(s.start, s.end) for s in hf.segments]


@ALL_ENGINES
def test_mp4_video_is_transcribed_from_its_audio_track(gateway, speech):
    client = gateway.client()
    mp4 = encode(speech, "mp4")
    out = _transcribe(client, mp4, "clip.mp4", response_format="verbose_json")
    assert abs(out.duration - decode_audio(mp4).duration) < 0.01
    assert out.text and out.segments[0].end <= out.duration
    # the same samples in a lossless WAV (a 16-bit one would round them, and a random model's 448 tokens
    # can drift apart on such a difference): the same transcript
    same_samples = _transcribe(client, encode_wav(decode_audio(mp4).samples), "clip.wav")
    assert same_samples.text == out.text


@ALL_ENGINES
def test_streaming_events(gateway, speech, long_speech):
    client = gateway.client()
    for audio, name in ((encode(speech, "mp3"), "a.mp3"), (encode(long_speech, "flac"), "b.flac")):
        whole = _transcribe(client, audio, name)
        events = list(_transcribe(client, audio, name, stream=True))
        deltas = [e for e in events if e.type == "transcript.text.delta"]
        assert [e.type for e in events[len(deltas):]] == ["transcript.text.done"]
        assert "".join(e.delta for e in deltas) == events[-1].text == whole.text
        assert events[-1].usage.input_tokens == whole.usage.input_tokens


@ALL_ENGINES
def test_prompt_and_language_reach_the_model(gateway, speech):
    client = gateway.client()
    wav = encode(speech, "wav")
    if is_whisper(gateway):  # tiny.en hears "jump ... lazy nog"; the sentence as a prompt puts it right
        assert _transcribe(client, wav).text == "The quick brown fox jump over the lazy nog."
        prompted = _transcribe(client, wav, prompt="The quick brown fox jumps over the lazy dog.")
        assert prompted.text == "The quick brown fox jumps over the lazy dog."
        with pytest.raises(openai.BadRequestError) as err:  # an English-only model refuses another language
            _transcribe(client, wav, language="fr")
        assert (err.value.body["code"], err.value.body["param"]) == ("model_capability", "language")
        return
    plain = _transcribe(client, wav).usage.input_tokens
    prompted = _transcribe(client, wav, prompt="Slides: Maria Kowalski, Berlin office, Q3 revenue.").usage
    hinted = _transcribe(client, wav, language="en").usage
    assert prompted.input_tokens > plain + 10
    assert hinted.input_tokens > plain


@ALL_ENGINES
def test_silence_transcribes_to_empty_text(gateway):
    client = gateway.client()
    out = _transcribe(client, encode(np.zeros(5 * 16000, np.float32), "wav"), response_format="verbose_json")
    assert out.text == "" and out.segments == [] and abs(out.duration - 5.0) < 0.01
