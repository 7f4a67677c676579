"""CSV columns and examples derived from the info model, for every type a protocol lets someone send."""

from __future__ import annotations

import csv
import io

import pytest

from hub.infomodel import InfoModel
from hub.portal.columns import build_payload, column_of, columns_for, model_example_rows, normalise
from hub.portal.inbox import safe_cell, write_csv
from hub.protocols import ProtocolBook
from hub.settings import ROOT

MODEL = InfoModel(ROOT / "schemas")
BOOK = ProtocolBook.load(ROOT / "protocols")
CASES = [
    (protocol.id, mtype.name, mtype.version)
    for protocol in BOOK.all()
    for mtype in MODEL.types()
    if mtype.name in protocol.message_types
]


@pytest.mark.parametrize(("protocol_id", "type_name", "version"), CASES)
def test_the_example_of_every_sendable_type_is_valid(protocol_id: str, type_name: str, version: str) -> None:
    protocol = BOOK.get(protocol_id)
    assert protocol is not None
    mtype = MODEL.get(type_name, version)
    columns = columns_for(MODEL, mtype, protocol.fields)
    assert columns, "no columns: the protocol's fields match nothing in the XSD"
    for codes in (("0228",), ("44021",), ()):
        rows = model_example_rows(MODEL, mtype, columns, codes=codes)
        assert rows, "no example rows"
        for row in rows:
            MODEL.validate_payload(mtype, build_payload(mtype, columns, row))


def test_repeating_fields_get_numbered_columns_and_xpaths_map_back() -> None:
    mtype = MODEL.get("klantprofiel", "1.0")
    columns = columns_for(MODEL, mtype)
    names = [c.name for c in columns]
    assert "persoon.nationaliteit.1" in names
    assert "opleiding.3.jaren" in names
    assert column_of("/Klantprofiel/opleiding[2]/land", columns) == "opleiding.2.land"
    assert column_of("/Klantprofiel/persoon/nationaliteit", columns) == "persoon.nationaliteit.1"
    assert column_of("/Klantprofiel/persoon/identificatie/bsn", columns) == "persoon.identificatie.bsn"


def test_spreadsheet_values_are_normalised() -> None:
    columns = {c.name: c for c in columns_for(MODEL, MODEL.get("pip", "1.0"))}
    assert normalise(columns["vastgesteldOp"], " 5-3-2026 ") == "2026-03-05"
    assert normalise(columns["financieleOntzorging"], "Ja") == "true"
    assert normalise(columns["financieleOntzorging"], "nee") == "false"
    assert normalise(columns["persoon.identificatie.bsn"], "12345672") == "012345672"
    assert normalise(columns["leerroute"], "B1") == "B1"


@pytest.mark.parametrize("dangerous", ["=1+1", "+31", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(dangerous: str) -> None:
    assert safe_cell(dangerous) == "'" + dangerous
    text = write_csv([dangerous], [[dangerous]]).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows == [["'" + dangerous], ["'" + dangerous]]


def test_ordinary_cells_are_left_alone() -> None:
    assert safe_cell("Haddad") == "Haddad"
    assert safe_cell(None) == ""
    assert safe_cell(12) == "12"
