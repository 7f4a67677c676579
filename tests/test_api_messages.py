"""One message from partner to partner over real HTTP, and every kind of bad input."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from hub import demo
from hub.infomodel import InfoModel
from hub.settings import ROOT
from tests.conftest import LiveHub
from tests.helpers import audit_rows, count_messages, xml_message

rng = random.Random(20261124)


def test_json_message_is_accepted_delivered_and_audited(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng, "0344")
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["messageId"] == doc["messageId"]
    assert body["receivers"] == ["gemeente-utrecht"]
    assert r.headers["location"] == f"/v1/berichten/{doc['messageId']}"
    assert r.headers["api-version"] == "1.0.0"

    status = live.wait_status("duo", doc["messageId"], {"delivered"})
    assert status["deliveries"][0]["receiver"] == "gemeente-utrecht"
    got = live.received("gemeente-utrecht")
    [entry] = [m for m in got["messages"] if m["messageId"] == doc["messageId"]]
    assert entry["message"]["payload"]["persoon"]["identificatie"]["bsn"] == doc["subject"]["id"]
    assert entry["message"]["sender"] == "duo"

    events = [e["event"] for e in audit_rows(live.settings) if e["message_id"] == doc["messageId"]]
    assert events == ["received", "routed", "delivered"]
    # the audit log keeps a keyed hash of the BSN, never the number itself
    for row in audit_rows(live.settings):
        assert doc["subject"]["id"] not in str(row)


def test_xml_message_is_accepted_and_delivered(live: LiveHub) -> None:
    doc = demo.aanmelding(rng, "44021")
    body = xml_message(doc, InfoModel(ROOT / "schemas"))
    with live.client("agii") as c:
        r = c.post("/v1/berichten", content=body, headers={"Content-Type": "application/xml"})
    assert r.status_code == 202, r.text
    live.wait_status("agii", doc["messageId"], {"delivered"})
    [entry] = [m for m in live.received("stad-gent")["messages"] if m["messageId"] == doc["messageId"]]
    payload = entry["message"]["payload"]
    # be-aanmelding lets the local government see everything but the language level
    assert payload["nisCode"] == "44021"
    assert "taalniveau" not in payload
    assert payload["persoon"]["identificatie"]["insz"] == doc["subject"]["id"]


def test_resending_the_same_id_is_acknowledged_again_and_stored_once(live: LiveHub) -> None:
    doc = demo.klantprofiel(rng, "0344")
    with live.client("coa") as c:
        first = c.post("/v1/berichten", json=doc)
        live.wait_status("coa", doc["messageId"], {"delivered"})
        second = c.post("/v1/berichten", json=doc)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert count_messages(live.settings) == 1
    received = live.received("gemeente-utrecht")
    assert [m["messageId"] for m in received["messages"]].count(doc["messageId"]) == 1
    assert received["duplicates"] == 0


def test_same_id_with_other_content_is_a_conflict(live: LiveHub) -> None:
    doc = demo.klantprofiel(rng, "0344")
    with live.client("coa") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
        doc["payload"]["ambitie"] = "Iets anders"
        r = c.post("/v1/berichten", json=doc)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert count_messages(live.settings) == 1


def test_status_is_for_sender_and_receiver_only(live: LiveHub) -> None:
    doc = demo.pip(rng, "0344")
    with live.client("gemeente-utrecht") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    live.wait_status("gemeente-utrecht", doc["messageId"], {"delivered"})
    with live.client("duo") as c:
        assert c.get(f"/v1/berichten/{doc['messageId']}").status_code == 200
    with live.client("coa") as c:
        r = c.get(f"/v1/berichten/{doc['messageId']}")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


def test_inbox_shows_only_the_callers_messages(live: LiveHub) -> None:
    to_ede = demo.inburgeringsplicht(rng, "0228")
    to_utrecht = demo.inburgeringsplicht(rng, "0344")
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=to_ede).status_code == 202
        assert c.post("/v1/berichten", json=to_utrecht).status_code == 202
    # plateau 1: the message waits in Ede's inbox; fetching it records the receipt
    live.wait_status("duo", to_ede["messageId"], {"in_inbox"})
    with live.client("gemeente-ede") as c:
        inbox = c.get("/v1/inbox").json()
    ids = [m["messageId"] for m in inbox["items"]]
    assert ids == [to_ede["messageId"]]
    item = inbox["items"][0]
    assert item["subject"] == to_ede["subject"]
    assert item["payload"]["gemeentecode"] == "0228"
    with live.client("gemeente-ede") as c:
        later = c.get("/v1/inbox", params={"after": item["cursor"]}).json()
    assert later["items"] == []
    status = live.wait_status("duo", to_ede["messageId"], {"delivered"})
    assert status["deliveries"][0]["deliveredAt"] is not None
    delivered = [r for r in audit_rows(live.settings, "delivered") if r["message_id"] == to_ede["messageId"]]
    assert [(r["receiver"], r["actor"]) for r in delivered] == [("gemeente-ede", "api:gemeente-ede")]


def test_a_single_valued_query_parameter_given_twice_is_refused_by_name(live: LiveHub) -> None:
    """FastAPI would take the last value; the hub refuses the ambiguity and names the parameter.
    A list parameter (the reports' berichttype) may repeat."""
    to_ede = demo.inburgeringsplicht(rng, "0228")
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=to_ede).status_code == 202
    live.wait_status("duo", to_ede["messageId"], {"in_inbox"})
    with live.client("gemeente-ede") as c:
        twice = c.get("/v1/inbox", params=[("type", to_ede["type"]), ("limit", "5"), ("type", "null")])
        both = c.get("/v1/inbox?after=0&after=1&limit=1&limit=2")
    problem = _problem(twice, 400, "invalid_parameters")
    assert problem["invalidParams"] == [
        {"name": "type", "reason": "type mag maar één keer voorkomen, kwam 2 keer voor", "code": "repeated"}
    ]
    assert [p["name"] for p in _problem(both, 400, "invalid_parameters")["invalidParams"]] == ["after", "limit"]  # type: ignore[index]
    # a refused request fetched nothing: the message still waits, its receipt not recorded
    with live.client("duo") as c:
        deliveries = c.get(f"/v1/berichten/{to_ede['messageId']}").json()["deliveries"]
    assert [d["status"] for d in deliveries] == ["in_inbox"]
    with live.client("gemeente-ede") as c:
        once = c.get("/v1/inbox", params={"type": to_ede["type"]})
        listed = c.get("/v1/rapportage", params=[("berichttype", "trajectmelding"), ("berichttype", "pip")])
    assert [m["messageId"] for m in once.json()["items"]] == [to_ede["messageId"]]
    assert listed.status_code == 200, listed.text


def test_openapi_is_published_under_v1(live: LiveHub) -> None:
    with live.client() as c:
        r = c.get("/v1/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["servers"][0]["url"].endswith("/v1")
    assert {"/berichten", "/berichten/{message_id}", "/inbox"} <= set(spec["paths"])
    assert r.headers["api-version"] == "1.0.0"


# -- bad input: a specific 4xx problem, nothing stored, refused audited when a partner is known --


def _problem(r: object, status: int, code: str) -> dict[str, object]:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = r.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


def _refused_codes(live: LiveHub) -> list[object]:
    return [e["detail"]["code"] for e in audit_rows(live.settings, "refused")]


def test_missing_token_gives_401_and_nothing_is_stored(live: LiveHub) -> None:
    with live.client() as c:
        r = c.post("/v1/berichten", json=demo.pip(rng))
    _problem(r, 401, "authentication_failed")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert count_messages(live.settings) == 0


def test_wrong_token_gives_401(live: LiveHub) -> None:
    with live.client() as c:
        r = c.post("/v1/berichten", json=demo.pip(rng), headers={"Authorization": "Bearer kpt_not-a-token"})
    _problem(r, 401, "authentication_failed")
    assert count_messages(live.settings) == 0


def test_malformed_json_gives_400(live: LiveHub) -> None:
    with live.client("duo") as c:
        r = c.post("/v1/berichten", content=b'{"messageId": ', headers={"Content-Type": "application/json"})
    _problem(r, 400, "malformed_input")
    assert count_messages(live.settings) == 0
    assert _refused_codes(live) == ["malformed_input"]


def test_malformed_xml_gives_400(live: LiveHub) -> None:
    with live.client("duo") as c:
        r = c.post("/v1/berichten", content=b"<Envelope><header>", headers={"Content-Type": "application/xml"})
    _problem(r, 400, "malformed_input")
    assert count_messages(live.settings) == 0


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Envelope xmlns="urn:knooppunt:envelope:1"><header><messageId>&xxe;</messageId></header></Envelope>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Envelope xmlns="urn:knooppunt:envelope:1">&lol3;</Envelope>"""


@pytest.mark.parametrize("body", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_doctype_and_entities_are_refused(live: LiveHub, body: bytes) -> None:
    with live.client("duo") as c:
        r = c.post("/v1/berichten", content=body, headers={"Content-Type": "application/xml"})
    problem = _problem(r, 400, "malformed_input")
    assert "DOCTYPE" in str(problem["detail"])
    assert "root:" not in r.text
    assert count_messages(live.settings) == 0


def test_oversized_body_gives_413(live: LiveHub) -> None:
    big = b"<x>" + b"a" * (live.settings.max_body_bytes + 10) + b"</x>"
    with live.client("duo") as c:
        r = c.post("/v1/berichten", content=big, headers={"Content-Type": "application/xml"})
    _problem(r, 413, "payload_too_large")
    assert count_messages(live.settings) == 0


def test_wrong_content_type_gives_415(live: LiveHub) -> None:
    with live.client("duo") as c:
        r = c.post("/v1/berichten", content=b"hello", headers={"Content-Type": "text/plain"})
    _problem(r, 415, "unsupported_media_type")


def test_unknown_schema_version_names_the_versions_that_exist(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["version"] = "9.0"
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 400, "unknown_message_type")
    assert "1.0" in str(problem["detail"])
    assert count_messages(live.settings) == 0
    assert _refused_codes(live) == ["unknown_message_type"]


def test_unknown_message_type_suggests_a_known_one(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["type"] = "inburgeringsplict"
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 400, "unknown_message_type")
    assert "inburgeringsplicht" in str(problem["detail"])


def test_invalid_bsn_check_digit_lists_every_invalid_field(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    bad = doc["subject"]["id"][:-1] + str((int(doc["subject"]["id"][-1]) + 1) % 10)
    doc["subject"]["id"] = bad
    doc["payload"]["persoon"]["identificatie"]["bsn"] = bad
    doc["payload"]["gemeentecode"] = "12"
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 400, "validation_failed")
    names = {p["name"] for p in problem["invalidParams"]}  # type: ignore[union-attr]
    assert "/subject/id" in names
    assert count_messages(live.settings) == 0


def test_invalid_payload_lists_all_errors_as_json_pointers(live: LiveHub) -> None:
    doc = demo.pip(rng)
    doc["payload"]["leerroute"] = "C2"
    doc["payload"]["vastgesteldOp"] = "gisteren"
    with live.client("gemeente-utrecht") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 400, "validation_failed")
    names = {p["name"] for p in problem["invalidParams"]}  # type: ignore[union-attr]
    assert {"/payload/leerroute", "/payload/vastgesteldOp"} <= names


def test_a_control_character_xml_cannot_carry_is_named_not_a_server_error(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["payload"]["reden"] = "vastgesteld\bna verificatie"
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 400, "validation_failed")
    assert [p["name"] for p in problem["invalidParams"]] == ["/payload/reden"]  # type: ignore[union-attr]
    assert "U+0008" in problem["invalidParams"][0]["reason"]  # type: ignore[index]
    assert count_messages(live.settings) == 0


def test_invalid_insz_in_xml_names_the_xpath(live: LiveHub) -> None:
    doc = demo.aanmelding(rng)
    insz = doc["subject"]["id"]
    bad = insz[:-2] + f"{(int(insz[-2:]) + 1) % 97:02d}"
    doc["payload"]["persoon"]["identificatie"]["insz"] = bad
    body = xml_message(doc, InfoModel(ROOT / "schemas"))
    with live.client("agii") as c:
        r = c.post("/v1/berichten", content=body, headers={"Content-Type": "application/xml"})
    problem = _problem(r, 400, "validation_failed")
    names = {p["name"] for p in problem["invalidParams"]}  # type: ignore[union-attr]
    assert "/Envelope/payload/Aanmelding/persoon/identificatie/insz" in names


def test_unknown_receiver_gives_400(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["receivers"] = ["gemeente-atlantis"]
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 400, "unknown_partner")
    assert "gemeente-atlantis" in str(problem["invalidParams"])
    assert count_messages(live.settings) == 0


def test_no_protocol_allowing_it_gives_403_naming_why(live: LiveHub) -> None:
    doc = demo.pip(rng)
    with live.client("duo") as c:  # DUO receives PIPs, it does not send them
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 403, "not_allowed")
    assert "nl-pip" in str(problem["detail"])
    assert "duo" in str(problem["detail"])
    assert count_messages(live.settings) == 0
    refused = audit_rows(live.settings, "refused")
    assert refused[-1]["sender"] == "duo"
    assert refused[-1]["protocol_id"] == "nl-pip"


def test_receiver_outside_the_protocol_gives_403(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["receivers"] = ["coa"]
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 403, "not_allowed")
    assert "coa" in str(problem["detail"])


def test_fields_outside_the_protocol_are_refused(live: LiveHub) -> None:
    doc = demo.pip(rng)
    # nl-pip keeps the municipality's free-text explanation at the municipality
    doc["payload"]["toelichting"] = "Mevrouw heeft veel zorgtaken thuis"
    with live.client("gemeente-utrecht") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 403, "not_allowed")
    assert {
        "name": "toelichting",
        "reason": "veld niet toegestaan onder dit protocol",
        "code": "minimisation",
    } in problem["invalidParams"]  # type: ignore[operator]
    assert count_messages(live.settings) == 0


def test_sender_other_than_the_caller_is_refused(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["sender"] = "coa"
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    _problem(r, 403, "not_allowed")


def test_subject_must_match_the_person_in_the_payload(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["subject"]["id"] = demo.make_bsn(rng)
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    _problem(r, 400, "validation_failed")


def test_bad_message_id_and_traceparent_are_reported_together(live: LiveHub) -> None:
    doc = demo.inburgeringsplicht(rng)
    doc["messageId"] = "not-a-uuid"
    doc["traceparent"] = "nope"
    with live.client("duo") as c:
        r = c.post("/v1/berichten", json=doc)
    problem = _problem(r, 400, "validation_failed")
    names = {p["name"] for p in problem["invalidParams"]}  # type: ignore[union-attr]
    assert names == {"/messageId", "/traceparent"}


def test_example_file_in_the_readme_is_accepted(live: LiveHub) -> None:
    doc = (Path(ROOT) / "examples" / "inburgeringsplicht.json").read_bytes()
    with live.client("duo") as c:
        r = c.post("/v1/berichten", content=doc, headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert uuid.UUID(r.json()["messageId"])
