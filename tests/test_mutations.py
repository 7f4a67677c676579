"""Rijksregister mutations through the hub: a move reaches the municipality that follows the
person, and nobody else; polling the same batch twice sends nothing twice."""

from __future__ import annotations

import json
from typing import Any

import httpx
from typer.testing import CliRunner

from hub.cli.main import app
from tests.conftest import TEST_AUDIT_KEY, TEST_PAYLOAD_KEY, TEST_SIGNING_KEY, LiveHub
from tests.helpers import audit_rows


def _env(live: LiveHub) -> dict[str, str]:
    return {
        "KNOOPPUNT_ENV": "test",
        "KNOOPPUNT_DATABASE_URL": live.settings.database_url,
        "KNOOPPUNT_LOG_LEVEL": "warning",
        "KNOOPPUNT_PAYLOAD_KEY": TEST_PAYLOAD_KEY,
        "KNOOPPUNT_AUDIT_HMAC_KEY": TEST_AUDIT_KEY,
        "KNOOPPUNT_AUDIT_SIGNING_KEY": TEST_SIGNING_KEY,
    }


def test_a_move_in_the_rijksregister_reaches_the_following_municipality(live: LiveHub) -> None:
    sim = live.sim_urls["rijksregister"]
    state: dict[str, Any] = httpx.get(f"{sim}/_control/state", timeout=10).json()
    insz = state["personas"]["regular"]
    with live.client("stad-gent") as c:
        r = c.post(
            "/v1/repertorium/inschrijvingen",
            json={"subject": {"type": "INSZ", "id": insz}, "hoedanigheid": "woongemeente"},
        )
        assert r.status_code in (200, 201), r.text
    httpx.post(f"{sim}/_control/mutaties", json={"type": "verhuisd", "insz": insz}, timeout=10).raise_for_status()
    out = CliRunner().invoke(app, ["mutations"], env=_env(live))
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    [message] = result["berichten"]
    assert message["receivers"] == ["stad-gent"]
    live.wait_status("stad-gent", message["messageId"], {"delivered"})
    [got] = [m for m in live.received("stad-gent")["messages"] if m["messageId"] == message["messageId"]]
    assert got["message"]["payload"]["soort"] == "VERHUIZING"
    assert got["message"]["type"] == "persoonsmutatie"
    received = [e for e in audit_rows(live.settings, "received") if e["message_id"] == message["messageId"]]
    assert received[0]["detail"]["channel"] == "poll"
    assert received[0]["sender"] == "rijksregister"


def test_polling_without_news_sends_nothing(live: LiveHub) -> None:
    out = CliRunner().invoke(app, ["mutations"], env=_env(live))
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["berichten"] == []
