"""Synchronous lookups through the hub: protocol-checked, minimised, audited as consulted."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from tests.conftest import LiveHub
from tests.helpers import audit_rows

PURPOSE = "be-opvolging-inburgeraar"


def _personas(live: LiveHub, partner: str = "magda") -> dict[str, str]:
    state: dict[str, Any] = httpx.get(f"{live.sim_urls[partner]}/_control/state", timeout=5).json()
    return dict(state["personas"])


def test_person_lookup_is_answered_minimised_and_audited(live: LiveHub) -> None:
    insz = _personas(live)["regular"]
    with live.client("agii") as c:
        r = c.post("/v1/personen/_zoek", json={"insz": insz, "purpose": PURPOSE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["found"] is True
    assert body["bron"] == "magda"
    data = body["data"]
    assert data["insz"] == insz
    assert {"voornamen", "achternaam", "geboortedatum", "adres"} <= set(data)
    # fields outside the protocol never leave the hub
    assert set(data) <= {
        "insz",
        "voornamen",
        "achternaam",
        "geboortedatum",
        "geslacht",
        "nationaliteit",
        "adres",
        "inszStatus",
        "nieuwInsz",
    }
    [consulted] = audit_rows(live.settings, "consulted")
    assert consulted["sender"] == "agii"
    assert consulted["receiver"] == "magda"
    assert consulted["protocol_id"] == PURPOSE
    assert consulted["subject_type"] == "INSZ"
    assert consulted["subject_hash"]
    assert insz not in str(consulted)


def test_enrolment_lookup_returns_nt2_enrolments(live: LiveHub) -> None:
    insz = _personas(live, "discimus")["nt2"]
    with live.client("stad-gent") as c:
        r = c.post("/v1/inschrijvingen/_zoek", json={"insz": insz, "purpose": PURPOSE, "van": "2015-01-01"})
    assert r.status_code == 200, r.text
    enrolments = r.json()["data"]["inschrijvingen"]
    assert any(e["nt2"] for e in enrolments)
    assert audit_rows(live.settings, "consulted")[-1]["receiver"] == "discimus"


def test_unknown_person_is_found_false(live: LiveHub) -> None:
    insz = _personas(live)["unknown"]
    with live.client("agii") as c:
        r = c.post("/v1/personen/_zoek", json={"insz": insz, "purpose": PURPOSE})
    assert r.status_code == 200
    assert r.json()["found"] is False
    assert audit_rows(live.settings, "consulted")[-1]["status"] == "not_found"


def test_a_partner_without_protocol_gets_403_and_nothing_is_consulted(live: LiveHub) -> None:
    insz = _personas(live)["regular"]
    with live.client("duo") as c:
        r = c.post("/v1/personen/_zoek", json={"insz": insz, "purpose": PURPOSE})
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert audit_rows(live.settings, "consulted") == []


@pytest.mark.parametrize(
    ("body", "name"),
    [({"insz": "12345678901", "purpose": PURPOSE}, "insz"), ({"purpose": PURPOSE}, "/insz")],
    ids=["bad-check-digit", "missing-insz"],
)
def test_bad_lookup_input_names_the_field(live: LiveHub, body: dict[str, str], name: str) -> None:
    with live.client("agii") as c:
        r = c.post("/v1/personen/_zoek", json=body)
    assert r.status_code == 400
    assert name in {p["name"] for p in r.json()["invalidParams"]}


def test_source_unavailable_gives_503_and_an_audited_failure(live: LiveHub) -> None:
    insz = _personas(live)["regular"]
    httpx.post(f"{live.sim_urls['magda']}/_control/faults", json={"fault": "99996"}, timeout=5).raise_for_status()
    with live.client("agii") as c:
        r = c.post("/v1/personen/_zoek", json={"insz": insz, "purpose": PURPOSE})
    assert r.status_code == 503
    problem = r.json()
    assert problem["code"] == "partner_unavailable"
    assert "<" not in problem["detail"]  # never the raw reply
    failed = audit_rows(live.settings, "failed")
    assert failed[-1]["receiver"] == "magda"
    assert failed[-1]["detail"]["lookup"] == "persoon"


def test_cli_lookup_prints_the_canonical_person_and_exit_codes(live: LiveHub) -> None:
    personas = _personas(live)
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    runner = CliRunner()
    ok = runner.invoke(app, ["lookup", "persoon", personas["regular"], "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    person = json.loads(ok.stdout)
    assert {"insz", "voornamen", "achternaam", "geboortedatum", "geslacht", "adres", "waarschuwingen"} <= set(person)
    assert runner.invoke(app, ["lookup", "persoon", personas["unknown"], "--json"], env=env).exit_code == 3
    assert runner.invoke(app, ["lookup", "persoon", "12345678901"], env=env).exit_code == 2
    consulted = audit_rows(live.settings, "consulted")
    assert consulted[0]["actor"].startswith("operator:")


def test_check_partner_reports_reachability(live: LiveHub) -> None:
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    ok = CliRunner().invoke(app, ["check-partner", "magda"], env=env)
    assert ok.exit_code == 0, ok.output
    live.control("gemeente-utrecht", mode="down")
    down = CliRunner().invoke(app, ["check-partner", "gemeente-utrecht"], env=env)
    assert down.exit_code == 1
    assert "niet in orde" in down.output


def test_soap_lookup_answers_with_the_same_data(live: LiveHub) -> None:
    from lxml import etree

    insz = _personas(live)["regular"]
    body = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ks="urn:knooppunt:soap:1">'
        f"<soap:Body><ks:ZoekPersoon><ks:insz>{insz}</ks:insz><ks:purpose>{PURPOSE}</ks:purpose></ks:ZoekPersoon>"
        "</soap:Body></soap:Envelope>"
    )
    r = httpx.post(
        f"{live.url}/soap/berichten",
        content=body,
        headers={"Content-Type": "text/xml", "Authorization": f"Bearer {live.setup.tokens['agii']}"},
    )
    assert r.status_code == 200, r.text
    doc = etree.fromstring(r.content)
    ns = {"ks": "urn:knooppunt:soap:1"}
    assert doc.findtext(".//ks:found", namespaces=ns) == "true"
    assert doc.findtext(".//ks:data/insz", namespaces=ns) == insz
    assert doc.findtext(".//ks:data/achternaam", namespaces=ns)
    assert audit_rows(live.settings, "consulted")[-1]["sender"] == "agii"


def test_soap_lookup_without_protocol_is_a_fault(live: LiveHub) -> None:
    insz = _personas(live)["regular"]
    body = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ks="urn:knooppunt:soap:1">'
        f"<soap:Body><ks:ZoekPersoon><ks:insz>{insz}</ks:insz><ks:purpose>{PURPOSE}</ks:purpose></ks:ZoekPersoon>"
        "</soap:Body></soap:Envelope>"
    )
    r = httpx.post(
        f"{live.url}/soap/berichten",
        content=body,
        headers={"Content-Type": "text/xml", "Authorization": f"Bearer {live.setup.tokens['coa']}"},
    )
    assert r.status_code == 500
    assert b"not_allowed" in r.content
    assert audit_rows(live.settings, "consulted") == []


def test_health_shows_each_used_partner_link_with_its_resilience_state(live: LiveHub) -> None:
    insz = _personas(live)["regular"]
    with live.client("agii") as c:
        assert c.post("/v1/personen/_zoek", json={"insz": insz, "purpose": PURPOSE}).status_code == 200
    health = httpx.get(f"{live.url}/health", timeout=10).json()
    magda = health["partners"]["magda"]
    assert magda["ok"] is True
    assert "breaker" in json.dumps(magda).lower() or "circuit" in json.dumps(magda).lower()
