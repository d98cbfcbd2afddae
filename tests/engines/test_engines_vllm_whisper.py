"""Whisper served by a real vLLM server process through lalm's vLLM plugin, on the real tiny.en weights
converted by `lalm convert-whisper`: over real HTTP (the openai SDK) the 10 real recordings come back with
transformers' greedy text, with and without `language`; another language is a 400; a previous-text prompt
reaches the model as `<|startofprev|>` context. Then the VLLMWhisperEngine over the same server, whose requests'
prompt and on-screen text reach it as that context."""

from __future__ import annotations

import asyncio
import io
import types
from pathlib import Path

import openai
import pytest
import torch

from lalm.audio import decode_audio, encode_wav
from lalm.default_model.recordings import real_recordings
from lalm.engines.base import AudioPart, EngineError, Message, SamplingParams, SpeechRequest
from lalm.engines.vllm_process import VLLMProcess
from lalm.engines.vllm_whisper import VLLMWhisperEngine, whisper_process
from lalm.modeling.whisper import WhisperFolderError, read_whisper_folder, whisper_folder
from lalm.modeling.whisper_convert import convert_ct2_to_hf

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_ct2_to_hf(whisper_folder("tiny.en"), tmp_path_factory.mktemp("whisper") / "tiny.en", log=print)


@pytest.fixture(scope="module")
def recordings(tiny_en: Path) -> list[tuple[str, bytes, str]]:
    """(name, WAV bytes, transformers' greedy text) of each real recording."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(tiny_en, dtype=torch.float32).eval()
    processor = WhisperProcessor.from_pretrained(tiny_en)
    out = []
    for rec in real_recordings():
        if rec.name.startswith("alsa"):
            continue
        features = processor(rec.samples, sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(features, max_new_tokens=200)
        text = processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
        out.append((rec.name, encode_wav(rec.samples), text))
    assert len(out) == 10
    return out


@pytest.fixture(scope="module")
def server(tiny_en: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("vllm-whisper") / "vllm.log"
    proc = whisper_process(tiny_en, served_model_name="whisper-tiny.en", log_path=log,
                           extra_args=["--max-num-seqs", "2"])
    try:
        proc.start(timeout=600)
    except (RuntimeError, TimeoutError) as exc:
        proc.stop()
        pytest.fail(f"vLLM did not start on the converted Whisper: {exc}\n{log.read_text()[-4000:]}")
    yield proc
    proc.stop()


def _client(server: VLLMProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_transcripts_equal_transformers_with_and_without_language(server: VLLMProcess, recordings) -> None:
    client = _client(server)
    for name, wav, expected in recordings:
        for language in (None, "en"):
            extra = {"language": language} if language else {}
            text = client.audio.transcriptions.create(model="whisper-tiny.en", file=("a.wav", io.BytesIO(wav)),
                                                      temperature=0.0, **extra).text
            assert text.strip() == expected, (name, language)


def test_another_language_is_a_400(server: VLLMProcess, recordings) -> None:
    with pytest.raises(openai.BadRequestError, match="English-only"):
        _client(server).audio.transcriptions.create(model="whisper-tiny.en", language="fr",
                                                    file=("a.wav", io.BytesIO(recordings[0][1])))


def test_previous_text_prompt_is_context(server: VLLMProcess, recordings) -> None:
    wav = dict((n, w) for n, w, _ in recordings)["cards/002"]
    client = _client(server)
    plain = client.audio.transcriptions.create(model="whisper-tiny.en", file=("a.wav", io.BytesIO(wav)), temperature=0)
    hinted = client.audio.transcriptions.create(model="whisper-tiny.en", file=("a.wav", io.BytesIO(wav)), temperature=0,
                                                prompt="Ace of spades, queen of clubs, two of hearts.")
    assert "Clothes" in plain.text  # what tiny.en hears alone
    assert "clubs" in hinted.text.lower() and "<|" not in hinted.text


def test_engine_answers_speech_requests(server: VLLMProcess, recordings, tiny_en: Path) -> None:
    engine = VLLMWhisperEngine("whisper-tiny.en", info=read_whisper_folder(tiny_en), upstreams=[server.url])
    assert engine.capabilities.family == "whisper" and not engine.capabilities.chat
    assert not engine.capabilities.translation and engine.capabilities.languages == ("en",)
    _, wav, expected = recordings[1]
    samples = decode_audio(wav).samples

    def window(**speech) -> list[Message]:
        return [Message("user", [AudioPart(samples, wav)], speech=SpeechRequest(**speech))]

    async def go():
        try:
            whole = await engine.generate(window(task="transcribe"), GREEDY)
            english = await engine.generate(window(task="transcribe", language="en"), GREEDY)
            streamed = [d async for d in engine.stream(window(task="transcribe"), GREEDY)]
            errors = []
            for messages in ([Message("user", [AudioPart(samples)])],  # a chat: no speech request
                             window(task="translate"), window(task="transcribe", language="fr")):
                with pytest.raises(EngineError) as err:
                    await engine.generate(messages, GREEDY)
                errors.append(err.value)
            return whole, english, streamed, errors
        finally:
            await engine.close()

    whole, english, streamed, errors = asyncio.run(go())
    assert whole.text == english.text == expected
    assert "".join(d.text for d in streamed) == expected and streamed[-1].finish_reason == "stop"
    assert [(e.status, e.code) for e in errors] == [(400, "model_capability"), (400, "model_capability"),
                                                     (400, "upstream_bad_request")]
    assert "English-only" in errors[2].message


def test_engine_sends_the_prompt_and_the_screen_text_as_previous_text(server: VLLMProcess, recordings,
                                                                       tiny_en: Path) -> None:
    engine = VLLMWhisperEngine("whisper-tiny.en", info=read_whisper_folder(tiny_en), upstreams=[server.url])
    wav = dict((n, w) for n, w, _ in recordings)["cards/002"]
    samples = decode_audio(wav).samples
    slide = "Ace of spades, queen of clubs, two of hearts."

    async def go() -> list[str]:
        try:
            texts = []
            for speech in (SpeechRequest(task="transcribe"), SpeechRequest(task="transcribe", screen=slide),
                           SpeechRequest(task="transcribe", prompt="Cards.", screen=slide)):
                messages = [Message("user", [AudioPart(samples, wav)], speech=speech)]
                texts.append((await engine.generate(messages, GREEDY)).text)
            return texts
        finally:
            await engine.close()

    plain, screened, both = asyncio.run(go())
    assert "Clothes" in plain  # what tiny.en hears alone
    assert "clubs" in screened.lower() and "clubs" in both.lower()


def test_long_prompts_keep_their_last_223_tokens(tiny_en: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    from lalm.vllm_plugin import whisper as plugin

    tok = AutoTokenizer.from_pretrained(tiny_en)
    monkeypatch.setattr(plugin, "cached_tokenizer_from_config", lambda config: tok)
    words = " ".join(f"word{i}" for i in range(400))
    text = plugin.previous_text(types.SimpleNamespace(request_prompt=words, model_config=None))
    ids = tok.encode(text, add_special_tokens=False)
    assert ids[0] == tok.convert_tokens_to_ids("<|startofprev|>") and len(ids) - 1 <= 223
    assert text.endswith("word399") and "word0 " not in text
    spelled = "  Ace <|endoftext|>of clubs "
    short = plugin.previous_text(types.SimpleNamespace(request_prompt=spelled, model_config=None))
    assert short == "<|startofprev|> Ace of clubs"
    assert plugin.previous_text(types.SimpleNamespace(request_prompt="", model_config=None)) == ""


def test_a_folder_vllm_cannot_serve_is_refused() -> None:
    with pytest.raises(WhisperFolderError, match="convert it first"):
        whisper_process(whisper_folder("tiny.en"))


def test_the_gateway_builds_a_whisper_model_on_vllm_when_asked(server: VLLMProcess, recordings) -> None:
    """`lalm serve --model whisper-tiny.en --engine vllm`: the built-in CTranslate2 weights are converted once into
    the model cache and served by vLLM (here the module's server, as an upstream); without --engine vllm the same
    name runs in-process on CTranslate2, and `default` stays composed whatever the engine setting."""
    from lalm.config import ModelSpec, Settings
    from lalm.serve.backend import build_engine, engine_kind

    settings = Settings()
    spec = ModelSpec(name="whisper-tiny.en", source="whisper-tiny.en", engine="vllm", upstreams=[server.url])
    engine = build_engine(spec, settings)
    assert isinstance(engine, VLLMWhisperEngine) and engine.capabilities.family == "whisper"
    assert engine_kind(spec.model_copy(update={"engine": "auto"})) == "ctranslate2"
    assert engine_kind(ModelSpec(name="default", source="default", engine="vllm")) == "composed"
    name, wav, expected = recordings[0]
    async def go() -> str:
        try:
            message = Message("user", [AudioPart(decode_audio(wav).samples, wav)],
                              speech=SpeechRequest(task="transcribe"))
            return (await engine.generate([message], GREEDY)).text
        finally:
            await engine.close()

    assert asyncio.run(go()) == expected, name
