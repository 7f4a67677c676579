"""Property-based tests of every parser: identifiers, the envelope (XML and JSON), the SOAP
request and the log masker. Bounded example counts; a failure prints a reproducible example."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from hub import demo
from hub.errors import HubError
from hub.identifiers import IdentifierError, parse_bsn, parse_insz, parse_kbo, parse_oin, parse_subject
from hub.infomodel import InfoModel
from hub.logs import mask
from hub.service import Hub
from tests.conftest import LiveHub, make_settings
from tests.helpers import xml_message
from tests.security.corpus import soap_wrap

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIVE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub core (not started): parsing needs only the info model."""
    hub = Hub(make_settings(tmp_path_factory.mktemp("fuzz"), insz_test_numbers=True))
    yield hub
    hub.engine.dispose()
    hub.writer.engine.dispose()


# -- identifiers -------------------------------------------------------------------------------

valid_insz = st.builds(
    lambda born, bis, seed: demo.make_insz(random.Random(seed), born=born, bis=bis),
    st.dates(date(1920, 1, 1), date(2025, 12, 31)),
    st.booleans(),
    st.integers(0, 2**32),
)
valid_bsn = st.integers(0, 2**32).map(lambda seed: demo.make_bsn(random.Random(seed)))


@FUZZ
@given(st.text(max_size=40))
def test_identifier_parsers_accept_or_give_a_reason(raw: str) -> None:
    for parse in (parse_insz, parse_bsn, parse_kbo, parse_oin):
        reason = "accepted"
        try:
            parse(raw)
        except IdentifierError as exc:
            reason = str(exc)
        assert reason  # accepted, or refused with a reason a person can act on


@FUZZ
@given(valid_insz)
def test_every_well_formed_insz_parses_and_round_trips(insz: str) -> None:
    assert parse_insz(insz).value == insz
    formatted = f"{insz[:2]}.{insz[2:4]}.{insz[4:6]}-{insz[6:9]}.{insz[9:]}"
    assert parse_insz(formatted).value == insz


@FUZZ
@given(valid_insz, st.integers(0, 10), st.integers(1, 9))
def test_a_changed_digit_breaks_the_insz_checksum(insz: str, position: int, delta: int) -> None:
    digits = list(insz)
    digits[position] = str((int(digits[position]) + delta) % 10)
    changed = "".join(digits)
    body, check = changed[:9], int(changed[9:])
    # a changed number may happen to be valid under the other century's rule (the "2" prefix)
    if check in (97 - int(body) % 97, 97 - int("2" + body) % 97):
        return
    with pytest.raises(IdentifierError):
        parse_insz(changed)


@FUZZ
@given(valid_bsn)
def test_every_11_proef_bsn_parses(bsn: str) -> None:
    assert parse_subject("BSN", bsn).value == bsn  # type: ignore[union-attr]


# -- the envelope -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
KEYS = ["messageId", "type", "version", "sender", "receivers", "subject", "purpose", "payload", "createdAt"]


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with some fields replaced by arbitrary JSON values."""
    doc = demo.inburgeringsplicht(random.Random(draw(st.integers(0, 1000))))
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        doc[key] = draw(json_values)
    return doc


def _only_hub_errors(parse: Any, body: bytes) -> None:
    status = 200
    try:
        parse(body)
    except HubError as exc:
        status = exc.status
    assert 200 <= status < 500, status


@FUZZ
@given(st.binary(max_size=2000))
def test_json_parser_on_arbitrary_bytes(core: Hub, body: bytes) -> None:
    _only_hub_errors(core.parse_json, body)


@FUZZ
@given(json_values)
def test_json_parser_on_arbitrary_json(core: Hub, value: Any) -> None:
    _only_hub_errors(core.parse_json, json.dumps(value).encode())


@FUZZ
@given(mutated_documents())
def test_json_parser_on_messages_with_wrong_fields(core: Hub, doc: dict[str, Any]) -> None:
    _only_hub_errors(core.parse_json, json.dumps(doc).encode())


@FUZZ
@given(st.binary(max_size=2000))
def test_xml_parser_on_arbitrary_bytes(core: Hub, body: bytes) -> None:
    _only_hub_errors(core.parse_xml, body)


def _valid_xml(seed: int) -> bytes:
    doc = demo.inburgeringsplicht(random.Random(seed))
    return xml_message(doc, InfoModel(Path(__file__).resolve().parents[2] / "schemas"))


VALID_XML = [_valid_xml(seed) for seed in range(3)]


@st.composite
def mutated_xml(draw: st.DrawFn) -> bytes:
    """A valid envelope with bytes flipped, cut or inserted: near-misses reach deeper code."""
    body = bytearray(draw(st.sampled_from(VALID_XML)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            body[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del body[at : at + draw(st.integers(1, 40))]
        else:
            body[at:at] = draw(st.sampled_from([b"<", b">", b"&", b"<!DOCTYPE x>", b"<a>", b"\x00", b"&#0;", b"]]>"]))
    return bytes(body)


@FUZZ
@given(mutated_xml())
def test_xml_parser_on_near_miss_envelopes(core: Hub, body: bytes) -> None:
    _only_hub_errors(core.parse_xml, body)


@FUZZ
@given(st.sampled_from(VALID_XML))
def test_valid_envelopes_still_parse(core: Hub, body: bytes) -> None:
    message = core.parse_xml(body)
    assert message.envelope.type == "inburgeringsplicht"


# -- SOAP requests against a live hub -----------------------------------------------------


def _soap_refused(status: int, content: bytes) -> bool:
    if 400 <= status < 500:
        return True
    if status != 500:
        return False
    fault = etree.fromstring(content).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    return fault is not None and fault.findtext("faultcode") == "soap:Client"


@LIVE
@given(mutated_xml())
def test_soap_endpoint_answers_client_faults_never_server_errors(shared_hub: LiveHub, body: bytes) -> None:
    with shared_hub.client("duo") as client:
        response = client.post("/soap/berichten", content=soap_wrap(body), headers={"Content-Type": "text/xml"})
    assert response.status_code == 200 or _soap_refused(response.status_code, response.content), response.text


@LIVE
@given(st.binary(max_size=500))
def test_rest_endpoint_never_answers_5xx(shared_hub: LiveHub, body: bytes) -> None:
    with shared_hub.client("duo") as client:
        for content_type in ("application/json", "application/xml"):
            response = client.post("/v1/berichten", content=body, headers={"Content-Type": content_type})
            assert 400 <= response.status_code < 500, response.text
            assert response.headers["content-type"] == "application/problem+json"


# -- the log masker --------------------------------------------------------------------------


@FUZZ
@given(valid_insz | valid_bsn, st.text(max_size=20), st.text(max_size=20))
def test_national_numbers_are_masked_wherever_they_sit_in_text(number: str, before: str, after: str) -> None:
    # a digit right next to the number makes it a different, longer number: not a national number
    before = before.rstrip("0123456789")
    after = after.lstrip("0123456789")
    assert number not in mask(before + number + after)


def test_an_inbox_cursor_beyond_64_bits_is_a_400_not_a_crash(shared_hub: LiveHub) -> None:
    # found by schemathesis: SQLite raised OverflowError, the hub answered 500
    with shared_hub.client("duo") as client:
        response = client.get("/v1/inbox", params={"after": str(2**70)})
    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["name"] == "after"


@pytest.mark.parametrize("query", ["van=0492-10", "van=9999-12&tot=0001-01", "tot=0000-00", "van=2026-13"])
def test_report_periods_far_off_are_a_400_not_a_crash(shared_hub: LiveHub, query: str) -> None:
    # found by schemathesis: year 1 formatted as "1-01" broke the month arithmetic (500)
    response = httpx.get(f"{shared_hub.url}/v1/rapportage?dimensie=leeftijd&{query}", timeout=10)
    assert 200 <= response.status_code < 500, response.text
