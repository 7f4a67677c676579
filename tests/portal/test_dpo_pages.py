"""The DPO's pages in the portal: sign in with a DPO token, see the integrity proof, search by
person, export; a partner token does not open them, and every search is audited."""

from __future__ import annotations

import random
import re

import httpx
from typer.testing import CliRunner

from hub import demo
from hub.cli.main import app
from tests.conftest import LiveHub
from tests.helpers import audit_rows


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m
    return m.group(1)


def _dpo(live: LiveHub) -> str:
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    out = CliRunner().invoke(
        app, ["dpo", "add", "dpo-ede", "--name", "A. Jansen", "--organisation", "Gemeente Ede"], env=env
    )
    assert out.exit_code == 0, out.output
    return out.output.strip()


def test_a_dpo_signs_in_searches_by_person_and_exports(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(random.Random(8), "0344")
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    live.wait_status("duo", doc["messageId"], {"delivered"})
    token = _dpo(live)
    with httpx.Client(base_url=live.url, follow_redirects=True, timeout=10) as browser:
        form = browser.get("/portaal/dpo")
        assert "DPO-toegangstoken" in form.text
        signed_in = browser.post("/portaal/dpo/aanmelden", data={"csrf": _csrf(form.text), "token": token})
        assert signed_in.status_code == 200
        assert "Integriteit" in signed_in.text
        found = browser.post(
            "/portaal/dpo/zoeken",
            data={"csrf": _csrf(signed_in.text), "soort": "BSN", "nummer": doc["subject"]["id"], "actie": "zoeken"},
        )
        assert found.status_code == 200, found.text
        assert "received" in found.text
        assert "delivered" in found.text
        assert doc["subject"]["id"] not in found.text
        export = browser.post(
            "/portaal/dpo/zoeken",
            data={"csrf": _csrf(found.text), "soort": "BSN", "nummer": doc["subject"]["id"], "actie": "csv"},
        )
        assert export.headers["content-type"].startswith("text/csv")
        assert "routed" in export.text
    queries = [e for e in audit_rows(live.settings, "consulted") if e["actor"] == "dpo:dpo-ede"]
    assert [q["detail"]["dpoQuery"] for q in queries] == ["search", "export"]


def test_a_partner_token_or_a_forged_form_opens_nothing(live: LiveHub) -> None:
    with httpx.Client(base_url=live.url, follow_redirects=True, timeout=10) as browser:
        form = browser.get("/portaal/dpo")
        refused = browser.post(
            "/portaal/dpo/aanmelden", data={"csrf": _csrf(form.text), "token": live.setup.tokens["duo"]}
        )
        assert refused.status_code == 401
        forged = browser.post("/portaal/dpo/aanmelden", data={"token": _dpo(live)})
        assert forged.status_code == 403
        search = browser.post("/portaal/dpo/zoeken", data={"partner": "duo", "actie": "zoeken"})
        assert "DPO-toegangstoken" in search.text  # back to the sign-in form
