"""http(s) `audio_url` parts through the gateway with remote audio turned on: the fetch guard
(lalm.serve.fetch) lets through only the allow-listed loopback server of the test's own, refuses every other
spelling of loopback, other schemes and a redirect to another loopback port, each with a 4xx and OpenAI's
error body, and the refused servers never see a request. All traffic stays on 127.0.0.1."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import httpx
import pytest
from serve_support import InProcessGateway, assert_openai_error, user

from lalm.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fetch"))
from fetch_testkit import WAV, start_server  # the fetch guard's own loopback test servers


@pytest.fixture(scope="module")
def servers():
    allowed, other = start_server(), start_server()
    yield allowed, other
    allowed.stop()
    other.stop()


@pytest.fixture(scope="module")
def remote_gateway(servers, vllm_server, tiny_model):
    """The gateway in this process (its fetches still go over loopback sockets to the test servers) on the
    session's vLLM server, remote audio on and only the `allowed` server on the allowlist."""
    allowed, _ = servers
    gw = InProcessGateway(Settings(engine="vllm", upstreams=[vllm_server.url], model=str(tiny_model),
                                   served_model_name="tiny", allow_remote_audio_urls=True,
                                   url_fetch_allowlist=[f"127.0.0.1:{allowed.port}"])).start()
    yield gw
    gw.stop()


def _chat(gw, part: dict) -> httpx.Response:
    return gw.http.post("/v1/chat/completions", timeout=120, json={
        "model": "tiny", "temperature": 0, "max_tokens": 8, "messages": [user(part, "What is said?")]})


def _url_part(url: str) -> dict:
    return {"type": "audio_url", "audio_url": {"url": url}}


def test_allowlisted_url_is_fetched_and_heard(remote_gateway, servers):
    allowed, _ = servers
    fetched = _chat(remote_gateway, _url_part(allowed.url("/audio.wav")))
    inline = _chat(remote_gateway, {"type": "input_audio", "input_audio": {
        "data": base64.b64encode(WAV).decode(), "format": "wav"}})
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["choices"][0]["message"] == inline.json()["choices"][0]["message"]
    assert fetched.json()["usage"] == inline.json()["usage"]
    assert allowed.seen.paths[-1] == "/audio.wav"


def test_redirect_to_another_loopback_port_is_refused(remote_gateway, servers):
    allowed, other = servers
    resp = _chat(remote_gateway, _url_part(allowed.url(f"/redirect?to={other.url('/audio.wav')}")))
    assert_openai_error(resp, 400, "forbidden_address", "messages[0].content[0]")
    assert other.seen.paths == []
    assert remote_gateway.healthy()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/audio.wav", "http://127.9.8.7:{port}/audio.wav", "http://localhost:{port}/audio.wav",
    "http://[::1]:{port}/audio.wav", "http://[::ffff:127.0.0.1]:{port}/audio.wav", "http://2130706433:{port}/a.wav",
    "http://0x7f000001:{port}/a.wav", "http://0177.0.0.1:{port}/a.wav", "http://0.0.0.0:{port}/a.wav",
    "http://127.1:{port}/a.wav", "file:///etc/passwd", "gopher://127.0.0.1:{port}/", "ftp://127.0.0.1:{port}/a.wav",
])
def test_loopback_spellings_and_other_schemes_are_refused(remote_gateway, servers, url):
    _, other = servers  # not allow-listed: every spelling of it must be refused before any connection
    resp = _chat(remote_gateway, _url_part(url.format(port=other.port)))
    err = assert_openai_error(resp, 400, param="messages[0].content[0]")
    assert err["code"] in ("forbidden_address", "invalid_url", "unsupported_url_scheme"), err
    assert other.seen.paths == []
    assert remote_gateway.healthy()
