"""Every example of the information model through the running hub: each valid one is accepted
over REST (its JSON form) and over SOAP (its XML form); each invalid one is refused with the
error its sidecar states (REST over XML and SOAP)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lxml import etree

from hub import demo
from hub.cli.runner import DEMO_PARTNERS
from hub.demo import load_partners
from hub.envelope import Envelope, to_xml
from hub.identifiers import BSN, INSZ
from hub.infomodel import Example, InfoModel
from hub.protocols import PartnerRef, ProtocolBook
from hub.settings import ROOT, Settings
from tests.conftest import LiveHub, start_live_hub

MODEL = InfoModel(ROOT / "schemas")
PROTOCOLS = ProtocolBook.load(ROOT / "protocols")
PARTNERS = [p.partner for p in load_partners(DEMO_PARTNERS)]
EXAMPLES = MODEL.examples()
VALID = [e for e in EXAMPLES if e.valid]
INVALID = [e for e in EXAMPLES if not e.valid]
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
rng = random.Random(3)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    from tests.conftest import make_settings

    settings: Settings = make_settings(tmp_path_factory.mktemp("examples"))
    live = start_live_hub(settings)
    try:
        yield live
    finally:
        live.stop()


def _parties(example: Example) -> tuple[str, str, str]:
    """A sender and a receiver of the example's type, and the protocol that allows them."""
    mtype = example.mtype
    for sender in (p for p in PARTNERS if p.role in mtype.senders):
        for receiver in (p for p in PARTNERS if p.role in mtype.receivers and p.id != sender.id):
            for protocol in PROTOCOLS.all():
                if (
                    mtype.name in protocol.message_types
                    and protocol.allows_sender(PartnerRef(sender.id, sender.role))
                    and protocol.allows_receiver(PartnerRef(receiver.id, receiver.role))
                ):
                    return sender.id, receiver.id, protocol.id
    raise AssertionError(f"no demo partners and protocol for {mtype.name}: add them")


def _subject(example: Example, payload: etree._Element, *, valid: bool) -> INSZ | BSN | None:
    if example.mtype.aggregated:
        return None
    found = MODEL.subject_of(example.mtype, payload)
    kind = found[0] if found else "BSN"
    if valid and found:
        return INSZ(found[1]) if kind == "INSZ" else BSN(found[1])
    # an invalid payload may carry a bad number: the envelope names a valid one, so the
    # payload's own error is the one reported
    return INSZ(demo.make_insz(rng)) if kind == "INSZ" else BSN(demo.make_bsn(rng))


def _envelope(example: Example, payload: etree._Element, *, valid: bool) -> tuple[Envelope, str]:
    sender, receiver, protocol = _parties(example)
    envelope = Envelope(
        message_id=uuid.uuid4(),
        type=example.mtype.name,
        version=example.mtype.version,
        sender=sender,
        subject=_subject(example, payload, valid=valid),
        purpose=protocol,
        receivers=(receiver,),
    )
    return envelope, sender


def _soap(body: bytes) -> bytes:
    inner = body.split(b"?>", 1)[1]
    return f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'.encode() + inner + b"</soap:Body></soap:Envelope>"


def _payload(example: Example) -> etree._Element:
    return etree.parse(str(example.path)).getroot()


@pytest.mark.parametrize("example", VALID, ids=[f"{e.mtype.name}-{e.mtype.version}-{e.path.stem}" for e in VALID])
def test_valid_example_is_accepted_over_rest_json_and_soap(hub: LiveHub, example: Example) -> None:
    payload = _payload(example)
    envelope, sender = _envelope(example, payload, valid=True)
    token = {"Authorization": f"Bearer {hub.setup.tokens[sender]}"}
    doc: dict[str, Any] = {
        "messageId": str(envelope.message_id),
        "type": envelope.type,
        "version": envelope.version,
        "receivers": list(envelope.receivers),
        "purpose": envelope.purpose,
        "payload": MODEL.xml_to_json(example.mtype, payload),
    }
    if envelope.subject is not None:
        doc["subject"] = {"type": envelope.subject_type, "id": envelope.subject_id}
    rest = httpx.post(f"{hub.url}/v1/berichten", json=doc, headers=token, timeout=10)
    assert rest.status_code == 202, rest.text

    again, _ = _envelope(example, payload, valid=True)
    soap = httpx.post(
        f"{hub.url}/soap/berichten",
        content=_soap(to_xml(again, payload)),
        headers={**token, "Content-Type": "text/xml"},
        timeout=10,
    )
    assert soap.status_code == 200, soap.text
    answer = etree.fromstring(soap.content)
    assert answer.findtext(".//{urn:knooppunt:soap:1}messageId") == str(again.message_id)


@pytest.mark.parametrize("example", INVALID, ids=[f"{e.mtype.name}-{e.path.stem}" for e in INVALID])
def test_invalid_example_is_refused_with_its_stated_error(hub: LiveHub, example: Example) -> None:
    payload = _payload(example)
    envelope, sender = _envelope(example, payload, valid=False)
    token = {"Authorization": f"Bearer {hub.setup.tokens[sender]}"}
    body = to_xml(envelope, payload)
    expected = {("/Envelope/payload" + path, rule) for path, rule in example.errors}

    rest = httpx.post(
        f"{hub.url}/v1/berichten", content=body, headers={**token, "Content-Type": "application/xml"}, timeout=10
    )
    assert rest.status_code == 400, rest.text
    got = {(p["name"], p["code"]) for p in rest.json()["invalidParams"]}
    assert expected <= got, f"{example.description}: expected {expected}, got {got}"

    soap = httpx.post(
        f"{hub.url}/soap/berichten", content=_soap(body), headers={**token, "Content-Type": "text/xml"}, timeout=10
    )
    assert soap.status_code == 500
    diagnoses = etree.fromstring(soap.content).xpath(
        "//ks:Uitzondering/ks:Diagnose/text()", namespaces={"ks": "urn:knooppunt:soap:1"}
    )
    for path, _rule in expected:
        assert any(d.startswith(path + ":") for d in diagnoses), (path, diagnoses)
