"""Shared by the browser tests: the API key of their gateway, Chromium's flags, the fake microphone's
sentences, and the check that a URL goes to the gateway."""

from __future__ import annotations

from urllib.parse import urlsplit

KEY = "sk-browser-test"
LIVE_TEXTS = ["Good morning, this is a test of live transcription.", "The second sentence comes after a pause."]
# Chromium without anything that phones home: no sync, component updates, background networking or QUIC.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream"]


def same_origin(url: str, gateway_url: str) -> bool:
    """Whether `url` goes to the gateway: http(s)/ws(s) to its host and port, a blob: made from its pages, or
    an inline data: URL (no request at all)."""
    if url.startswith("data:"):
        return True
    if url.startswith("blob:"):
        url = url[len("blob:"):]
    return urlsplit(url).netloc == urlsplit(gateway_url).netloc and urlsplit(url).scheme in ("http", "ws")
