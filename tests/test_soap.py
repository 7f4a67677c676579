"""The SOAP face: a zeep client built from the hub's WSDL sends a message; faults carry Uitzonderingen."""

from __future__ import annotations

import random

import httpx
import requests
import zeep
from lxml import etree
from zeep.transports import Transport

from hub import demo
from hub.infomodel import InfoModel
from hub.settings import ROOT
from tests.conftest import LiveHub
from tests.helpers import count_messages, xml_message

rng = random.Random(7)
SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, forbid_external=True, forbid_entities=True)


def test_zeep_client_from_the_wsdl_can_send(live: LiveHub) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {live.setup.tokens['duo']}"
        client = zeep.Client(f"{live.url}/soap/berichten", transport=Transport(session=session), settings=SETTINGS)
        _send_with_zeep(live, client)


def _send_with_zeep(live: LiveHub, client: zeep.Client) -> None:
    doc = demo.inburgeringsplicht(rng, "0344")
    envelope = etree.fromstring(xml_message(doc, InfoModel(ROOT / "schemas")))
    header = {etree.QName(c).localname: c.text for c in envelope[0] if etree.QName(c).localname != "subject"}
    subject = envelope[0].find("{urn:knooppunt:envelope:1}subject")
    subject_type = client.get_type("{urn:knooppunt:envelope:1}Subject")
    payload = envelope[1][0]
    answer = client.service.Send(
        header={**header, "subject": subject_type(subject.text, type=subject.get("type"))},
        payload={"_value_1": payload},
    )
    assert answer.messageId == doc["messageId"]
    assert answer.status == "accepted"
    assert answer.receiver == ["gemeente-utrecht"]
    live.wait_status("duo", doc["messageId"], {"delivered"})


def test_invalid_soap_message_gets_a_fault_with_uitzonderingen(live: LiveHub) -> None:
    doc = demo.pip(rng)
    good = xml_message(doc, InfoModel(ROOT / "schemas")).split(b"?>", 1)[1]
    leerroute = doc["payload"]["leerroute"].encode()
    inner = good.replace(b">" + leerroute + b"</leerroute>", b">C2</leerroute>")
    assert inner != good
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        + inner
        + b"</soap:Body></soap:Envelope>"
    )
    r = httpx.post(
        f"{live.url}/soap/berichten",
        content=body,
        headers={"Content-Type": "text/xml", "Authorization": f"Bearer {live.setup.tokens['gemeente-utrecht']}"},
    )
    assert r.status_code == 500
    fault = etree.fromstring(r.content)
    ns = {"ks": "urn:knooppunt:soap:1", "soap": "http://schemas.xmlsoap.org/soap/envelope/"}
    assert fault.findtext(".//faultcode") == "soap:Client"
    ids = fault.xpath("//ks:Uitzondering/ks:Identificatie/text()", namespaces=ns)
    diagnoses = fault.xpath("//ks:Uitzondering/ks:Diagnose/text()", namespaces=ns)
    assert ids[0] == "validation_failed"
    assert any("leerroute" in d for d in diagnoses)
    assert fault.xpath("//ks:Uitzondering/ks:Type/text()", namespaces=ns)[0] == "FOUT"
    assert count_messages(live.settings) == 0


def test_soap_with_a_doctype_is_refused(live: LiveHub) -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&e;</soap:Body>'
        b"</soap:Envelope>"
    )
    r = httpx.post(
        f"{live.url}/soap/berichten",
        content=body,
        headers={"Content-Type": "text/xml", "Authorization": f"Bearer {live.setup.tokens['duo']}"},
    )
    assert r.status_code == 500
    assert b"malformed_input" in r.content
    assert count_messages(live.settings) == 0


def test_soap_without_token_is_a_401_fault(live: LiveHub) -> None:
    r = httpx.post(f"{live.url}/soap/berichten", content=b"<x/>", headers={"Content-Type": "text/xml"})
    assert r.status_code == 401
    assert b"authentication_failed" in r.content
