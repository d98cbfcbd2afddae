"""Gateway fixtures, started once per session: the gateway app in this process on the transformers engine and
on the session's vLLM server as its upstream (most endpoint tests: the process does not matter to them), a
real `lalm serve` process on the transformers engine (tests where it does: a socket, a client that hangs
up, streaming as it is sent), and the recordings the tests send them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serve_support import Gateway, InProcessGateway, start_gateway, stop_gateway

from lalm.config import Settings
from lalm.synth import espeak

SENTENCES = [
    "The meeting starts at nine thirty on Monday, and the report is due on Friday.",
    "I would like to book a table for four people tomorrow evening at seven.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "Can you hear me now? Yes, I can hear you clearly.",
    "Please send the slides to Maria before the call with the Berlin office.",
]


# Indirect parametrization of `gateway` over the two LALM engines and Whisper tiny.en, for endpoints a Whisper
# model serves (transcriptions, translations, their bad input)
ALL_ENGINES = pytest.mark.parametrize("gateway", ["hf", "vllm", "whisper"], indirect=True)

# The in-process gateways' request time limit: the 10-minute recording of the timestamp test, in four formats
# at once, can take longer than the default 600 s on a 2-core machine that is busy with something else
# (a 5xx seen once under such load, most likely this limit). The limit itself is tested with its own gateway
# (test_serve_errors).
PATIENT = {"request_timeout_s": 1800.0}


def _serve(tmp_path_factory: pytest.TempPathFactory, name: str, args: list[str]) -> Gateway:
    log = tmp_path_factory.mktemp(name) / "serve.log"
    try:
        return start_gateway(args, log)
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def gateway_hf(tiny_model: Path):
    """The gateway in this process on the transformers engine (the tiny model loads here), served as "tiny"."""
    gw = InProcessGateway(Settings(engine="hf", model=str(tiny_model), served_model_name="tiny", **PATIENT)).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def gateway_vllm(vllm_server, tiny_model: Path):
    """The gateway in this process on the vLLM engine with the session's vLLM server as its upstream (no second
    vLLM starts), served as "tiny"."""
    gw = InProcessGateway(Settings(engine="vllm", upstreams=[vllm_server.url], model=str(tiny_model),
                                   served_model_name="tiny", **PATIENT)).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def gateway_whisper():
    """The gateway in this process on the built-in Whisper tiny.en (the CTranslate2 engine, real weights from
    their pinned package), served as "tiny" so that the transcription tests run on it unchanged."""
    gw = InProcessGateway(Settings(model=["tiny=whisper-tiny.en"], **PATIENT)).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def gateway_default():
    """The gateway in this process on the built-in `default` (Whisper base hears, SmolLM2 answers), served as
    "tiny" so that the bad-input tests run on it unchanged."""
    gw = InProcessGateway(Settings(model=["tiny=default"], **PATIENT)).start()
    yield gw
    gw.stop()


def is_whisper(gw: InProcessGateway) -> bool:
    """Whether the gateway's one model is a Whisper model (its /v1/models family)."""
    return gw.http.get("/v1/models").json()["data"][0]["lalm"]["family"] == "whisper"


@pytest.fixture(scope="session")
def gateway_hf_process(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`lalm serve --engine hf` on the tiny model as a real process on a loopback port, served as "tiny"."""
    gw = _serve(tmp_path_factory, "gw-hf", ["--engine", "hf", "--model", str(tiny_model),
                                            "--served-model-name", "tiny"])
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="session")
def gateway_vllm_process(vllm_server, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`lalm serve --engine vllm --upstream <the session's vLLM server>` as a real process, served as "tiny"."""
    gw = _serve(tmp_path_factory, "gw-vllm", ["--engine", "vllm", "--upstream", vllm_server.url,
                                              "--model", str(tiny_model), "--served-model-name", "tiny"])
    yield gw
    stop_gateway(gw)


@pytest.fixture(params=["hf", "vllm"])
def gateway(request: pytest.FixtureRequest) -> InProcessGateway:
    """Each test using it runs against both LALM engines (the gateway in this process). A module whose tests
    hold for a Whisper model too widens the list with `pytestmark = ALL_ENGINES` (the Whisper gateway then
    joins them); chat and task tests keep the two LALM engines."""
    return request.getfixturevalue(f"gateway_{request.param}")


@pytest.fixture(scope="session")
def speech_b() -> np.ndarray:
    """A second, different utterance (about 4 s)."""
    return espeak(SENTENCES[1], voice="en-us+f3")


@pytest.fixture(scope="session")
def long_speech() -> np.ndarray:
    """95 s of espeak sentences separated by pauses of 0.4-1.2 s (16 kHz float32)."""
    rng = np.random.default_rng(0)
    parts, total, i = [], 0, 0
    while total < 95 * 16000:
        s = espeak(SENTENCES[i % len(SENTENCES)])
        gap = np.zeros(int(rng.uniform(0.4, 1.2) * 16000), np.float32)
        parts += [s, gap]
        total += len(s) + len(gap)
        i += 1
    return np.concatenate(parts)[: 95 * 16000]
