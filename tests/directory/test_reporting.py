"""Aggregated reporting: no published cell under 5, and no suppressed cell that can be recomputed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from hub.reporting import K, safe_csv
from tests.directory.conftest import Plateau3, insz, trajectmelding


def _send_people(p3: Plateau3, sexes: dict[str, int]) -> None:
    for sex, n in sexes.items():
        for i in range(n):
            doc = trajectmelding(insz(), "INSCHRIJVING", postcode="9000" if i % 2 else "2000")
            doc["payload"]["persoon"]["geslacht"] = sex
            doc["payload"]["persoon"]["geboortedatum"] = f"{1960 + i * 4}-03-01"
            p3.send("agii", doc)


def test_no_aggregate_cell_under_five_and_no_cell_can_be_recomputed(p3: Plateau3) -> None:
    _send_people(p3, {"V": 9, "M": 6, "X": 2})
    month = datetime.now(UTC).strftime("%Y-%m")
    with p3.client() as c:
        for dimension in ("geslacht", "leeftijd", "regio"):
            body = c.get("/v1/rapportage", params={"dimensie": dimension, "van": month, "tot": month}).json()
            assert body["k"] == K
            cells = [x for x in body["cellen"] if x["berichttype"] == "trajectmelding"]
            total = next(t for t in body["totalen"] if t["berichttype"] == "trajectmelding")
            assert total["aantal"] == 17
            published = [x["aantal"] for x in cells if not x["onderdrukt"]]
            assert all(n >= K for n in published)
            hidden = [x for x in cells if x["onderdrukt"]]
            if hidden:
                # what the total leaves for the hidden cells is never one cell, never under k
                assert len(hidden) >= 2
                assert total["aantal"] - sum(published) >= K
        sexes = {
            x["waarde"]: x["aantal"]
            for x in c.get("/v1/rapportage", params={"dimensie": "geslacht", "van": month, "tot": month}).json()[
                "cellen"
            ]
        }
    # X (2) is under k; M (6) is hidden too, or X could be recomputed from the total
    assert sexes == {"V": 9, "M": None, "X": None}


def test_csv_is_downloadable_and_formula_safe(p3: Plateau3) -> None:
    _send_people(p3, {"V": 5})
    month = datetime.now(UTC).strftime("%Y-%m")
    with p3.client() as c:
        r = c.get(
            "/v1/rapportage",
            params={"dimensie": "geslacht", "van": month, "tot": month},
            headers={"Accept": "text/csv"},
        )
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["periode", "berichttype", "geslacht", "aantal"]
    assert [month, "trajectmelding", "V", "5"] in rows
    for value in ("=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "\tx"):
        assert safe_csv(value).startswith("'")
    assert safe_csv("BE-90xx") == "BE-90xx"


def test_the_report_page_shows_a_chart_and_suppressed_totals(p3: Plateau3) -> None:
    _send_people(p3, {"V": 3})
    with p3.client() as c:
        page = c.get("/rapportage", params={"dimensie": "regio"})
        bad = c.get("/v1/rapportage", params={"van": "2020-01", "tot": "2026-12"})
    assert page.status_code == 200
    assert "<svg" in page.text
    assert "&lt;5" in page.text  # a total of 3 is not shown
    assert ">3<" not in page.text
    assert bad.status_code == 400


def test_a_message_type_filter_must_name_a_message_type(p3: Plateau3) -> None:
    """berichttype takes type names only: an empty or garbled value is a 400 naming it, not an
    empty report that looks like an answer."""
    _send_people(p3, {"V": 5})
    with p3.client() as c:
        good = c.get("/v1/rapportage", params={"berichttype": ["trajectmelding"]})
        empty = c.get("/v1/rapportage", params={"berichttype": ["trajectmelding", ""]})
        garbled = c.get("/v1/rapportage", params={"berichttype": ["Ï\x13"]})
    assert good.status_code == 200
    for bad in (empty, garbled):
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert any("berichttype" in p["name"] for p in bad.json()["invalidParams"])
