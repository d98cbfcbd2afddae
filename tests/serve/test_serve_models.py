"""Several models behind one gateway: `lalm serve --model NAME=SOURCE ... --models-file FILE` serves each name,
the request's `model` picks the engine, /v1/models lists every model with what it can do, an unknown name is a
404 model_not_found, names of one model share one engine (loaded once), and a request for what a model cannot
do is a 400 model_capability before any work.

Real parts: `lalm serve` processes on loopback (the tiny checkpoint and the looping one, transformers engine),
the app in a real uvicorn server for the capability refusals, the openai SDK and httpx over HTTP. The Whisper-like
engines of the refusal tests are the seam: in-process engines with a Whisper model's capabilities."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
import yaml
from media import encode
from serve_support import Gateway, assert_openai_error, input_audio, start_gateway, stop_gateway, user

from lalm.config import Settings
from lalm.engines.base import Capabilities, Completion, Delta, Engine, Message, SamplingParams, Usage
from lalm.engines.hf import HFEngine
from lalm.engines.vllm_process import free_port
from lalm.serve.app import create_app
from lalm.serve.registry import ModelRegistry

LOOP = " the the the"  # the looping checkpoint's greedy answer (tests/conftest.py looping_model)


@pytest.fixture(scope="module")
def several(tiny_model: Path, looping_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`lalm serve` with `a` from --model, and from a models file `b` (the same checkpoint), `loop` and `asr`
    (Whisper tiny.en, real weights, on the CTranslate2 engine)."""
    folder = tmp_path_factory.mktemp("gw-several")
    models_file = folder / "models.yaml"
    models_file.write_text(yaml.safe_dump([{"name": "b", "model": str(tiny_model)},
                                           {"name": "loop", "model": str(looping_model), "dtype": "float32"},
                                           {"name": "asr", "model": "whisper-tiny.en", "engine": "ctranslate2"}]))
    gw = start_gateway(["--engine", "hf", "--model", f"a={tiny_model}", "--models-file", str(models_file)],
                       folder / "serve.log")
    yield gw
    stop_gateway(gw)


def _say(client: openai.OpenAI, model: str) -> str:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}],
                                            temperature=0, max_tokens=6)
    assert answer.model == model
    return answer.choices[0].message.content


def test_each_name_is_answered_by_its_own_model(several: Gateway, speech):
    client = several.client()
    a, b, loop = _say(client, "a"), _say(client, "b"), _say(client, "loop")
    assert loop.startswith(LOOP)
    assert a == b and not a.startswith(LOOP)  # a and b are the same checkpoint, loop another
    for name in ("a", "loop"):
        out = client.audio.transcriptions.create(model=name, file=("s.wav", encode(speech, "wav")), temperature=0)
        assert out.text.startswith(LOOP.strip()) == (name == "loop"), out.text
    heard = client.audio.transcriptions.create(model="asr", file=("s.wav", encode(speech, "wav")), temperature=0)
    assert "brown fox" in heard.text.lower()  # real Whisper weights: the words spoken


def test_models_lists_every_model_with_what_it_can_do(several: Gateway, tiny_model: Path):
    client = several.client()
    cards = {m.id: m for m in client.models.list().data}
    assert list(cards) == ["a", "b", "loop", "asr"]
    size = (tiny_model / "model.safetensors").stat().st_size
    asr = cards.pop("asr").model_extra["lalm"]
    assert (asr["family"], asr["engine"], asr["chat"]) == ("whisper", "ctranslate2", False)
    assert asr["tasks"] == ["transcribe"]
    assert (asr["languages"], asr["translation"], asr["random_weights"]) == (["en"], False, False)
    for card in cards.values():
        lalm = card.model_extra["lalm"]
        assert (card.object, card.owned_by) == ("model", "lalm")
        assert lalm["family"] == "lalm" and lalm["chat"] and lalm["translation"] and lalm["engine"] == "hf"
        assert set(lalm["tasks"]) == {"transcribe", "translate", "summarize", "emotion", "qa", "describe"}
        assert lalm["random_weights"] is True  # the tiny checkpoint and its looping copy say so in config.json
        assert lalm["weights_bytes"] == size
    assert client.models.retrieve("loop").model_extra["lalm"] == cards["loop"].model_extra["lalm"]


def test_a_whisper_model_is_refused_chat_by_name(several: Gateway, speech):
    with pytest.raises(openai.BadRequestError) as refused:
        several.client().chat.completions.create(model="asr", messages=[user(input_audio(speech), "Who speaks?")])
    assert (refused.value.code, refused.value.body["param"]) == ("model_capability", "model")
    assert "capabilities.chat" in refused.value.message


def test_an_unknown_model_is_a_404_naming_the_served_ones(several: Gateway, speech):
    client = several.client()
    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert (chat.value.code, chat.value.body["param"]) == ("model_not_found", "model")
    assert "'a', 'b', 'loop', 'asr'" in chat.value.message
    with pytest.raises(openai.NotFoundError) as transcription:
        client.audio.transcriptions.create(model="whisper-1", file=("s.wav", b"RIFF"))
    assert transcription.value.code == "model_not_found"
    assert_openai_error(several.http.get("/v1/models/nothing"), 404, "model_not_found", "model")


def test_the_start_up_log_says_what_each_model_serves_and_that_a_model_loads_once(several: Gateway):
    log = several.log.read_text()
    lines = [line for line in log.splitlines() if "serving " in line]
    assert len(lines) == 4, log[-3000:]
    a, b, loop, asr = lines
    assert "serving a: lalm model on hf" in a and "chat; tasks transcribe, translate" in a
    assert "RANDOM WEIGHTS" in a and "RANDOM WEIGHTS" in loop
    assert "shares the engine of a (loaded once)" in b and "shares" not in loop
    assert "serving asr: whisper model on ctranslate2" in asr and "no chat; tasks transcribe" in asr
    assert "RANDOM" not in asr
    assert several.http.get("/health").json() == {"status": "ok"}


def test_names_of_one_model_share_one_engine(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    same = Settings(engine="hf", model=[f"a={tiny_model}", f"b={tiny_model}/", f"c={tiny_model}/../model"])
    registry = ModelRegistry.from_settings(same)
    assert len(registry.engines) == 1 and [m.name for m in registry] == ["a", "b", "c"]
    other = Settings(engine="hf", model=[f"a={tiny_model}"], models=[{"name": "b", "model": str(tiny_model),
                                                                     "dtype": "bfloat16"}])
    assert len(ModelRegistry.from_settings(other).engines) == 2  # other options: another engine
    loads = []
    load = HFEngine.load
    monkeypatch.setattr(HFEngine, "load", lambda self: (loads.append(self), load(self))[1])
    port = free_port()
    with _served(create_app(same.model_copy(update={"port": port})), port) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert len({_say(client, name) for name in ("a", "b", "c")}) == 1
    assert len(loads) == 1


# --- what a model cannot do ---
class WhisperLike(Engine):
    """A speech-recognition model's capabilities (no chat, transcribe/translate only), answering `TEXT`."""

    TEXT = "hello from the speech model"

    def __init__(self, name: str, capabilities: Capabilities) -> None:
        self.model_name, self.capabilities = name, capabilities

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        return Completion(self.TEXT, "stop", Usage(1, 5))

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        yield Delta(self.TEXT, "stop", Usage(1, 5))


ASR = Capabilities(family="whisper", chat=False, tasks=("transcribe", "translate"), translation=True)
ENGLISH_ONLY = Capabilities(family="whisper", chat=False, tasks=("transcribe",), translation=False,
                            languages=("en",))


class _served:
    """`app` in a real uvicorn server on loopback `port`, as a context manager giving its URL."""

    def __init__(self, app, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the gateway did not start"
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture(scope="module")
def mixed(tiny_model: Path) -> Iterator[str]:
    """A gateway serving the tiny LALM and two Whisper-like models (`asr`, English-only `asr-en`)."""
    port = free_port()
    settings = Settings(engine="hf", model=[f"tiny={tiny_model}", "asr=whisper", "asr-en=whisper-en"], port=port)
    engines = {"asr": WhisperLike("asr", ASR), "asr-en": WhisperLike("asr-en", ENGLISH_ONLY)}
    with _served(create_app(settings, engines=engines), port) as url:
        yield url


def _refused(resp: httpx.Response, param: str, capability: str) -> None:
    err = assert_openai_error(resp, 400, "model_capability", param)
    assert capability in err["message"], err


def test_a_request_for_what_the_model_cannot_do_is_a_400_naming_the_capability(mixed: str, speech):
    wav = encode(speech, "wav")
    chat = {"messages": [user(input_audio(speech), "What is said?")]}
    _refused(httpx.post(f"{mixed}/v1/chat/completions", json={"model": "asr", **chat}, timeout=60),
             "model", "capabilities.chat")
    _refused(httpx.post(f"{mixed}/v1/chat/completions", json={"model": "asr", "task": "summarize", **chat},
                        timeout=60), "task", "capabilities.tasks")
    _refused(httpx.post(f"{mixed}/v1/audio/translations", data={"model": "asr-en"}, files={"file": ("s.wav", wav)},
                        timeout=60), "model", "capabilities.translation")
    _refused(httpx.post(f"{mixed}/v1/audio/transcriptions", data={"model": "asr-en", "language": "fr"},
                        files={"file": ("s.wav", wav)}, timeout=60), "language", "capabilities.languages")
    # what each model can do is answered, by its own engine
    client = openai.OpenAI(base_url=f"{mixed}/v1", api_key="unused", max_retries=0)
    for name in ("asr", "asr-en"):
        out = client.audio.transcriptions.create(model=name, file=("s.wav", wav), language="en", temperature=0)
        assert out.text == WhisperLike.TEXT
    answer = client.chat.completions.create(model="tiny", messages=chat["messages"], temperature=0, max_tokens=4)
    assert answer.choices[0].message.content != WhisperLike.TEXT
    cards = {m.id: m.model_extra["lalm"] for m in client.models.list().data}
    assert cards["asr"]["family"] == "whisper" and cards["asr"]["chat"] is False
    assert cards["asr-en"]["languages"] == ["en"] and cards["asr-en"]["translation"] is False
    assert cards["tiny"]["chat"] is True and cards["asr"]["weights_bytes"] is None


def test_model_lists_are_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    specs = Settings(model=["x", "named=some/folder"], engine="hf", dtype="float32").model_specs()
    assert [(s.name, s.source, s.engine, s.dtype) for s in specs] == [("x", "x", "hf", "float32"),
                                                                       ("named", "some/folder", "hf", "float32")]
    assert [s.name for s in Settings(model="p", served_model_name="n").model_specs()] == ["n"]
    assert [s.name for s in Settings().model_specs()] == ["default"]
    monkeypatch.setenv("LALM_MODEL", '["a=x", "b=y"]')
    monkeypatch.setenv("LALM_MODELS", '[{"name": "c", "model": "z", "engine": "vllm", "upstreams": ["http://h:1"]}]')
    env = Settings().model_specs()
    assert [(s.name, s.source) for s in env] == [("a", "x"), ("b", "y"), ("c", "z")]
    assert (env[2].engine, env[2].upstreams) == ("vllm", ["http://h:1"])
    monkeypatch.setenv("LALM_MODEL", "just/one")
    monkeypatch.delenv("LALM_MODELS")
    assert [s.name for s in Settings().model_specs()] == ["just/one"]
    for bad, says in ((dict(model=["a=x", "a=y"]), "given more than once: a"),
                      (dict(model=["x", "y"], served_model_name="n"), "NAME=SOURCE"),
                      (dict(model=["x", "y"], upstreams=["http://h:1"]), "upstreams serve one model"),
                      (dict(models_file=tmp_path / "missing.yaml"), "missing.yaml")):
        with pytest.raises(ValueError, match=says):
            Settings(**bad)
    (tmp_path / "bad.yaml").write_text("- name: a\n  model: x\n  colour: blue\n")
    with pytest.raises(ValueError, match="colour"):
        Settings(models_file=tmp_path / "bad.yaml")


def test_serve_refuses_a_bad_model_list_before_starting(tiny_model: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from lalm.cli import app

    out = CliRunner().invoke(app, ["serve", "--model", f"a={tiny_model}", "--model", f"a={tiny_model}"])
    assert out.exit_code == 2 and "given more than once: a" in out.output
    out = CliRunner().invoke(app, ["serve", "--model", f"a={tiny_model}", "--model", f"b={tmp_path / 'none'}"])
    assert out.exit_code == 2 and "no model folder" in out.output


class FakeVLLM:
    """Stands for a vLLM server process (the seam of --workers: what is started, and the URL handed on)."""

    def __init__(self, spec, port: int) -> None:
        self.served_model_name, self.url, self.started = spec.name, f"http://127.0.0.1:{port}", False

    def start(self, timeout: float) -> None:
        self.started = True

    def supervise(self, timeout: float) -> None:
        pass


def test_workers_start_one_vllm_per_model_and_hand_on_its_url(monkeypatch: pytest.MonkeyPatch):
    import lalm.serve.workers as workers

    made: list[FakeVLLM] = []
    monkeypatch.setattr(workers, "vllm_process", lambda spec, settings: made.append(FakeVLLM(spec, 9000 + len(made)))
                        or made[-1])
    settings = Settings(engine="vllm", model=["a=m1", "b=m1", "c=m2"],
                        models=[{"name": "d", "model": "m3", "upstreams": ["http://127.0.0.1:7"]}])
    processes: list = []
    specs = workers._upstreams_of_started(settings.model_specs(), settings, processes)
    assert processes == made and [p.served_model_name for p in made] == ["a", "c"] and all(p.started for p in made)
    assert [(s.name, s.upstreams) for s in specs] == [("a", ["http://127.0.0.1:9000"]), ("b", ["http://127.0.0.1:9000"]),
                                                      ("c", ["http://127.0.0.1:9001"]), ("d", ["http://127.0.0.1:7"])]
    worker = Settings.model_validate_json(workers._worker_settings(settings, specs).model_dump_json())
    assert worker.model_specs() == specs
    assert len(ModelRegistry.from_settings(worker).engines) == 3  # a and b share the first server's client
