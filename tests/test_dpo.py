"""The DPO API: separate credentials, searches by person that find every exchange about that
person and no other, audited queries, exports, and the public key."""

from __future__ import annotations

import csv
import io
import random

import httpx
from typer.testing import CliRunner

from hub import demo
from hub.cli.main import app
from tests.conftest import LiveHub
from tests.helpers import audit_rows

rng = random.Random(99)


def _dpo_token(live: LiveHub) -> str:
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    result = CliRunner().invoke(
        app, ["dpo", "add", "dpo-utrecht", "--name", "F. de Vries", "--organisation", "Gemeente Utrecht"], env=env
    )
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_a_dpo_search_by_bsn_finds_every_exchange_about_that_person_and_no_other(live: LiveHub) -> None:
    mine = demo.inburgeringsplicht(rng, "0344")
    other = demo.inburgeringsplicht(rng, "0344")
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=mine).status_code == 202
        assert c.post("/v1/berichten", json=other).status_code == 202
    live.wait_status("duo", mine["messageId"], {"delivered"})
    live.wait_status("duo", other["messageId"], {"delivered"})
    token = _dpo_token(live)
    r = httpx.post(
        f"{live.url}/v1/audit/_zoek",
        json={"subject": mine["subject"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert {rec["messageId"] for rec in records if rec.get("messageId")} == {mine["messageId"]}
    assert {rec["event"] for rec in records} >= {"received", "routed", "delivered"}
    assert mine["subject"]["id"] not in r.text
    # the query itself is audited, with the DPO as actor
    consulted = [e for e in audit_rows(live.settings, "consulted") if (e["actor"] or "").startswith("dpo:")]
    assert consulted[-1]["actor"] == "dpo:dpo-utrecht"
    assert consulted[-1]["detail"]["dpoQuery"] == "search"


def test_a_partner_token_cannot_reach_the_dpo_api(live: LiveHub) -> None:
    r = httpx.post(
        f"{live.url}/v1/audit/_zoek",
        json={},
        headers={"Authorization": f"Bearer {live.setup.tokens['duo']}"},
        timeout=10,
    )
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    r = httpx.post(f"{live.url}/v1/audit/_zoek", json={}, timeout=10)
    assert r.status_code == 401


def test_a_dpo_token_opens_nothing_else(live: LiveHub) -> None:
    token = _dpo_token(live)
    r = httpx.get(f"{live.url}/v1/inbox", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401


def test_person_report_and_csv_export(live: LiveHub) -> None:
    doc = demo.aanmelding(rng, "44021")
    doc["payload"]["persoon"]["achternaam"] = '=HYPERLINK("http://x")'
    with live.client("agii") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    live.wait_status("agii", doc["messageId"], {"delivered"})
    token = _dpo_token(live)
    headers = {"Authorization": f"Bearer {token}"}
    report = httpx.post(
        f"{live.url}/v1/audit/persoonsrapport", json={"subject": doc["subject"]}, headers=headers, timeout=10
    )
    assert report.status_code == 200, report.text
    entries = report.json()["entries"]
    assert any(e.get("receiver") == "stad-gent" for e in entries)
    page = httpx.post(
        f"{live.url}/v1/audit/persoonsrapport?formaat=html",
        json={"subject": doc["subject"]},
        headers=headers,
        timeout=10,
    )
    assert page.headers["content-type"].startswith("text/html")
    export = httpx.post(
        f"{live.url}/v1/audit/_export?formaat=csv", json={"partner": "stad-gent"}, headers=headers, timeout=10
    )
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.text)))
    assert len(rows) > 1
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t"))


def test_public_key_and_checkpoint_are_published(live: LiveHub) -> None:
    key = httpx.get(f"{live.url}/v1/audit/public-key", timeout=10).json()
    assert "BEGIN PUBLIC KEY" in str(key)
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=demo.inburgeringsplicht(rng, "0344")).status_code == 202
    note = CliRunner().invoke(app, ["audit", "checkpoint"], env=env)
    assert note.exit_code == 0, note.output
    cp = httpx.get(f"{live.url}/v1/audit/checkpoint", timeout=10)
    assert cp.status_code == 200
    verified = CliRunner().invoke(app, ["audit", "verify"], env=env)
    assert verified.exit_code == 0, verified.output
