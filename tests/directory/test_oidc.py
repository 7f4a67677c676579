"""The citizen logs in through an OpenID Connect provider (as with eID/itsme via FAS, or DigiD)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from hub.loopback import free_port
from hub.settings import OidcSettings, Settings
from tests.conftest import LiveHub, ServerThread, start_live_hub
from tests.directory.conftest import insz
from tests.directory.oidc_provider import create_app


@pytest.fixture
def oidc_hub(settings: Settings) -> Iterator[tuple[LiveHub, str]]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    provider = ServerThread(
        [uvicorn.Server(uvicorn.Config(create_app(issuer, "knooppunt", "s3cret"), port=port, log_level="warning"))]
    )
    provider.start()
    settings = settings.model_copy(
        update={
            "citizen_login": "oidc",
            "citizen_oidc": OidcSettings(
                issuer=issuer, client_id="knooppunt", client_secret="s3cret", subject_claim="egovNRN"
            ),
        }
    )
    live = start_live_hub(settings)
    try:
        yield live, issuer
    finally:
        live.stop()
        provider.stop()


def _login(live: LiveHub, issuer: str, browser: httpx.Client, **who: object) -> httpx.Response:
    httpx.post(f"{issuer}/_next", json=who, timeout=5).raise_for_status()
    page = browser.get("/mijn-dossier")
    assert 'href="/mijn-dossier/aanmelden"' in page.text
    assert "testomgeving" not in page.text  # no number form with a real provider
    return browser.get("/mijn-dossier/aanmelden")


def test_login_through_the_oidc_provider_opens_the_persons_own_dossier(oidc_hub: tuple[LiveHub, str]) -> None:
    live, issuer = oidc_hub
    person = insz()
    with httpx.Client(base_url=live.url, timeout=10, follow_redirects=True) as browser:
        page = _login(live, issuer, browser, rrn=person)
        assert page.status_code == 200
        assert "Mijn traject" in page.text
        assert browser.get("/v1/mijn-dossier").status_code == 200


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ({"tamper": "85073003328"}, "handtekening"),
        ({"nonce_override": "other"}, "nonce"),
        ({"deny": True}, "afgebroken"),
        ({"rrn": "85073003327"}, "controlegetal"),
    ],
)
def test_a_forged_refused_or_replayed_login_opens_nothing(
    oidc_hub: tuple[LiveHub, str], who: dict[str, object], reason: str
) -> None:
    live, issuer = oidc_hub
    with httpx.Client(base_url=live.url, timeout=10, follow_redirects=True) as browser:
        page = _login(live, issuer, browser, **who)
        assert page.status_code == 400
        assert reason in page.text
        assert browser.get("/v1/mijn-dossier").status_code == 401
