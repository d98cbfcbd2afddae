"""fetch_audio_url end to end. Two kinds of evidence, and no packet to a non-loopback address in either:
- real HTTP(S) against loopback servers of the test's own (conftest.py), which record every request they get;
- httpx.MockTransport standing in for the network where the story needs public addresses (pinning, DNS
  rebinding, redirects to metadata): names resolve from a table, the transport records what would be sent."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable

import httpx
import pytest
from fetch_testkit import NAMES, WAV, Cert, FakeResolver, LoopbackServer

from lalm.audio import decode_audio
from lalm.config import Settings
from lalm.serve.fetch import FetchError, fetch_audio_url

PUBLIC = "93.184.216.34"


def settings(**overrides: object) -> Settings:
    return Settings(allow_remote_audio_urls=True, **overrides)


def fetch(url: str, config: Settings, **seams: object) -> bytes:
    return asyncio.run(fetch_audio_url(url, config, **seams))


def refused(url: str, config: Settings, **seams: object) -> FetchError:
    with pytest.raises(FetchError) as err:
        fetch(url, config, **seams)
    return err.value


class CountingTransport(httpx.AsyncBaseTransport):
    """The real network transport, counting the requests that reach it: zero means nothing was connected."""

    def __init__(self, **kwargs: object) -> None:
        self.inner = httpx.AsyncHTTPTransport(trust_env=False, **kwargs)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Recorder:
    """An httpx.MockTransport handler: answers from `routes` (path -> response factory), records requests."""

    def __init__(self, routes: dict[str, Callable[[httpx.Request], httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes[request.url.path](request)


def redirect(location: str, status: int = 302) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(status, headers={"Location": location})


def audio(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=WAV, headers={"Content-Type": "audio/wav"})


# --- real loopback servers --------------------------------------------------------------------------------


def test_fetches_a_wav_from_an_allowlisted_loopback_server(serve: Callable[..., LoopbackServer]) -> None:
    server = serve()
    body = fetch(server.url(), settings(url_fetch_allowlist=[f"127.0.0.1:{server.port}"]))
    assert body == WAV
    assert abs(len(decode_audio(body).samples) - 16000) < 160
    assert server.seen.paths == ["/audio.wav"]
    assert server.seen.hosts == [f"127.0.0.1:{server.port}"]


def test_a_name_is_connected_at_its_checked_address_with_its_own_host_header(
    serve: Callable[..., LoopbackServer],
) -> None:
    server = serve()
    resolver = FakeResolver(NAMES)  # audio.test -> 127.0.0.1, no DNS
    config = settings(url_fetch_allowlist=["audio.test"])
    assert fetch(f"http://audio.test:{server.port}/audio.wav", config, resolve=resolver) == WAV
    assert server.seen.hosts == [f"audio.test:{server.port}"]
    assert resolver.calls == [("audio.test", server.port)]


def test_https_to_the_checked_address_keeps_the_names_sni_and_certificate(
    serve: Callable[..., LoopbackServer], tls_cert: Cert
) -> None:
    """Connecting to the pinned IP must not weaken TLS: the server sees the URL's name as SNI and Host, and
    the certificate is verified against that name (it has no IP in it)."""
    server = serve(tls=tls_cert.server_context)
    trust = ssl.create_default_context(cafile=str(tls_cert.cert))
    config = settings(url_fetch_allowlist=["audio.test"])
    url = f"https://audio.test:{server.port}/audio.wav"
    assert fetch(url, config, resolve=FakeResolver(NAMES), transport=CountingTransport(verify=trust)) == WAV
    assert tls_cert.sni == ["audio.test"]
    assert server.seen.hosts == [f"audio.test:{server.port}"]
    # And the check is real: a name the certificate does not carry fails verification, as a clean 400.
    other = FakeResolver({"other.test": ["127.0.0.1"]})
    config = settings(url_fetch_allowlist=["other.test"])
    err = refused(f"https://other.test:{server.port}/audio.wav", config, resolve=other,
                  transport=CountingTransport(verify=trust))  # fmt: skip
    assert (err.code, err.status) == ("fetch_failed", 400)
    assert "CERTIFICATE_VERIFY_FAILED" in err.message


@pytest.mark.parametrize("spelling", ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"])
def test_a_redirect_to_another_loopback_port_is_refused_at_the_hop(
    serve: Callable[..., LoopbackServer], spelling: str
) -> None:
    allowed, other = serve(), serve()
    target = f"http://{spelling}:{other.port}/audio.wav"
    config = settings(url_fetch_allowlist=[f"127.0.0.1:{allowed.port}"])
    err = refused(allowed.url(f"/redirect?to={target}"), config)
    assert (err.code, err.status) == ("forbidden_address", 400)
    assert err.message.startswith(f"audio_url redirect 1 ({target})")
    assert len(allowed.seen.paths) == 1
    assert other.seen.paths == []


def test_a_redirect_within_the_allowlisted_server_is_followed(serve: Callable[..., LoopbackServer]) -> None:
    server = serve()
    config = settings(url_fetch_allowlist=[f"127.0.0.1:{server.port}"])
    assert fetch(server.url("/redirect?to=/audio.wav&status=307"), config) == WAV
    assert [p.split("?")[0] for p in server.seen.paths] == ["/redirect", "/audio.wav"]


@pytest.mark.parametrize("declare", [False, True])
def test_a_body_over_the_limit_is_cut_off(serve: Callable[..., LoopbackServer], declare: bool) -> None:
    server = serve()
    size = 1 << 30  # 1 GiB offered; the client must stop long before
    config = settings(url_fetch_allowlist=[f"127.0.0.1:{server.port}"], max_upload_bytes=100_000)
    err = refused(server.url(f"/big?n={size}&declare={int(declare)}"), config)
    assert (err.code, err.status) == ("file_too_large", 413)
    assert "100000-byte limit" in err.message
    if declare:
        assert f"Content-Length {size}" in err.message
    # What the server pushed before the client hung up: socket buffers, not the gigabyte.
    assert server.seen.sent < 64 << 20


def test_a_slow_server_hits_the_total_time_limit(serve: Callable[..., LoopbackServer]) -> None:
    """The server sends a byte every 0.1 s for 30 s: no single read times out, only the total limit can."""
    server = serve()
    config = settings(url_fetch_allowlist=[f"127.0.0.1:{server.port}"], url_fetch_timeout_s=0.5)
    start = time.monotonic()
    err = refused(server.url("/slow"), config)
    assert (err.code, err.status) == ("fetch_timeout", 400)
    assert "0.5 s limit" in err.message
    assert time.monotonic() - start < 10  # far below the 30 s the server would go on for


def test_a_404_becomes_a_400_naming_the_status(serve: Callable[..., LoopbackServer]) -> None:
    server = serve()
    err = refused(server.url("/missing.wav"), settings(url_fetch_allowlist=[f"127.0.0.1:{server.port}"]))
    assert (err.code, err.status) == ("upstream_status", 400)
    assert "HTTP 404 Not Found" in err.message


def test_a_closed_port_is_a_clean_400() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = refused(f"http://127.0.0.1:{port}/a.wav", settings(url_fetch_allowlist=[f"127.0.0.1:{port}"]))
    assert (err.code, err.status) == ("fetch_failed", 400)


# Loopback spelled every way; the test's servers listen on 127.0.0.1 and ::1 at the same port.
LOOPBACK_HOSTS = [
    "127.0.0.1", "127.1", "127.0.1", "127.9.8.7", "2130706433", "0x7f000001", "0X7F000001", "0x7f.0.0.1",
    "0x7f.1", "0177.0.0.1", "0177.1", "017700000001", "127.0.0.1.", "0.0.0.0", "0", "localhost", "LOCALHOST.",
    "LocalHost", "ip6-localhost.localhost", "[::1]", "[0:0:0:0:0:0:0:1]", "[::]", "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "evil@127.0.0.1",
    "127.0.0.1.nip.io", "%31%32%37.0.0.1", "ｌｏｃａｌｈｏｓｔ",
]  # fmt: skip


def _servers_on_both_loopbacks(serve: Callable[..., LoopbackServer]) -> tuple[LoopbackServer, LoopbackServer]:
    for _ in range(20):
        v4 = serve("127.0.0.1")
        try:
            return v4, serve("::1", v4.port)
        except OSError:  # that port is taken on ::1; try another
            continue
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def test_loopback_spelled_every_way_is_refused_before_any_connection(
    serve: Callable[..., LoopbackServer],
) -> None:
    v4, v6 = _servers_on_both_loopbacks(serve)
    transport = CountingTransport()
    resolver = FakeResolver({"127.0.0.1.nip.io": ["127.0.0.1"]})  # the one name a real DNS would answer
    for host in LOOPBACK_HOSTS:
        err = refused(f"http://{host}:{v4.port}/audio.wav", settings(), resolve=resolver, transport=transport)
        assert err.status == 400, host
        assert err.code in ("forbidden_address", "invalid_url"), (host, err.message)
    assert transport.requests == []
    assert v4.seen.paths == v6.seen.paths == []
    assert resolver.calls == [("127.0.0.1.nip.io", v4.port)]
    # The same servers answer when allow-listed, so a request that had slipped through would have shown.
    config = settings(url_fetch_allowlist=[f"127.0.0.1:{v4.port}", f"[::1]:{v6.port}"])
    assert fetch(v4.url(), config, transport=transport) == fetch(v6.url(), config, transport=transport) == WAV
    assert (v4.seen.paths, v6.seen.paths) == (["/audio.wav"], ["/audio.wav"])


@pytest.mark.parametrize("url", ["http://127.0.0.1/a.wav", "https://ok.example/a.wav"])
def test_disabled_remote_urls_are_a_clear_400(url: str) -> None:
    recorder, resolver = Recorder({}), FakeResolver(NAMES)
    err = refused(url, Settings(allow_remote_audio_urls=False), resolve=resolver, transport=recorder.transport)
    assert (err.code, err.status) == ("remote_urls_disabled", 400)
    assert "disabled" in err.message
    assert recorder.requests == resolver.calls == []


def test_other_schemes_are_refused_even_when_disabled() -> None:
    err = refused("file:///etc/passwd", Settings(allow_remote_audio_urls=False))
    assert (err.code, err.status) == ("unsupported_url_scheme", 400)


# --- the network replaced by a MockTransport: public names, no traffic ----------------------------------


def test_connects_to_the_checked_ip_presenting_the_original_name() -> None:
    recorder, resolver = Recorder({"/a.wav": audio}), FakeResolver(NAMES)
    assert fetch("https://ok.example/a.wav?sig=1", settings(), resolve=resolver, transport=recorder.transport) == WAV
    (request,) = recorder.requests
    assert str(request.url) == f"https://{PUBLIC}/a.wav?sig=1"
    assert request.headers["host"] == "ok.example"
    assert request.extensions["sni_hostname"] == "ok.example"
    assert resolver.calls == [("ok.example", 443)]


def test_a_rebinding_name_cannot_move_the_connection() -> None:
    """A DNS server that answers a public address first and 127.0.0.1 afterwards: the first hop connects to
    the public address it checked; the redirect back to the same name is resolved again, checked, refused."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    recorder = Recorder({"/a.wav": redirect("/b.wav")})
    err = refused("http://rebind.example/a.wav", settings(), resolve=rebinding, transport=recorder.transport)
    assert err.code == "forbidden_address"
    assert "redirect 1" in err.message
    assert [r.url.host for r in recorder.requests] == [PUBLIC]


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("http://metadata.example/latest/meta-data/", "forbidden_address"),
        ("http://169.254.169.254/latest/meta-data/", "forbidden_address"),
        ("http://[::ffff:169.254.169.254]/", "forbidden_address"),
        ("http://10.0.0.1:8080/", "forbidden_address"),
        ("http://localhost:8000/", "forbidden_address"),
        ("//127.0.0.1/a.wav", "forbidden_address"),  # scheme-relative
        ("file:///etc/passwd", "unsupported_url_scheme"),
        ("gopher://ok.example/", "unsupported_url_scheme"),
        ("http://user@ok.example/", "invalid_url"),
    ],
)
def test_every_redirect_hop_is_checked(location: str, code: str) -> None:
    recorder = Recorder({"/a.wav": redirect(location)})
    err = refused("http://ok.example/a.wav", settings(), resolve=FakeResolver(NAMES), transport=recorder.transport)
    assert (err.code, err.status) == (code, 400)
    assert err.message.startswith("audio_url redirect 1")
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("max_redirects", [0, 1, 3])
def test_redirects_are_capped(max_redirects: int) -> None:
    recorder = Recorder({"/a.wav": redirect("/a.wav", 301)})
    config = settings(url_fetch_max_redirects=max_redirects)
    err = refused("http://ok.example/a.wav", config, resolve=FakeResolver(NAMES), transport=recorder.transport)
    assert (err.code, err.status) == ("too_many_redirects", 400)
    assert len(recorder.requests) == max_redirects + 1


def test_a_redirect_without_location_is_refused() -> None:
    recorder = Recorder({"/a.wav": lambda _r: httpx.Response(302)})
    err = refused("http://ok.example/a.wav", settings(), resolve=FakeResolver(NAMES), transport=recorder.transport)
    assert err.code == "invalid_redirect"


@pytest.mark.parametrize("status", [403, 500, 304])
def test_non_2xx_statuses_become_400(status: int) -> None:
    recorder = Recorder({"/a.wav": lambda _r: httpx.Response(status)})
    err = refused("http://ok.example/a.wav", settings(), resolve=FakeResolver(NAMES), transport=recorder.transport)
    assert (err.code, err.status) == ("upstream_status", 400)
    assert f"HTTP {status}" in err.message


def test_the_next_checked_address_is_tried_when_one_cannot_connect() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host != PUBLIC:
            raise httpx.ConnectError("Network is unreachable", request=request)
        return audio(request)

    recorder = Recorder({"/a.wav": handler})
    body = fetch("http://dual.example/a.wav", settings(), resolve=FakeResolver(NAMES), transport=recorder.transport)
    assert body == WAV
    assert [r.url.host for r in recorder.requests] == ["2606:2800:220:1:248:1893:25c8:1946", PUBLIC]


def test_a_broken_connection_is_a_clean_400() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    recorder = Recorder({"/a.wav": handler})
    err = refused("http://ok.example/a.wav", settings(), resolve=FakeResolver(NAMES), transport=recorder.transport)
    assert (err.code, err.status) == ("fetch_failed", 400)
    assert "connection reset by peer" in err.message
