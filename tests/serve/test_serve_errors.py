"""Bad input is always a 4xx with OpenAI's error body, never a 500 or a hang, and the server stays healthy.

Input checks run on both LALM engines and on the built-in `default` (`gateway`); limits and API keys on a
gateway started with small limits (`strict`). Every test ends by checking that its gateway is still healthy."""

from __future__ import annotations

import json
import socket
import time

import httpx
import numpy as np
import openai
import pytest
from media import encode, tone
from serve_support import assert_openai_error, b64, input_audio, start_gateway, stop_gateway, user

# the input checks run on the two LALM engines and on the built-in `default` (Whisper base + SmolLM2): the same
# bad input, the same answer
WITH_DEFAULT = pytest.mark.parametrize("gateway", ["hf", "vllm", "default"], indirect=True)
KEY = "sk-test-key-two"
LIMITS = {"max_upload_bytes": 1_000_000, "max_audio_seconds": 60, "max_concurrency": 2, "request_timeout_s": 8}


@pytest.fixture(scope="module")
def strict(tiny_model, tmp_path_factory):
    args = ["--engine", "hf", "--model", str(tiny_model), "--served-model-name", "tiny",
            "--api-key", "sk-test-key-one", "--api-key", KEY,
            *[a for k, v in LIMITS.items() for a in (f"--{k.replace('_', '-')}", str(v))]]
    gw = start_gateway(args, tmp_path_factory.mktemp("gw-strict") / "serve.log")
    yield gw
    stop_gateway(gw)
    assert "Application shutdown complete" in gw.log_tail()


@pytest.fixture(autouse=True)
def still_healthy(request):
    """After each test, the gateway it used answers /health 200."""
    used = [request.getfixturevalue(name) for name in ("gateway", "strict") if name in request.fixturenames]
    yield
    for gw in used:
        assert gw.healthy()


def _chat(gw, body: dict, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return gw.http.post("/v1/chat/completions", json={"model": "tiny", "max_tokens": 4, **body},
                        headers=headers, timeout=120)


def _transcribe(gw, data: bytes, key: str | None = KEY, name: str = "a.wav", **fields) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return gw.http.post("/v1/audio/transcriptions", files={"file": (name, data)},
                        data={"model": "tiny", **fields}, headers=headers, timeout=120)


def _audio_message(data_b64: str, fmt: str = "wav") -> list[dict]:
    return [user({"type": "input_audio", "input_audio": {"data": data_b64, "format": fmt}}, "What is said?")]


BAD_FILES = {
    "corrupt_audio": b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8,
    "unsupported_format": b"This is a plain text file, not audio.\n" * 40,
    "empty_audio": b"",
}


@pytest.mark.parametrize("code", list(BAD_FILES))
@WITH_DEFAULT
def test_bad_files(gateway, code):
    data = BAD_FILES[code]
    assert_openai_error(_transcribe(gateway, data), 400, code, param="file")
    if data:
        import base64

        resp = _chat(gateway, {"messages": _audio_message(base64.b64encode(data).decode())})
        assert_openai_error(resp, 400, code, param="messages[0].content[0]")


@WITH_DEFAULT
def test_bad_base64_and_empty_data(gateway):
    assert_openai_error(_chat(gateway, {"messages": _audio_message("%%% not base64 %%%")}), 400, "invalid_base64")
    assert_openai_error(_chat(gateway, {"messages": _audio_message("")}), 400, "empty_audio")
    bad_url = [user({"type": "audio_url", "audio_url": {"url": "data:audio/wav,notbase64"}})]
    assert_openai_error(_chat(gateway, {"messages": bad_url}), 400, "invalid_base64")


@WITH_DEFAULT
def test_remote_and_other_audio_urls_are_refused_without_fetching(gateway):
    # remote audio is off on these gateways (the default); tests/serve/test_serve_remote_audio.py turns it on
    for url, code in (("http://127.0.0.1:9/clip.wav", "remote_urls_disabled"),
                      ("https://localhost:9/clip.wav", "remote_urls_disabled"),
                      ("file:///etc/passwd", "unsupported_url_scheme"),
                      ("ftp://127.0.0.1/a.wav", "unsupported_url_scheme"), ("clip.wav", "unsupported_url_scheme")):
        resp = _chat(gateway, {"messages": [user({"type": "audio_url", "audio_url": {"url": url}})]})
        assert_openai_error(resp, 400, code, param="messages[0].content[0]")


@WITH_DEFAULT
@pytest.mark.parametrize(("change", "param"), [
    ({"temperature": 5}, "temperature"), ({"n": 0}, "n"), ({"n": 100}, "n"), ({"top_p": 0}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": -3}, "max_completion_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, None), ({"top_logprobs": 2}, None),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"), ({"frequency_penalty": 0.5}, None),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, None), ({"task": "sing"}, "task"),
    ({"messages": []}, "messages"), ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, None),
    ({"messages": [{"role": "assistant", "content": [{"type": "input_audio", "input_audio": {"data": "AA"}}]}]},
     None),
])
def test_invalid_chat_parameters(gateway, speech, change, param):
    body = {"messages": [user(input_audio(speech), "Hi")], **change}
    err = assert_openai_error(_chat(gateway, body), 400, param=param)
    assert err["type"] == "invalid_request_error"


@WITH_DEFAULT
def test_task_needs_what_it_needs(gateway, speech):
    no_question = [user(input_audio(speech))]
    assert_openai_error(_chat(gateway, {"messages": no_question, "task": "qa"}), 400, "invalid_task", "task")
    no_audio = [user("Summarize this.")]
    assert_openai_error(_chat(gateway, {"messages": no_audio, "task": "summarize"}), 400, "audio_required")


@WITH_DEFAULT
def test_other_bad_requests(gateway, speech):
    resp = gateway.http.post("/v1/chat/completions", content=b"{not json", timeout=30,
                             headers={"Content-Type": "application/json"})
    assert_openai_error(resp, 400)
    assert_openai_error(_chat(gateway, {"model": "gpt-4o", "messages": [user("hi")]}), 404, "model_not_found",
                        "model")
    assert_openai_error(gateway.http.get("/v1/nothing-here"), 404)
    assert_openai_error(gateway.http.get("/v1/chat/completions"), 405)
    wav = encode(speech, "wav")
    for fields, param in (({"response_format": "xml"}, "response_format"), ({"temperature": "1.5"}, "temperature"),
                          ({"timestamp_granularities[]": "character"}, "timestamp_granularities[][0]"),
                          ({"stream": "true", "response_format": "srt"}, "stream"),
                          ({"language": "not a language"}, "language"), ({"model": ""}, "model")):
        assert_openai_error(_transcribe(gateway, wav, **fields), 400, param=param)
    assert_openai_error(_transcribe(gateway, wav, model="whisper-1"), 404, "model_not_found", "model")
    missing = gateway.http.post("/v1/audio/transcriptions", data={"model": "tiny"}, timeout=30)
    assert_openai_error(missing, 400, param="file")


@WITH_DEFAULT
def test_prompt_longer_than_the_context_is_a_4xx(gateway, speech):
    long_text = "word " * 9000  # the tiny model's context is 4096 tokens, default's SmolLM2's 8192
    resp = _chat(gateway, {"messages": [user(input_audio(speech), long_text)]})
    assert 400 <= resp.status_code < 500
    assert_openai_error(resp, resp.status_code)


# --- limits and keys: the strict gateway ---
def test_api_keys(strict, speech):
    body = {"messages": [user("hi")]}
    assert_openai_error(_chat(strict, body, key=None), 401, "missing_api_key")
    assert_openai_error(_chat(strict, body, key="sk-wrong"), 401, "invalid_api_key")
    assert_openai_error(_chat(strict, body, key=KEY[:-1]), 401, "invalid_api_key")
    assert_openai_error(_transcribe(strict, encode(speech, "wav"), key=None), 401, "missing_api_key")
    assert _chat(strict, body, key="sk-test-key-one").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        strict.client(api_key="sk-wrong").models.list()
    assert [m.id for m in strict.client(api_key=KEY).models.list().data] == ["tiny"]
    assert strict.http.get("/health").status_code == 200  # probes need no key
    assert strict.http.get("/metrics").status_code == 200


def test_upload_and_body_size_limits(strict, speech):
    big = encode(np.tile(speech, 12), "wav")  # ~35 s of 16-bit 16 kHz: over 1 MB, within the body limit
    assert len(big) > LIMITS["max_upload_bytes"]
    assert_openai_error(_transcribe(strict, big), 413, "file_too_large", "file")
    assert_openai_error(_chat(strict, {"messages": _audio_message(b64(np.tile(speech, 12)))}), 413,
                        "file_too_large")
    huge = b"\0" * (4 * LIMITS["max_upload_bytes"])
    assert_openai_error(_transcribe(strict, huge), 413, "request_too_large")


def test_audio_longer_than_the_limit(strict):
    too_long = encode(tone(70.0), "ogg")
    assert len(too_long) < LIMITS["max_upload_bytes"]
    assert_openai_error(_transcribe(strict, too_long, name="a.ogg"), 400, "audio_too_long", "file")
    resp = _chat(strict, {"messages": _audio_message(b64(tone(70.0), "ogg"), "ogg")})
    assert_openai_error(resp, 400, "audio_too_long")


def _hold(gw, body_bytes: int = 1000) -> socket.socket:
    """A request whose body never finishes arriving: it holds one of the gateway's slots."""
    sock = socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {body_bytes}\r\n\r\n{{".encode())
    return sock


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_concurrency_cap_answers_429(strict):
    held = [_hold(strict) for _ in range(LIMITS["max_concurrency"])]
    try:
        time.sleep(0.5)
        resp = _chat(strict, {"messages": [user("hi")]})
        assert_openai_error(resp, 429, "rate_limit_exceeded")
        assert resp.headers["retry-after"] == "1"
        with pytest.raises(openai.RateLimitError):
            strict.client(api_key=KEY).chat.completions.create(model="tiny", messages=[user("hi")], max_tokens=2)
        assert strict.http.get("/health").status_code == 200  # probes are not capped
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert _chat(strict, {"messages": [user("hi")]}).status_code == 200


def test_request_time_limit_answers_504(strict):
    sock = _hold(strict)
    try:
        started = time.monotonic()
        status, body = _read_response(sock, timeout=60)
        assert status == 504 and body["error"]["code"] == "timeout"
        assert LIMITS["request_timeout_s"] - 1 < time.monotonic() - started < LIMITS["request_timeout_s"] + 10
    finally:
        sock.close()


def test_errors_are_counted_by_route_and_status(strict):
    _chat(strict, {"messages": [user("hi")]}, key=None)
    metrics = strict.http.get("/metrics").text
    assert 'lalm_requests_total{method="POST",route="/v1/chat/completions",status="401"}' in metrics
    assert 'lalm_requests_total{method="POST",route="/v1/audio/transcriptions",status="413"}' in metrics
