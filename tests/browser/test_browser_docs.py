"""/docs (Swagger UI) and /redoc (ReDoc) render in real headless Chromium with every request to another host
refused: the operations are listed from the gateway's own assets and /openapi.json alone, and the pages ask
nothing of another host (ReDoc's bundle would fetch its vendor's logo: the pages' Content-Security-Policy keeps
the browser from sending that request)."""

from __future__ import annotations

import pytest
from browser_support import same_origin
from playwright.sync_api import Page, Route, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def offline_page(browser_context, gateway_browser):
    """A page on which any request that does not go to the gateway is aborted, and the list of those."""
    context, _ = browser_context
    page = context.new_page()
    refused: list[str] = []

    def guard(route: Route) -> None:
        if same_origin(route.request.url, gateway_browser.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    yield page, refused
    page.close()


def test_swagger_ui_lists_the_operations_offline(offline_page: tuple[Page, list[str]], gateway_browser) -> None:
    page, refused = offline_page
    page.goto(gateway_browser.url + "/docs")
    paths = page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible(timeout=30_000)
    assert "/v1/audio/transcriptions" in paths.all_inner_texts()
    assert refused == []


def test_redoc_lists_the_operations_offline(offline_page: tuple[Page, list[str]], gateway_browser) -> None:
    page, refused = offline_page
    page.goto(gateway_browser.url + "/redoc")
    expect(page.get_by_text("/v1/audio/transcriptions").first).to_be_attached(timeout=30_000)
    assert refused == []
