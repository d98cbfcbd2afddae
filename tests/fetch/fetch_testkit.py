"""Test kit of the fetch guard, all loopback or offline:
- `start_server`: HTTP(S) servers of the tests' own on 127.0.0.1 or ::1 (free ports) that serve a WAV (and any
  files given), redirect, send too much, trickle slowly or answer 404, and record every request (so a test can
  assert that a refused URL never reached them);
- `make_cert`: a self-signed certificate for a name, and a server TLS context that records the SNI it gets;
- `FakeResolver` and `NAMES`: names resolved from a table, never by DNS."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from media import encode, tone

WAV = encode(tone(1.0), "wav")


@dataclass
class Seen:
    """What one server received (request paths and Host headers, in order) and how many body bytes it sent."""

    paths: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    sent: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        seen = self.server.seen
        seen.paths.append(self.path)
        seen.hosts.append(self.headers.get("Host", ""))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/audio.wav":
            self._send(200, WAV, {"Content-Type": "audio/wav"})
        elif url.path in self.server.files:
            self._send(200, self.server.files[url.path], {"Content-Type": "application/octet-stream"})
        elif url.path == "/redirect":
            self._send(int(query.get("status", "302")), b"", {"Location": query["to"]})
        elif url.path == "/big":
            self._big(int(query["n"]), declare=query.get("declare") == "1")
        elif url.path == "/slow":
            self._slow()
        else:
            self._send(404, b"not here", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading: what a size limit does
            self.wfile.write(body)

    def _big(self, size: int, declare: bool) -> None:
        """`size` bytes in 64 KiB writes, counting in `seen.sent` what the client let through. Without
        Content-Length the body ends when the connection closes (HTTP/1.0): only a streaming limit stops it."""
        self.send_response(200)
        if declare:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"\0" * 65536
        try:
            while self.server.seen.sent < size:
                self.wfile.write(chunk)
                self.server.seen.sent += len(chunk)
        except OSError:
            pass

    def _slow(self) -> None:
        """Headers at once, then one byte every 0.1 s: each read is quick, only a total limit stops it."""
        self.send_response(200)
        self.end_headers()
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, files: dict[str, bytes]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.seen = Seen()
        self.tls = tls
        self.files = files
        super().__init__((host, port), _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, addr


@dataclass
class LoopbackServer:
    """A running test server: `url(path)` addresses it by its IP literal; `stop()` shuts it down."""

    host: str
    port: int
    seen: Seen
    scheme: str
    stop: Callable[[], None]

    def url(self, path: str = "/audio.wav") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"


def start_server(host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None,
                 files: dict[str, bytes] | None = None) -> LoopbackServer:
    """Serve on `host` (a loopback address) at `port` (0: a free one) in a thread, with TLS if `tls` is given;
    `files` maps more paths to the bytes served there."""
    assert host in ("127.0.0.1", "::1"), "test servers listen on loopback only"
    server = _Server(host, port, tls, files or {})
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return LoopbackServer(host, server.server_address[1], server.seen, "https" if tls else "http", stop)


@dataclass(frozen=True)
class Cert:
    """A self-signed certificate for one host name, and the server context that presents it."""

    name: str
    cert: Path
    server_context: ssl.SSLContext
    sni: list[str | None]


def make_cert(folder: Path, name: str = "audio.test") -> Cert:
    """A certificate for `name` only (openssl CLI), and a server context presenting it that records each TLS
    server name (SNI) a client sends."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    sni: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, server_name, _ctx: sni.append(server_name)
    return Cert(name, cert, context, sni)


class FakeResolver:
    """Resolves names from a table, records every call, and answers like NXDOMAIN for any other name: a test
    using it can never send a DNS query."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


NAMES = {
    "ok.example": ["93.184.216.34"],
    "ok6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "dual.example": ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"],
    "metadata.example": ["169.254.169.254"],
    "metadata.google.internal": ["169.254.169.254"],
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "10.0.0.1.sslip.io": ["10.0.0.1"],
    "mixed.example": ["93.184.216.34", "10.1.2.3"],  # one private answer among public ones
    "mapped.example": ["::ffff:127.0.0.1"],
    "ula.example": ["fd12:3456::1"],
    "xn--bcher-kva.example": ["127.0.0.1"],  # bücher.example, IDNA-encoded
    "audio.test": ["127.0.0.1"],
}
