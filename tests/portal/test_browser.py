"""A new user of a small municipality, in Debian's Chromium, from login to download.

Saves a screenshot of every page in docs/portal/ (shown in docs/portal.md).
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from hub import demo
from hub.settings import ROOT
from tests.portal.conftest import EDE_USER, PASSWORD, Portal, wait_received

SHOTS = ROOT / "docs" / "portal"
rng = random.Random(2026)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def menu(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Hoofdmenu").get_by_role("link", name=name).click()


def _rows() -> list[dict[str, str]]:
    good = {
        "persoon.identificatie.bsn": demo.make_bsn(rng),
        "persoon.achternaam": "Tesfamariam",
        "gemeentecode": "0228",
        "vastgesteldOp": "02-03-2026",  # as Excel writes a Dutch date
        "leerroute": "B1",
        "financieleOntzorging": "ja",
    }
    good2 = {
        **good,
        "persoon.identificatie.bsn": demo.make_bsn(rng),
        "persoon.achternaam": "Kovalenko",
        "leerroute": "Z",
    }
    bad_bsn = {**good, "persoon.identificatie.bsn": "123456789", "persoon.achternaam": "Rahimi"}
    no_route = {
        **good,
        "persoon.identificatie.bsn": demo.make_bsn(rng),
        "persoon.achternaam": "Ahmadi",
        "leerroute": "",
    }
    return [good, bad_bsn, good2, no_route]


def _write(rows: list[dict[str, str]], header: list[str], path: Path) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@pytest.mark.browser
def test_new_user_logs_in_uploads_fixes_and_downloads(portal: Portal, browser: Browser, tmp_path: Path) -> None:
    # DUO has already told Ede about a new inburgeringsplichtige
    doc = demo.inburgeringsplicht(rng, "0228")
    with portal.live.client("duo") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    portal.live.wait_status("duo", doc["messageId"], {"in_inbox"})

    context = browser.new_context(base_url=portal.url, accept_downloads=True, locale="nl-NL")
    page = context.new_page()
    try:
        # log in, by keyboard: the first Tab reaches the skip link
        page.goto("/portaal/")
        expect(page).to_have_url(f"{portal.url}/portaal/inloggen")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Naar de inhoud")).to_be_focused()
        shot(page, "01-inloggen")
        page.get_by_label("Gebruikersnaam (e-mailadres)").fill(EDE_USER)
        page.get_by_label("Wachtwoord").fill(PASSWORD)
        page.get_by_label("Wachtwoord").press("Enter")
        expect(page.get_by_role("heading", name="Welkom, Els de Vries")).to_be_visible()
        expect(page.locator(".card").first).to_contain_text("1 nieuw bericht")
        shot(page, "02-start")

        # download the template of the PIP
        menu(page, "Versturen")
        expect(page.get_by_role("heading", name="Berichten versturen")).to_be_visible()
        page.locator("summary", has_text="Kolommen van Persoonlijk plan").click()
        shot(page, "03-versturen")
        with page.expect_download() as download:
            page.get_by_role("link", name="Sjabloon pip.csv").click()
        template = Path(download.value.path()).read_text(encoding="utf-8-sig")
        header = next(csv.reader(io.StringIO(template), delimiter=";"))
        assert "persoon.identificatie.bsn" in header

        # upload a file with two good and two bad rows; read the report
        page.get_by_label("Berichttype (bij een CSV-bestand)").select_option("pip")
        rows = _rows()
        page.get_by_label("Bestand (CSV of XML").set_input_files(_write(rows, header, tmp_path / "pip-maart.csv"))
        page.get_by_role("button", name="Uploaden en versturen").click()
        expect(page.get_by_role("heading", name="Upload: pip-maart.csv")).to_be_visible()
        summary = page.get_by_role("status")
        expect(summary).to_contain_text("2 verstuurd")
        expect(summary).to_contain_text("2 niet verstuurd")
        report = page.locator("table.report")
        expect(report).to_contain_text("voldoet niet aan de 11-proef")
        expect(report.locator("tr", has_text="leerroute")).to_contain_text("verplicht veld is leeg")
        shot(page, "04-rapport")

        # the good rows arrived at DUO's (simulated) system
        got = wait_received(portal.live, "duo", 2)
        assert sorted(m["message"]["payload"]["persoon"]["achternaam"] for m in got["messages"]) == [
            "Kovalenko",
            "Tesfamariam",
        ]

        # fix the two flagged rows and upload the whole file again: only they are sent
        rows[1]["persoon.identificatie.bsn"] = demo.make_bsn(rng)
        rows[3]["leerroute"] = "ONDERWIJS"
        menu(page, "Versturen")
        page.get_by_label("Berichttype (bij een CSV-bestand)").select_option("pip")
        page.get_by_label("Bestand (CSV of XML").set_input_files(_write(rows, header, tmp_path / "pip-maart.csv"))
        page.get_by_role("button", name="Uploaden en versturen").click()
        summary = page.get_by_role("status")
        expect(summary).to_contain_text("2 verstuurd")
        expect(summary).to_contain_text("2 al eerder verstuurd")
        expect(summary).to_contain_text("0 niet verstuurd")
        expect(page.locator("table.report")).to_have_count(0)
        shot(page, "05-rapport-hersteld")
        got = wait_received(portal.live, "duo", 4)
        assert got["count"] == 4
        assert got["duplicates"] == 0

        # the uploads history
        menu(page, "Mijn uploads")
        history = page.locator("tbody tr")
        expect(history).to_have_count(2)
        expect(history.nth(0)).not_to_contain_text("met fouten")
        expect(history.nth(1)).to_contain_text("klaar, met fouten")
        shot(page, "06-uploads")

        # the inbox: open the message, then download it
        menu(page, "Inbox")
        expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
        expect(page.locator("tbody tr")).to_have_count(1)
        shot(page, "07-inbox")
        page.locator("tbody tr a").first.click()
        expect(page.get_by_role("heading", name="Inburgeringsplicht vastgesteld")).to_be_visible()
        expect(page.locator("table.fields")).to_contain_text(doc["payload"]["persoon"]["achternaam"])
        shot(page, "08-bericht")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download als CSV").click()
        exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
        assert doc["messageId"] in exported
        status = portal.live.wait_status("duo", doc["messageId"], {"delivered"})
        assert status["deliveries"][0]["deliveredAt"]

        # mark it handled, back in the inbox
        page.get_by_role("button", name="Markeer als afgehandeld").click()
        expect(page.get_by_role("status")).to_contain_text("afgehandeld")
        expect(page.locator("tbody tr").first).to_contain_text("afgehandeld")
    finally:
        context.close()
