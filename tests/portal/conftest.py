"""Fixtures for the portal: a live hub on loopback with portal users in two organisations."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from hub.portal import accounts
from hub.service import Hub
from hub.settings import Settings
from tests.conftest import LiveHub, start_live_hub

PASSWORD = "correct-paard-batterij-niet"
EDE_USER = "medewerker@ede.nl"
GENT_USER = "medewerker@gent.be"
TOTP_USER = "beveiligd@ede.nl"


@dataclass
class Portal:
    live: LiveHub
    totp_secret: str

    @property
    def url(self) -> str:
        return self.live.url

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.live.url, timeout=15, follow_redirects=True)

    def login(self, username: str = EDE_USER, password: str = PASSWORD) -> httpx.Client:
        client = self.browser()
        response = login(client, username, password)
        assert response.url.path == "/portaal/start", response.text
        return client


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no csrf token in the page"
    return m.group(1)


def login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    form = client.get("/portaal/inloggen")
    return client.post(
        "/portaal/inloggen",
        data={"csrf": csrf_of(form.text), "gebruikersnaam": username, "wachtwoord": password},
    )


def seed_users(settings: Settings) -> str:
    hub = Hub(settings)
    hub.open_store()
    try:
        hub.writer.run_sync(
            accounts.add_user(
                "gemeente-ede", EDE_USER, "Els de Vries", PASSWORD, totp=False, actor="test", master=hub.keys.master
            )
        )
        hub.writer.run_sync(
            accounts.add_user(
                "stad-gent", GENT_USER, "Gert Peeters", PASSWORD, totp=False, actor="test", master=hub.keys.master
            )
        )
        secret = hub.writer.run_sync(
            accounts.add_user(
                "gemeente-ede", TOTP_USER, "Bram Bakker", PASSWORD, totp=True, actor="test", master=hub.keys.master
            )
        )
    finally:
        hub.close_store()
    assert secret
    return secret


@pytest.fixture
def portal(settings: Settings) -> Iterator[Portal]:
    live = start_live_hub(settings)
    try:
        yield Portal(live, seed_users(settings))
    finally:
        live.stop()


def upload(
    client: httpx.Client, content: bytes, *, filename: str = "rijen.csv", type_name: str = "pip"
) -> httpx.Response:
    """Post a file through the upload form, as a browser would."""
    form = client.get("/portaal/versturen")
    return client.post(
        "/portaal/versturen",
        data={"csrf": csrf_of(form.text), "berichttype": type_name},
        files={"bestand": (filename, content, "text/csv")},
    )


def wait_received(live: LiveHub, partner: str, count: int, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = live.received(partner)
        if got["count"] >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)
