"""Uploads over real HTTP: template and example from the info model, per-row report, idempotent re-upload."""

from __future__ import annotations

import csv
import io
import random
import re
import time
from contextlib import closing

from hub import demo
from hub.infomodel import InfoModel
from hub.settings import ROOT, PortalSettings, Settings
from tests.conftest import start_live_hub
from tests.helpers import audit_rows, count_messages, xml_message
from tests.portal.conftest import Portal, seed_users, upload, wait_received

rng = random.Random(7)


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))


def test_template_has_one_column_per_allowed_leaf_of_the_xsd(portal: Portal) -> None:
    with closing(portal.login()) as c:
        r = c.get("/portaal/sjablonen/pip.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    header = _rows(r.text)[0]
    assert header[:3] == ["persoon.identificatie.insz", "persoon.identificatie.bsn", "persoon.voornamen"]
    assert {"persoon.achternaam", "gemeentecode", "vastgesteldOp", "leerroute", "financieleOntzorging"} <= set(header)
    # toelichting is in the XSD but not in the nl-pip protocol: not offered
    assert "toelichting" not in header


def test_example_uploads_cleanly_and_reaches_duo(portal: Portal) -> None:
    with closing(portal.login()) as c:
        example = c.get("/portaal/voorbeelden/pip.csv").content
        r = upload(c, example, filename="voorbeeld.csv")
    assert r.status_code == 200
    assert r.url.path.startswith("/portaal/uploads/")
    assert "2</span> verstuurd" in r.text
    got = wait_received(portal.live, "duo", 2)
    assert got["count"] == 2
    payload = got["messages"][0]["message"]["payload"]
    assert payload["gemeentecode"] == "0228"
    assert {row["detail"]["channel"] for row in audit_rows(portal.live.settings, "received")} == {"portal"}


def _csv(rows: list[dict[str, str]]) -> bytes:
    header = ["persoon.identificatie.bsn", "persoon.achternaam", "gemeentecode", "vastgesteldOp", "leerroute"]
    out = io.StringIO()
    w = csv.writer(out, delimiter=";")
    w.writerow(header)
    for row in rows:
        w.writerow([row.get(h, "") for h in header])
    return out.getvalue().encode()


GOOD = {"persoon.achternaam": "Haddad", "gemeentecode": "0228", "vastgesteldOp": "2026-03-01", "leerroute": "B1"}


def test_good_and_bad_rows_report_per_row_and_only_good_rows_are_sent(portal: Portal) -> None:
    good1 = {**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng)}
    good2 = {**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng), "vastgesteldOp": "15-03-2026"}
    bad_bsn = {**GOOD, "persoon.identificatie.bsn": "123456789"}
    bad_route = {**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng), "leerroute": "C7"}
    no_name = {**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng), "persoon.achternaam": ""}
    before = count_messages(portal.live.settings)
    with closing(portal.login()) as c:
        r = upload(c, _csv([good1, bad_bsn, good2, bad_route, no_name]))
        report_csv = c.get(r.url.path + "/rapport.csv")
    assert r.status_code == 200
    lines = _rows(report_csv.text)
    assert lines[0] == ["rij", "resultaat", "veld", "wat is er mis", "berichtId"]
    assert ["3", "refused", "persoon.identificatie.bsn", "voldoet niet aan de 11-proef", ""] in lines
    assert sum(1 for line in lines[1:] if line[1] == "sent") == 2
    assert "2</span> verstuurd" in r.text
    assert "3</span> niet verstuurd" in r.text
    report = re.findall(
        r"<tr><td>(\d+)</td><td>(?:<code>([^<]*)</code>|\(hele rij\))</td><td>([^<]*)</td></tr>", r.text
    )
    by_row = {int(row): (field, reason) for row, field, reason in report}
    assert by_row[3] == ("persoon.identificatie.bsn", "voldoet niet aan de 11-proef")
    assert by_row[5][0] == "leerroute"
    assert "kies een van: B1, ONDERWIJS, Z" in by_row[5][1]
    assert by_row[6] == ("persoon.achternaam", "verplicht veld is leeg")
    assert "123456789" not in r.text  # the report names the problem, not the value
    assert count_messages(portal.live.settings) == before + 2
    got = wait_received(portal.live, "duo", 2)
    assert got["count"] == 2
    dates = sorted(m["message"]["payload"]["vastgesteldOp"] for m in got["messages"])
    assert dates == ["2026-03-01", "2026-03-15"]  # a Dutch date from Excel is understood


def test_reupload_of_the_same_or_a_fixed_file_sends_nothing_twice(portal: Portal) -> None:
    good = {**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng)}
    bad = {**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng), "leerroute": "X"}
    with closing(portal.login()) as c:
        first = upload(c, _csv([good, bad]))
        assert "1</span> verstuurd" in first.text
        again = upload(c, _csv([good, bad]))
        assert "0</span> verstuurd" in again.text
        assert "1</span> al eerder verstuurd" in again.text
        fixed = upload(c, _csv([good, {**bad, "leerroute": "Z"}]))
        assert "1</span> verstuurd" in fixed.text
        assert "1</span> al eerder verstuurd" in fixed.text
    got = wait_received(portal.live, "duo", 2)
    assert got["count"] == 2
    assert got["duplicates"] == 0


def test_xml_batch_is_accepted(portal: Portal) -> None:
    bsn = demo.make_bsn(rng)
    batch = (
        '<?xml version="1.0" encoding="UTF-8"?><batch>'
        '<Pip xmlns="urn:knooppunt:inburgering:1"><persoon><identificatie><bsn>' + bsn + "</bsn></identificatie>"
        "<achternaam>Okafor</achternaam></persoon><gemeentecode>0228</gemeentecode>"
        "<vastgesteldOp>2026-02-02</vastgesteldOp><leerroute>Z</leerroute></Pip>"
        '<Pip xmlns="urn:knooppunt:inburgering:1"><persoon><identificatie><bsn>111111111</bsn></identificatie>'
        "<achternaam>X</achternaam></persoon><gemeentecode>0228</gemeentecode>"
        "<vastgesteldOp>2026-02-02</vastgesteldOp><leerroute>Z</leerroute></Pip></batch>"
    ).encode()
    with closing(portal.login()) as c:
        # the name and content type say CSV; the content decides
        r = upload(c, batch, filename="lijst.csv", type_name="")
    assert "1</span> verstuurd" in r.text
    assert "persoon.identificatie.bsn" in r.text
    assert wait_received(portal.live, "duo", 1)["count"] == 1


def test_whole_file_problems_refuse_the_upload_with_a_clear_message(portal: Portal) -> None:
    before = count_messages(portal.live.settings)
    with closing(portal.login()) as c:
        xlsx = upload(c, b"PK\x03\x04" + b"\x00" * 100, filename="lijst.csv")
        assert "Excel" in xlsx.text
        assert "geweigerd" in xlsx.text
        unknown = upload(c, b"bsn;naam\n123;x\n")
        assert "onbekende kolom(men)" in unknown.text
        binary = upload(c, b"abc\x00def")
        assert "geen tekst" in binary.text
        history = c.get("/portaal/uploads").text
        assert history.count("geweigerd") == 3
    assert count_messages(portal.live.settings) == before


def test_row_limit_refuses_the_file_before_anything_is_sent(portal: Portal, tmp_path: object) -> None:
    limits = portal.live.settings.portal
    rows = [{**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng)} for _ in range(limits.max_upload_rows + 1)]
    before = count_messages(portal.live.settings)
    with closing(portal.login()) as c:
        r = upload(c, _csv(rows))
    assert f"meer dan {limits.max_upload_rows} rijen" in r.text
    assert count_messages(portal.live.settings) == before


def test_upload_size_limit_is_counted_while_streaming(portal: Portal) -> None:
    limit = portal.live.settings.portal.max_upload_bytes
    with closing(portal.login()) as c:
        r = upload(c, b"a;b\n" + b"x" * (limit + 100_000))
        assert r.status_code == 413
        assert "te groot" in r.text

        # without a Content-Length the body is counted as it arrives
        form = c.get("/portaal/versturen")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token
        boundary = "grens"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token.group(1)}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="bestand"; filename="a.csv"\r\n\r\n'
        ).encode()

        def chunks():  # type: ignore[no-untyped-def]
            yield head
            for _ in range(limit // 65536 + 4):
                yield b"y" * 65536
            yield f"\r\n--{boundary}--\r\n".encode()

        streamed = c.post(
            "/portaal/versturen",
            content=chunks(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert streamed.status_code == 413
    assert "te groot" in streamed.text


def test_a_large_upload_shows_progress_that_refreshes_without_javascript(settings: Settings) -> None:
    live = start_live_hub(settings.model_copy(update={"portal": PortalSettings(upload_wait_seconds=0)}))
    try:
        seed_users(live.settings)
        portal = Portal(live, "")
        rows = [{**GOOD, "persoon.identificatie.bsn": demo.make_bsn(rng)} for _ in range(300)]
        with closing(portal.login()) as c:
            first = upload(c, _csv(rows))
            assert first.url.path.startswith("/portaal/uploads/")
            assert "bezig</span>" in first.text
            assert '<meta http-equiv="refresh" content="2">' in first.text
            assert "<progress" in first.text
            deadline = time.monotonic() + 60
            page = first
            while "bezig</span>" in page.text and time.monotonic() < deadline:
                time.sleep(0.5)
                page = c.get(first.url.path)
            assert "300</span> verstuurd" in page.text
            assert 'http-equiv="refresh"' not in page.text
    finally:
        live.thread.stop()


def test_an_xml_batch_of_envelopes_keeps_their_own_ids(portal: Portal) -> None:
    model = InfoModel(ROOT / "schemas")
    doc = demo.pip(rng, "0228")
    envelope = xml_message(doc, model).decode().split("?>", 1)[-1]
    batch = f"<export>{envelope}<Envelope xmlns='urn:knooppunt:envelope:1'><header/></Envelope></export>".encode()
    with closing(portal.login()) as c:
        r = upload(c, batch, filename="export.xml", type_name="")
        assert "1</span> verstuurd" in r.text
        assert "1</span> niet verstuurd" in r.text
        again = upload(c, batch, filename="export.xml", type_name="")
        assert "1</span> al eerder verstuurd" in again.text
    got = wait_received(portal.live, "duo", 1)
    assert [m["messageId"] for m in got["messages"]] == [doc["messageId"]]
