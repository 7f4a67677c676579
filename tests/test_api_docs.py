"""GET /v1/docs: Swagger UI from the hub itself (hub/api/docs.py), not from a CDN.

FastAPI's page loaded its script and styles from cdn.jsdelivr.net: a third party's code on
the hub's origin, and a blank page on a machine without internet (this project's CI machine
among them).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect

from tests.conftest import LiveHub


def test_the_docs_page_names_only_the_hubs_own_assets_and_they_are_served(live: LiveHub) -> None:
    page = httpx.get(f"{live.url}/v1/docs", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "http" not in csp, csp  # no other origin may serve script, style or images
    assert "script-src 'self'" in csp
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert referenced, page.text
    assert all(url.startswith("/v1/docs/assets/") for url in referenced), referenced
    assert "url: '/v1/openapi.json'" in page.text
    kinds = {}
    for url in referenced:
        asset = httpx.get(urljoin(live.url, url), timeout=10)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "public, max-age=86400"
        kinds[url.rsplit(".", 1)[1]] = asset
    assert set(kinds) == {"js", "css", "png"}
    assert "javascript" in kinds["js"].headers["content-type"]
    # Swagger UI 5: earlier versions cannot render OpenAPI 3.1, which FastAPI writes
    assert re.search(rb'"5\.\d+\.\d+"', kinds["js"].content)


def test_the_assets_route_serves_nothing_outside_its_directory(live: LiveHub) -> None:
    # encoded, so that the client sends the dots as they are and the server must refuse them
    answer = httpx.get(f"{live.url}/v1/docs/assets/%2e%2e/%2e%2e/%2e%2e/hub/settings.py", timeout=10)
    assert answer.status_code == 404
    assert "class Settings" not in answer.text


@pytest.mark.browser
def test_the_docs_render_every_operation_with_no_other_origin_reachable(live: LiveHub, browser: Browser) -> None:
    """In Chromium, with every request to another origin refused: the page shows the API."""
    elsewhere: list[str] = []

    def only_the_hub(route: Route) -> None:
        if route.request.url.startswith(live.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", only_the_hub)
    page.goto(f"{live.url}/v1/docs")
    # the paths are shown below the server URL (…/v1)
    expect(page.locator(".opblock-summary-path", has_text="/berichten").first).to_be_visible(timeout=20_000)
    assert page.locator(".opblock").count() >= 5
    assert elsewhere == []
