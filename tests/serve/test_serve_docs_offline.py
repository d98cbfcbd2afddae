"""/docs (Swagger UI) and /redoc (ReDoc) load nothing from other hosts: every script, style and icon the pages
name is served by the gateway itself (from the fastapi-offline package), so the pages work offline. That the
pages render in a browser with the network blocked is tests/browser/test_browser_docs.py."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("page", "script", "symbol"), [("/docs", "swagger-ui-bundle.js", "SwaggerUIBundle"),
                                                        ("/redoc", "redoc.standalone.js", "Redoc")])
def test_docs_pages_load_only_local_assets(gateway_hf, page: str, script: str, symbol: str) -> None:
    html = gateway_hf.http.get(page)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    assert any(url.endswith(script) for url in urls)
    assert "//" not in html.text.replace("<!--", "")  # no absolute or protocol-relative URL anywhere
    kinds = {"js": "javascript", "css": "text/css", "png": "image/png"}
    for url in urls:
        assert url.startswith("/docs/assets/"), url
        asset = gateway_hf.http.get(url)
        assert asset.status_code == 200, url
        assert kinds[url.rsplit(".", 1)[1]] in asset.headers["content-type"], url
    assert symbol in gateway_hf.http.get(next(u for u in urls if u.endswith(script))).text
    assert gateway_hf.http.get("/openapi.json").status_code == 200
    assert "default-src 'self'" in html.headers["content-security-policy"]
