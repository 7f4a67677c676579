"""The inbox over real HTTP: two organisations, receipt recorded when opened or downloaded."""

from __future__ import annotations

import csv
import io
import random
import re
from contextlib import closing
from datetime import date, timedelta

from lxml import etree

from hub import demo
from tests.helpers import audit_rows
from tests.portal.conftest import EDE_USER, GENT_USER, Portal, csrf_of

rng = random.Random(11)


def _send_to_ede(portal: Portal, achternaam: str = "Haddad") -> str:
    doc = demo.inburgeringsplicht(rng, "0228")
    doc["payload"]["persoon"]["achternaam"] = achternaam
    with portal.live.client("duo") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    portal.live.wait_status("duo", doc["messageId"], {"in_inbox"})
    return str(doc["messageId"])


def _delivery_ids(html: str) -> list[str]:
    return re.findall(r'href="/portaal/inbox/(\d+)"', html)


def test_a_message_waits_in_the_inbox_until_opened_then_receipt_is_audited(portal: Portal) -> None:
    message_id = _send_to_ede(portal)
    assert not [r for r in audit_rows(portal.live.settings, "delivered") if r["message_id"] == message_id]
    with closing(portal.login()) as c:
        home = c.get("/portaal/start").text
        assert '<span class="big">1</span> nieuw bericht' in home
        listing = c.get("/portaal/inbox").text
        assert "Inburgeringsplicht vastgesteld" in listing
        assert "nieuw" in listing
        [delivery] = _delivery_ids(listing)
        page = c.get(f"/portaal/inbox/{delivery}")
    assert page.status_code == 200
    assert "Persoon › achternaam" in page.text
    assert "Haddad" in page.text
    assert "<Envelope" not in page.text  # readable, not raw XML
    assert page.headers["cache-control"] == "no-store"
    status = portal.live.wait_status("duo", message_id, {"delivered"})
    assert status["deliveries"][0]["receiver"] == "gemeente-ede"
    [receipt] = [r for r in audit_rows(portal.live.settings, "delivered") if r["message_id"] == message_id]
    assert receipt["actor"] == f"portal:gemeente-ede:{EDE_USER}"
    assert receipt["detail"]["how"] == "opened"
    assert receipt["subject_hash"]


def test_download_selection_as_csv_and_xml_neutralises_formulas(portal: Portal) -> None:
    first = _send_to_ede(portal, '=HYPERLINK("http://kwaad.example")')
    second = _send_to_ede(portal, "@SUM(1+1)")
    with closing(portal.login()) as c:
        listing = c.get("/portaal/inbox").text
        ids = _delivery_ids(listing)
        assert len(ids) == 2
        token = csrf_of(listing)
        as_csv = c.post("/portaal/inbox", data={"csrf": token, "selectie": ids, "actie": "csv"})
        as_xml = c.post("/portaal/inbox", data={"csrf": token, "selectie": ids, "actie": "xml"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig")), delimiter=";"))
    header = rows[0]
    names = {row[header.index("persoon.achternaam")] for row in rows[1:]}
    assert names == {'\'=HYPERLINK("http://kwaad.example")', "'@SUM(1+1)"}
    assert {row[0] for row in rows[1:]} == {first, second}
    batch = etree.fromstring(as_xml.content)
    envelopes = batch.findall("{urn:knooppunt:envelope:1}Envelope")
    assert len(envelopes) == 2
    for message_id in (first, second):
        portal.live.wait_status("duo", message_id, {"delivered"})
    hows = {r["detail"]["how"] for r in audit_rows(portal.live.settings, "delivered")}
    assert hows == {"downloaded"}


def test_mark_handled_and_filter_by_type_and_date(portal: Portal) -> None:
    _send_to_ede(portal)
    with closing(portal.login()) as c:
        listing = c.get("/portaal/inbox").text
        [delivery] = _delivery_ids(listing)
        done = c.post("/portaal/inbox", data={"csrf": csrf_of(listing), "selectie": delivery, "actie": "afgehandeld"})
        assert "als afgehandeld gemarkeerd" in done.text
        assert "afgehandeld</span>" in done.text
        assert "0 nog niet afgehandeld" in c.get("/portaal/start").text
        assert _delivery_ids(c.get("/portaal/inbox", params={"type": "klantprofiel"}).text) == []
        assert _delivery_ids(c.get("/portaal/inbox", params={"type": "inburgeringsplicht"}).text) == [delivery]
        tomorrow = (date.today() + timedelta(days=1)).isoformat()
        assert _delivery_ids(c.get("/portaal/inbox", params={"van": tomorrow}).text) == []
        today = date.today().isoformat()
        assert _delivery_ids(c.get("/portaal/inbox", params={"van": today, "tot": today}).text) == [delivery]


def test_another_organisation_sees_nothing_of_it(portal: Portal) -> None:
    message_id = _send_to_ede(portal)
    with closing(portal.login()) as ede:
        [delivery] = _delivery_ids(ede.get("/portaal/inbox").text)
    with closing(portal.login(GENT_USER)) as gent:
        assert '<span class="big">0</span> nieuwe berichten' in gent.get("/portaal/start").text
        listing = gent.get("/portaal/inbox").text
        assert _delivery_ids(listing) == []
        assert gent.get(f"/portaal/inbox/{delivery}").status_code == 404
        assert gent.get(f"/portaal/inbox/{delivery}/download?formaat=xml").status_code == 404
        stolen = gent.post("/portaal/inbox", data={"csrf": csrf_of(listing), "selectie": delivery, "actie": "csv"})
        assert "Kies eerst een of meer berichten" in stolen.text
        assert "Haddad" not in stolen.text
    # nothing was recorded as received by the wrong organisation
    assert not [r for r in audit_rows(portal.live.settings, "delivered") if r["message_id"] == message_id]


def test_uploads_of_one_organisation_are_invisible_to_another(portal: Portal) -> None:
    with closing(portal.login()) as ede:
        example = ede.get("/portaal/voorbeelden/pip.csv").content
        form = ede.get("/portaal/versturen")
        r = ede.post(
            "/portaal/versturen",
            data={"csrf": csrf_of(form.text), "berichttype": "pip"},
            files={"bestand": ("ede.csv", example, "text/csv")},
        )
        upload_path = r.url.path
    with closing(portal.login(GENT_USER)) as gent:
        assert "ede.csv" not in gent.get("/portaal/uploads").text
        assert gent.get(upload_path).status_code == 404
        assert gent.get(upload_path + "/rapport.csv").status_code == 404
        # Gent may not send a PIP at all: no template for it
        assert gent.get("/portaal/sjablonen/pip.csv").status_code == 404
