"""Fixtures of the fetch guard tests: loopback servers stopped after each test, and a TLS certificate."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fetch_testkit import Cert, LoopbackServer, make_cert, start_server


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    """Factory: `serve(host="127.0.0.1", port=0, tls=None) -> LoopbackServer`, stopped at the end of the test."""
    servers: list[LoopbackServer] = []

    def start(host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> LoopbackServer:
        server = start_server(host, port, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def tls_cert(tmp_path: Path) -> Cert:
    """A certificate for `audio.test`, with a server context that records each TLS server name."""
    return make_cert(tmp_path)
