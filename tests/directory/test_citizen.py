"""The inburgeraar's own view: he sees his own trajectory and every exchange about him, and
nothing about anybody else."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hub.errors import ConfigurationError
from hub.identity import provider_for
from hub.settings import Settings
from tests.directory.conftest import Plateau3, insz, persoonsmutatie, subject, trajectmelding
from tests.helpers import audit_rows


@contextmanager
def _login(p3: Plateau3, number: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=p3.live.url, timeout=10, follow_redirects=True) as browser:
        page = browser.get("/mijn-dossier")
        assert page.status_code == 200
        assert "Aanmelden" in page.text
        state = re.search(r'name="state" value="([^"]+)"', page.text)
        assert state is not None
        kind = "INSZ" if len(number) == 11 else "BSN"
        answer = browser.post(
            "/mijn-dossier/aanmelden/ontwikkeling", data={"state": state.group(1), "type": kind, "id": number}
        )
        assert answer.status_code == 200
        assert "Mijn traject" in answer.text
        yield browser


def test_a_person_sees_his_own_flows_and_no_one_elses(p3: Plateau3) -> None:
    amina, other = insz(), insz()
    for person in (amina, other):
        assert p3.register("stad-gent", subject(person), "woongemeente").status_code == 201
    p3.register("agii", subject(amina), "trajectbegeleiding")
    contract = trajectmelding(amina, "CONTRACT", omschrijving="Inburgeringscontract ondertekend")
    attest = trajectmelding(amina, "ATTEST", omschrijving="Attest maatschappelijke oriëntatie")
    secret = trajectmelding(other, "CURSUS_START", omschrijving="Cursus van iemand anders")
    for doc in (contract, attest, secret):
        p3.send("agii", doc)
        p3.wait_delivered("agii", doc["messageId"])
    p3.send("rijksregister", persoonsmutatie(amina, "VERHUIZING", nieuweGemeentecode="11002"))

    with _login(p3, amina) as browser:
        page = browser.get("/mijn-dossier")
        api = browser.get("/v1/mijn-dossier")
    html = page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store"
    # his trajectory across partners, in plain Dutch
    assert "U ondertekende uw inburgeringscontract" in html
    assert "U behaalde uw inburgeringsattest" in html
    assert "Het rijksregister meldde uw verhuizing" in html
    # who follows him, and the handover
    assert "Stad Antwerpen" in html
    assert "volgt uw dossier niet langer op als uw gemeente" in html
    # who received what, and why (the protocol's purpose and legal basis)
    assert "Stad Gent" in html
    assert "ontving een bericht over u van Agentschap Integratie en Inburgering" in html
    assert "Wie een inburgeraar opvolgt, weet het wanneer hij verhuist" in html
    assert "Decreet van 7 juni 2013" in html
    # nothing about the other person, and never a number
    assert "Cursus van iemand anders" not in html
    assert amina not in html
    assert other not in html

    dossier = api.json()
    assert [s["wat"] for s in dossier["traject"]][:2] == [
        "U ondertekende uw inburgeringscontract",
        "U behaalde uw inburgeringsattest",
    ]
    assert "Cursus van iemand anders" not in api.text
    assert {v["wie"] for v in dossier["volgers"]} == {
        "Stad Gent",
        "Agentschap Integratie en Inburgering",
        "Stad Antwerpen",
    }
    viewed = audit_rows(p3.live.settings, "self_viewed")
    assert len(viewed) == 3  # after login, the page, the API
    assert viewed[0]["actor"] == "burger"

    # the other person sees his own step, not Amina's
    with _login(p3, other) as browser:
        theirs = browser.get("/v1/mijn-dossier").json()
    assert [s["details"] for s in theirs["traject"]] == ["Cursus van iemand anders"]
    assert {v["wie"] for v in theirs["volgers"]} == {"Stad Gent"}


def test_the_dossier_spans_a_bis_number_and_the_number_that_replaced_it(p3: Plateau3) -> None:
    bis, national = insz(bis=True), insz()
    p3.register("agii", subject(bis), "trajectbegeleiding")
    p3.register("stad-gent", subject(bis), "woongemeente")
    p3.send("agii", trajectmelding(bis, "INSCHRIJVING", omschrijving="Eerste inschrijving"))
    p3.send("rijksregister", persoonsmutatie(bis, "NIEUW_INSZ", nieuweIdentificatie={"insz": national}))
    p3.send("agii", trajectmelding(national, "ATTEST", omschrijving="Attest"))
    with _login(p3, national) as browser:
        steps = [s["wat"] for s in browser.get("/v1/mijn-dossier").json()["traject"]]
    assert steps == ["U schreef zich in", "U kreeg een nieuw identificatienummer", "U behaalde uw inburgeringsattest"]


def test_without_a_session_there_is_no_dossier(p3: Plateau3) -> None:
    with httpx.Client(base_url=p3.live.url, timeout=10) as anonymous:
        api = anonymous.get("/v1/mijn-dossier")
        assert api.status_code == 401
        assert api.headers["content-type"] == "application/problem+json"
        forged = anonymous.get("/v1/mijn-dossier", headers={"Cookie": "kp_burger=eyJ0IjoiSU5TWiJ9.00"})
        assert forged.status_code == 401
        # a login without the state cookie (login CSRF) is refused
        csrf = anonymous.post("/mijn-dossier/aanmelden/ontwikkeling", data={"state": "x", "type": "INSZ", "id": insz()})
        assert csrf.status_code == 400
        assert "kp_burger" not in csrf.cookies


def test_a_wrong_number_is_explained_and_the_cookie_never_holds_the_number(p3: Plateau3) -> None:
    person = insz()
    with httpx.Client(base_url=p3.live.url, timeout=10) as browser:
        page = browser.get("/mijn-dossier")
        state = re.search(r'name="state" value="([^"]+)"', page.text)
        assert state is not None
        wrong = browser.post(
            "/mijn-dossier/aanmelden/ontwikkeling", data={"state": state.group(1), "type": "INSZ", "id": "12345678901"}
        )
        assert wrong.status_code == 400
        assert "Aanmelden lukte niet" in wrong.text
        state = re.search(r'name="state" value="([^"]+)"', wrong.text)
        assert state is not None
        ok = browser.post(
            "/mijn-dossier/aanmelden/ontwikkeling", data={"state": state.group(1), "type": "INSZ", "id": person}
        )
        assert ok.status_code == 303
        cookie = ok.cookies["kp_burger"]
        assert person not in cookie
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert "samesite=lax" in ok.headers["set-cookie"].lower()


def test_the_development_login_never_runs_in_production(tmp_path: Path) -> None:
    keys = {
        "payload_key": base64.b64encode(os.urandom(32)).decode(),
        "audit_hmac_key": base64.b64encode(os.urandom(32)).decode(),
        "audit_signing_key": base64.b64encode(os.urandom(32)).decode(),
        "database_url": f"sqlite:///{tmp_path / 'p.db'}",
    }
    assert provider_for(Settings(env="production", **keys)) is None  # "auto" is off in production
    with pytest.raises(ConfigurationError):
        Settings(env="production", citizen_login="development", **keys)
    with pytest.raises(ConfigurationError):
        Settings(env="test", citizen_login="oidc", **keys)  # oidc without a provider configured
