"""Security headers on every response (NLGov API Design Rules); CORS only for published origins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.errors import ConfigurationError
from tests.conftest import LiveHub, make_settings, start_live_hub

REQUESTS = [
    ("GET", "/health", None),
    ("GET", "/v1/openapi.json", None),
    ("GET", "/v1/inbox", None),  # 401
    ("GET", "/v1/inbox", "duo"),  # 200
    ("GET", "/v1/berichten/00000000-0000-0000-0000-000000000000", "duo"),  # 404
    ("POST", "/v1/berichten", "duo"),  # 415
    ("GET", "/soap/berichten", None),  # WSDL
    ("POST", "/soap/berichten", None),  # SOAP fault
    ("GET", "/does-not-exist", None),  # 404
    ("POST", "/v1/oauth/token", None),  # 415
]


@pytest.mark.parametrize(("method", "path", "partner"), REQUESTS)
def test_every_response_carries_the_security_headers(
    shared_hub: LiveHub, method: str, path: str, partner: str | None
) -> None:
    with shared_hub.client(partner) as client:
        response = client.request(method, path, content=b"x")
    headers = response.headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["api-version"]
    assert "strict-transport-security" not in headers  # plain HTTP: HSTS only over TLS
    assert "access-control-allow-origin" not in headers


def test_no_cors_by_default(shared_hub: LiveHub) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with httpx.Client(base_url=shared_hub.url) as client:
        response = client.options("/v1/berichten", headers=preflight)
        plain = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in plain.headers


@pytest.fixture
def cors_hub(tmp_path: Path) -> Iterator[LiveHub]:
    hub = start_live_hub(make_settings(tmp_path, cors_origins=["https://portaal.example"]))
    try:
        yield hub
    finally:
        hub.stop()


def test_cors_answers_only_the_published_origins(cors_hub: LiveHub) -> None:
    with httpx.Client(base_url=cors_hub.url) as client:
        ok = client.options(
            "/v1/berichten", headers={"Origin": "https://portaal.example", "Access-Control-Request-Method": "POST"}
        )
        evil = client.options(
            "/v1/berichten", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
    assert ok.headers["access-control-allow-origin"] == "https://portaal.example"
    assert ok.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in evil.headers


def test_a_cors_wildcard_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="wildcard"):
        make_settings(tmp_path, cors_origins=["*"])


def test_with_cors_configured_the_send_route_answers_with_cors_headers(cors_hub: LiveHub) -> None:
    """The hot send route skips the middleware stack only when no CORS is configured."""
    with cors_hub.client("duo") as client:
        response = client.post("/v1/berichten", content=b"x", headers={"Origin": "https://portaal.example"})
    assert response.status_code == 415
    assert response.headers["access-control-allow-origin"] == "https://portaal.example"
    assert response.headers["api-version"]
