"""The DUO WUS link over real HTTP: signatures, faults, duplicates, outages, corrections, reconcile."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import zeep
from cryptography.hazmat.primitives import serialization
from lxml import etree

from adapters._digikoppeling import soap
from adapters._digikoppeling.reconcile import PeriodSummary, compare
from adapters._digikoppeling.simserver import SimulatorServer
from adapters._digikoppeling.testpki import DemoPki
from adapters._digikoppeling.wss import DS_NS, SigningIdentity, WssVerifier, load_certificates, sign_envelope
from adapters.duo import DuoAdapter
from adapters.duo.adapter import DEFAULT_INBOUND_TYPES
from adapters.duo.messages import (
    ACTION_PREFIX,
    CONTRACT_DIR,
    Bericht,
    action_for,
    afstemming_vraag,
    read_afstemming_antwoord,
)
from adapters.duo.simulator import ACCEPTED_TYPES, DuoSimulatorConfig, create_app
from hub.errors import PartnerRejected, PartnerUnavailable
from hub.identifiers import parse_bsn
from hub.loopback import free_port
from hub.ports import Adapter, LookupRequest

from .conftest import (
    DUO_OIN,
    HUB_OIN,
    HubStandIn,
    control,
    correctiesignaal_xml,
    delivery,
    hub_config,
    inburgeringsplicht_xml,
    pip_xml,
    received,
    wait_until_refusing,
)

pytestmark = pytest.mark.anyio


def signed_request(
    pki: DemoPki,
    url: str,
    *,
    signer: str = "knooppunt",
    now: datetime | None = None,
    message_id: uuid.UUID | None = None,
    sign: bool = True,
    rogue: DemoPki | None = None,
) -> tuple[uuid.UUID, bytes]:
    """A pip request to DUO built by hand, so tests can break it on purpose."""
    source = rogue or pki
    identity = SigningIdentity.from_pem_files(source.parties[signer].key_file, source.parties[signer].cert_file)
    message_id = message_id or uuid.uuid4()
    bericht = Bericht(
        message_type="pip",
        version="1.0",
        purpose="inburgering-pip",
        subject=parse_bsn("111222333"),
        created_at=datetime.now(UTC),
        payload=etree.fromstring(pip_xml()),
    )
    addressing = soap.Addressing(
        action=action_for("pip"),
        message_id=message_id,
        to=soap.oin_address(url, DUO_OIN),
        from_address=soap.oin_address(soap.ANONYMOUS, identity.oin),
    )
    envelope = soap.build_envelope(addressing, bericht.to_xml())
    if sign:
        sign_envelope(envelope, identity, now=now)
    return message_id, etree.tostring(envelope)


def post_fault(url: str, body: bytes) -> soap.Fault:
    response = httpx.post(url, content=body, headers={"Content-Type": soap.CONTENT_TYPE})
    assert response.status_code == 500, response.text
    fault = soap.read_fault(etree.fromstring(response.content))
    assert fault is not None
    return fault


# -- the adapter honours the port -----------------------------------------------------------------


async def test_duo_adapter_implements_the_port(duo_adapter: DuoAdapter) -> None:
    assert isinstance(duo_adapter, Adapter)
    assert duo_adapter.partner_id == "duo"
    assert duo_adapter.capabilities.deliver


async def test_signed_pip_is_acknowledged_and_recorded(duo_adapter: DuoAdapter, duo) -> None:
    d = delivery(pip_xml())
    receipt = await duo_adapter.deliver(d)
    assert receipt.detail == "ONTVANGEN"
    assert receipt.partner_reference
    assert receipt.partner_reference.startswith("DUO-")
    assert str(d.envelope.message_id) in received(duo)["messageIds"]


async def test_resent_message_is_eliminated_as_duplicate(duo_adapter: DuoAdapter, duo) -> None:
    d = delivery(pip_xml(), message_type="handhaving")
    before = received(duo)
    first = await duo_adapter.deliver(d)
    again = await duo_adapter.deliver(
        delivery(pip_xml(), message_type="handhaving", message_id=d.envelope.message_id, attempt=2)
    )
    after = received(duo)
    assert (first.detail, again.detail) == ("ONTVANGEN", "DUPLICAAT")
    assert again.partner_reference == first.partner_reference
    assert after["count"] == before["count"] + 1
    assert after["duplicatesEliminated"] == before["duplicatesEliminated"] + 1


async def test_health_is_a_signed_round_trip(duo_adapter: DuoAdapter) -> None:
    status = await duo_adapter.health()
    assert status.ok, status.detail
    assert status.facts["partner_oin"] == DUO_OIN


# -- bad input is refused with a specific fault -----------------------------------------------------


def test_unsigned_message_gets_invalid_security(pki: DemoPki, duo) -> None:
    url = f"{duo.url}/wus/duo"
    _, body = signed_request(pki, url, sign=False)
    fault = post_fault(url, body)
    assert fault.code == (soap.WSSE_NS, "InvalidSecurity")
    assert fault.detail_code == "signature_missing"


def test_changed_body_gets_failed_check(pki: DemoPki, duo) -> None:
    url = f"{duo.url}/wus/duo"
    _, body = signed_request(pki, url)
    fault = post_fault(url, body.replace(b"<leerroute>B1<", b"<leerroute>Z<"))
    assert fault.code == (soap.WSSE_NS, "FailedCheck")
    assert fault.detail_code == "signature_invalid"


def test_signature_by_another_key_gets_failed_check(pki: DemoPki, duo) -> None:
    """Signed with the stranger's key, but presenting the knooppunt's certificate."""
    url = f"{duo.url}/wus/duo"
    _, body = signed_request(pki, url, signer="stranger")
    envelope = etree.fromstring(body)
    token = envelope.find(".//{*}BinarySecurityToken")
    knooppunt = SigningIdentity.from_pem_files(pki.parties["knooppunt"].key_file, pki.parties["knooppunt"].cert_file)
    token.text = base64.b64encode(knooppunt.certificate.public_bytes(serialization.Encoding.DER)).decode()
    from_address = envelope.find(".//{*}From/{*}Address")
    assert from_address is not None
    assert envelope.find(f".//{{{DS_NS}}}Signature") is not None
    fault = post_fault(url, etree.tostring(envelope))
    assert fault.code == (soap.WSSE_NS, "FailedCheck")


def test_expired_timestamp_gets_message_expired(pki: DemoPki, duo) -> None:
    url = f"{duo.url}/wus/duo"
    _, body = signed_request(pki, url, now=datetime.now(UTC) - timedelta(hours=1))
    fault = post_fault(url, body)
    assert fault.code == (soap.WSSE_NS, "MessageExpired")
    assert fault.detail_code == "timestamp_expired"


def test_unknown_oin_gets_failed_authentication(pki: DemoPki, duo) -> None:
    url = f"{duo.url}/wus/duo"
    _, body = signed_request(pki, url, signer="stranger")
    fault = post_fault(url, body)
    assert fault.code == (soap.WSSE_NS, "FailedAuthentication")
    assert fault.detail_code == "oin_unknown"


def test_certificate_from_another_ca_gets_invalid_security_token(pki: DemoPki, rogue_pki: DemoPki, duo) -> None:
    url = f"{duo.url}/wus/duo"
    _, body = signed_request(pki, url, rogue=rogue_pki)
    fault = post_fault(url, body)
    assert fault.code == (soap.WSSE_NS, "InvalidSecurityToken")
    assert fault.detail_code == "certificate_untrusted"


def test_refused_messages_are_not_recorded(pki: DemoPki, duo) -> None:
    url = f"{duo.url}/wus/duo"
    message_id, body = signed_request(pki, url, sign=False)
    post_fault(url, body)
    assert str(message_id) not in received(duo)["messageIds"]


async def test_pip_change_for_unknown_pip_is_refused(duo_adapter: DuoAdapter, duo) -> None:
    unknown = uuid.uuid4()
    change = delivery(
        pip_xml(leerroute="Z", extra=f"<vervangtBericht>{unknown}</vervangtBericht>"), message_type="pip-wijziging"
    )
    with pytest.raises(PartnerRejected, match="correction_unknown_signal"):
        await duo_adapter.deliver(change)
    assert str(change.envelope.message_id) not in received(duo)["messageIds"]


async def test_pip_change_for_known_pip_is_accepted(duo_adapter: DuoAdapter) -> None:
    original = delivery(pip_xml())
    await duo_adapter.deliver(original)
    change = delivery(
        pip_xml(leerroute="Z", extra=f"<vervangtBericht>{original.envelope.message_id}</vervangtBericht>"),
        message_type="pip-wijziging",
    )
    assert (await duo_adapter.deliver(change)).detail == "ONTVANGEN"


async def test_pip_change_without_reference_is_not_sent(duo_adapter: DuoAdapter) -> None:
    with pytest.raises(PartnerRejected, match="vervangtBericht"):
        await duo_adapter.deliver(delivery(pip_xml(), message_type="pip-wijziging"))


# -- the adapter maps failures to the hub's errors --------------------------------------------------


async def test_outage_then_recovery_delivers_once(duo_adapter: DuoAdapter, duo) -> None:
    d = delivery(pip_xml())
    control(duo, down=True)
    with pytest.raises(PartnerUnavailable, match="503"):
        await duo_adapter.deliver(d)
    control(duo, down=False)
    receipt = await duo_adapter.deliver(delivery(pip_xml(), message_id=d.envelope.message_id, attempt=2))
    assert receipt.detail == "ONTVANGEN"
    assert received(duo)["messageIds"].count(str(d.envelope.message_id)) == 1


async def test_refused_connections_are_transient_and_pass(duo_adapter: DuoAdapter, duo) -> None:
    control(duo, refuseForSeconds=1.5)
    wait_until_refusing(duo)
    with pytest.raises(PartnerUnavailable, match="niet bereikbaar"):
        await duo_adapter.deliver(delivery(pip_xml()))
    deadline = time.monotonic() + 10
    while True:
        try:
            assert (await duo_adapter.deliver(delivery(pip_xml()))).detail == "ONTVANGEN"
            break
        except PartnerUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_slow_partner_is_transient(pki: DemoPki, duo, http: httpx.AsyncClient) -> None:
    adapter = DuoAdapter("duo", hub_config(pki, f"{duo.url}/wus/duo", timeout_seconds=0.3), http)
    control(duo, delaySeconds=1.0)
    with pytest.raises(PartnerUnavailable, match="niet binnen"):
        await adapter.deliver(delivery(pip_xml()))


async def test_transient_fault_is_unavailable_and_permanent_is_rejected(duo_adapter: DuoAdapter, duo) -> None:
    control(duo, fault={"code": "server_busy", "transient": True, "count": 1})
    with pytest.raises(PartnerUnavailable, match="server_busy"):
        await duo_adapter.deliver(delivery(pip_xml()))
    control(duo, fault={"code": "bsn_onbekend", "transient": False, "count": 1})
    with pytest.raises(PartnerRejected, match="bsn_onbekend"):
        await duo_adapter.deliver(delivery(pip_xml()))
    assert (await duo_adapter.deliver(delivery(pip_xml()))).detail == "ONTVANGEN"


async def test_unreachable_port_is_unavailable(pki: DemoPki, http: httpx.AsyncClient) -> None:
    adapter = DuoAdapter("duo", hub_config(pki, f"http://127.0.0.1:{free_port()}/wus/duo"), http)
    with pytest.raises(PartnerUnavailable):
        await adapter.deliver(delivery(pip_xml()))
    assert adapter.correlator.pending() == []
    assert not (await adapter.health()).ok


async def test_answer_signed_by_an_untrusted_oin_is_not_believed(pki: DemoPki, duo, http: httpx.AsyncClient) -> None:
    adapter = DuoAdapter("duo", hub_config(pki, f"{duo.url}/wus/duo", trusted_oins=["00000004000000009000"]), http)
    with pytest.raises(PartnerRejected, match="niet te vertrouwen"):
        await adapter.deliver(delivery(pip_xml()))


async def test_lookups_are_refused(duo_adapter: DuoAdapter) -> None:
    with pytest.raises(PartnerRejected):
        await duo_adapter.lookup(
            LookupRequest(kind="geef-persoon", subject=parse_bsn("111222333"), purpose="x", requester="y")
        )


# -- reconcile ----------------------------------------------------------------------------------------


async def test_reconcile_finds_a_dropped_message(duo_adapter: DuoAdapter, duo) -> None:
    day = datetime(2026, 10, 7, 12, tzinfo=UTC)
    sent = [delivery(pip_xml(), created_at=day + timedelta(minutes=i)) for i in range(3)]
    for d in sent:
        await duo_adapter.deliver(d)
    dropped = str(sent[1].envelope.message_id)
    assert httpx.delete(f"{duo.url}/control/received/{dropped}").status_code == 204
    duo_received, _ = await duo_adapter.reconcile("2026-10-07")
    ours = PeriodSummary.of("2026-10-07", [(d.envelope.message_id, "pip") for d in sent])
    gaps = compare(ours, duo_received)
    assert duo_received.count == 2
    assert gaps.missing_at_receiver == (dropped,)
    assert not gaps.complete


# -- DUO -> gemeente through the hub's SOAP endpoint ------------------------------------------------


def send_from_duo(duo, **body: object) -> httpx.Response:
    return httpx.post(
        f"{duo.url}/control/send", json={"subject": {"type": "BSN", "id": "111222333"}, **body}, timeout=10
    )


def test_duo_signal_is_verified_by_the_hub_endpoint(duo, hub_soap: HubStandIn) -> None:
    response = send_from_duo(duo, type="inburgeringsplicht", payloadXml=inburgeringsplicht_xml())
    assert response.status_code == 200, response.text
    message_id = response.json()["messageId"]
    inbound = hub_soap.accepted[message_id]
    assert inbound.signer_oin == DUO_OIN
    assert inbound.message.envelope.type == "inburgeringsplicht"
    assert etree.QName(inbound.message.payload).localname == "Inburgeringsplicht"
    sent = httpx.get(f"{duo.url}/control/received").json()["sentMessageIds"]
    assert message_id in sent


def test_correction_for_unknown_signal_is_refused_by_the_hub(duo, hub_soap: HubStandIn) -> None:
    response = send_from_duo(
        duo, type="correctiesignaal", payloadXml=inburgeringsplicht_xml(), replaces=str(uuid.uuid4())
    )
    assert response.status_code == 422
    assert response.json()["fault"]["detailCode"] == "correction_unknown_signal"
    assert response.json()["messageId"] not in hub_soap.accepted
    assert hub_soap.refused[-1].code == "correction_unknown_signal"


def test_correction_for_known_signal_is_accepted_by_the_hub(duo, hub_soap: HubStandIn) -> None:
    first = send_from_duo(duo, type="inburgeringsplicht", payloadXml=inburgeringsplicht_xml()).json()["messageId"]
    correction = send_from_duo(duo, type="correctiesignaal", payloadXml=inburgeringsplicht_xml(), replaces=first)
    assert correction.status_code == 200, correction.text
    assert hub_soap.accepted[correction.json()["messageId"]].replaces == uuid.UUID(first)


def test_hub_endpoint_refuses_a_type_duo_may_not_send(duo) -> None:
    response = send_from_duo(duo, type="pip", payloadXml=pip_xml().decode())
    assert response.status_code == 422
    assert response.json()["fault"]["detailCode"] == "action_unknown"


def test_resent_signal_is_acknowledged_as_duplicate(duo, hub_soap: HubStandIn) -> None:
    message_id = str(uuid.uuid4())
    first = send_from_duo(duo, type="inburgeringsplicht", payloadXml=inburgeringsplicht_xml(), messageId=message_id)
    again = send_from_duo(duo, type="inburgeringsplicht", payloadXml=inburgeringsplicht_xml(), messageId=message_id)
    assert (first.json()["status"], again.json()["status"]) == ("ONTVANGEN", "DUPLICAAT")


# -- the contract --------------------------------------------------------------------------------------


def test_wsdl_loads_in_zeep_with_both_ports() -> None:
    client = zeep.Client(str(CONTRACT_DIR / "duo-inburgering.wsdl"))
    operations = {
        port.name: set(port.binding._operations)
        for service in client.wsdl.services.values()
        for port in service.ports.values()
    }
    assert operations == {
        "DuoPort": {"Pip", "PipWijziging", "Handhaving", "Afstemming"},
        "GemeentePort": {"Inburgeringsplicht", "Correctiesignaal", "Afstemming"},
    }


def test_simulator_serves_its_wsdl(duo) -> None:
    response = httpx.get(f"{duo.url}/wus/duo?wsdl")
    assert response.status_code == 200
    assert etree.fromstring(response.content).get("name") == "DuoInburgering"


def test_hub_oin_is_in_the_addressing(pki: DemoPki, duo) -> None:
    _, body = signed_request(pki, f"{duo.url}/wus/duo")
    addressing = soap.read_addressing(etree.fromstring(body))
    assert addressing.from_oin == HUB_OIN
    assert addressing.to_oin == DUO_OIN


class _SignPlugin(zeep.Plugin):  # type: ignore[misc]
    """Signs what zeep sends with our WS-Security implementation."""

    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity

    def egress(self, envelope, http_headers, operation, binding_options):  # type: ignore[no-untyped-def]
        sign_envelope(envelope, self.identity)
        return envelope, http_headers


def test_a_zeep_client_built_from_the_wsdl_is_understood(pki: DemoPki, duo) -> None:
    """A standard SOAP stack, driven only by the WSDL (zeep adds WS-Addressing itself), gets a DUO receipt."""
    identity = SigningIdentity.from_pem_files(pki.parties["knooppunt"].key_file, pki.parties["knooppunt"].cert_file)
    client = zeep.Client(str(CONTRACT_DIR / "duo-inburgering.wsdl"), plugins=[_SignPlugin(identity)])
    service = client.create_service(
        "{urn:knooppunt:duo:wus:1}DuoBinding", soap.oin_address(f"{duo.url}/wus/duo", DUO_OIN)
    )
    answer = service.Pip(
        berichttype="pip",
        versie="1.0",
        doelbinding="inburgering-pip",
        betrokkene={"_value_1": "111222333", "type": "BSN"},
        aangemaaktOp=datetime.now(UTC),
        inhoud={"_value_1": etree.fromstring(pip_xml())},
    )
    assert answer["status"] == "ONTVANGEN"
    assert answer["berichtId"] in received(duo)["messageIds"]


async def test_expired_on_arrival_is_transient_for_the_sender(pki: DemoPki, http: httpx.AsyncClient) -> None:
    """A Timestamp that expired on the way: the retry re-signs, so the hub should try again."""
    party = pki.parties["duo"]
    config = DuoSimulatorConfig(
        key_file=party.key_file,
        cert_file=party.cert_file,
        ca_file=pki.ca_file,
        trusted_oins=(HUB_OIN,),
        clock_skew=timedelta(0),
    )
    server = SimulatorServer(None)
    server.app = create_app(config, server)
    with server:
        adapter = DuoAdapter("duo", hub_config(pki, f"{server.url}/wus/duo", timestamp_ttl_seconds=0.001), http)
        with pytest.raises(PartnerUnavailable, match="MessageExpired"):
            await adapter.deliver(delivery(pip_xml()))
        assert received(server)["count"] == 0


def test_hub_endpoint_refuses_a_message_for_another_oin(pki: DemoPki, hub_soap: HubStandIn) -> None:
    duo_identity = SigningIdentity.from_pem_files(pki.parties["duo"].key_file, pki.parties["duo"].cert_file)
    addressing = soap.Addressing(
        action=action_for("inburgeringsplicht"),
        message_id=uuid.uuid4(),
        to=soap.oin_address(hub_soap.url, "00000004000000009000"),
        from_address=soap.oin_address(soap.ANONYMOUS, DUO_OIN),
    )
    envelope = soap.build_envelope(addressing, etree.fromstring(inburgeringsplicht_xml()))
    sign_envelope(envelope, duo_identity)
    fault = post_fault(hub_soap.url, etree.tostring(envelope))
    assert fault.code == (soap.WSA_NS, "InvalidAddressingHeader")
    assert fault.detail_code == "addressing_invalid"


def test_hub_endpoint_refuses_a_from_that_is_not_the_signer(pki: DemoPki, hub_soap: HubStandIn) -> None:
    duo_identity = SigningIdentity.from_pem_files(pki.parties["duo"].key_file, pki.parties["duo"].cert_file)
    addressing = soap.Addressing(
        action=action_for("inburgeringsplicht"),
        message_id=uuid.uuid4(),
        to=soap.oin_address(hub_soap.url, HUB_OIN),
        from_address=soap.oin_address(soap.ANONYMOUS, "00000004000000009000"),
    )
    envelope = soap.build_envelope(addressing, etree.fromstring(inburgeringsplicht_xml()))
    sign_envelope(envelope, duo_identity)
    assert post_fault(hub_soap.url, etree.tostring(envelope)).detail_code == "addressing_invalid"


async def test_acknowledged_but_lost_message_is_found_by_reconcile(duo_adapter: DuoAdapter, duo) -> None:
    day = datetime(2026, 9, 3, 9, tzinfo=UTC)
    sent = [delivery(pip_xml(), created_at=day + timedelta(minutes=i)) for i in range(3)]
    await duo_adapter.deliver(sent[0])
    control(duo, dropNext=1)
    lost = await duo_adapter.deliver(sent[1])
    await duo_adapter.deliver(sent[2])
    assert lost.detail == "ONTVANGEN"
    duo_received, _ = await duo_adapter.reconcile("2026-09")
    ours = PeriodSummary.of("2026-09", [(d.envelope.message_id, "pip") for d in sent])
    assert duo_received.checksum != ours.checksum
    assert compare(ours, duo_received).missing_at_receiver == (str(sent[1].envelope.message_id),)


def test_wsdl_actions_are_the_types_the_code_handles() -> None:
    """The contract and the code cannot drift: each port's input Actions are exactly what its side accepts."""
    wsdl = etree.parse(str(CONTRACT_DIR / "duo-inburgering.wsdl"))
    ns = {"wsdl": "http://schemas.xmlsoap.org/wsdl/", "wsam": "http://www.w3.org/2007/05/addressing/metadata"}

    def actions(port: str) -> set[str]:
        found = wsdl.xpath(f"//wsdl:portType[@name='{port}']/wsdl:operation/wsdl:input/@wsam:Action", namespaces=ns)
        return {str(a).removeprefix(ACTION_PREFIX) for a in found}

    assert actions("DuoPort") == {*ACCEPTED_TYPES, "afstemming"}
    assert actions("GemeentePort") == {*DEFAULT_INBOUND_TYPES, "afstemming"}


def test_duo_can_reconcile_with_the_hub(pki: DemoPki, duo, hub_soap: HubStandIn) -> None:
    signal = send_from_duo(duo, type="inburgeringsplicht", payloadXml=inburgeringsplicht_xml()).json()["messageId"]
    duo_identity = SigningIdentity.from_pem_files(pki.parties["duo"].key_file, pki.parties["duo"].cert_file)
    question = uuid.uuid4()
    addressing = soap.Addressing(
        action=action_for("afstemming"),
        message_id=question,
        to=soap.oin_address(hub_soap.url, HUB_OIN),
        from_address=soap.oin_address(soap.ANONYMOUS, DUO_OIN),
    )
    today = datetime.now(UTC).date().isoformat()
    envelope = soap.build_envelope(addressing, afstemming_vraag(today))
    sign_envelope(envelope, duo_identity)
    response = httpx.post(hub_soap.url, content=etree.tostring(envelope), headers={"Content-Type": soap.CONTENT_TYPE})
    assert response.status_code == 200, response.text
    verifier = WssVerifier(load_certificates(pki.ca_file), [HUB_OIN])
    answer = etree.fromstring(response.content)
    assert verifier.verify(answer).oin == HUB_OIN
    assert soap.read_addressing(answer).relates_to == question
    hub_received, _ = read_afstemming_antwoord(soap.body_element(answer))
    assert signal in hub_received.message_ids
    assert hub_received.count == len(hub_received.message_ids)


def test_hub_endpoint_refuses_unsigned_and_expired_signals_and_reports_them(pki: DemoPki, hub_soap: HubStandIn) -> None:
    duo_identity = SigningIdentity.from_pem_files(pki.parties["duo"].key_file, pki.parties["duo"].cert_file)
    bericht = Bericht(
        message_type="inburgeringsplicht",
        version="1.0",
        purpose="nl-inburgeringsplicht",
        subject=parse_bsn("111222333"),
        created_at=datetime.now(UTC),
        payload=etree.fromstring(inburgeringsplicht_xml()),
    )
    outcomes = []
    for sign_at in (None, datetime.now(UTC) - timedelta(hours=2)):
        message_id = uuid.uuid4()
        addressing = soap.Addressing(
            action=action_for("inburgeringsplicht"),
            message_id=message_id,
            to=soap.oin_address(hub_soap.url, HUB_OIN),
            from_address=soap.oin_address(soap.ANONYMOUS, DUO_OIN),
        )
        envelope = soap.build_envelope(addressing, bericht.to_xml())
        if sign_at is not None:
            sign_envelope(envelope, duo_identity, now=sign_at)
        fault = post_fault(hub_soap.url, etree.tostring(envelope))
        outcomes.append((fault.detail_code, hub_soap.refused[-1].code, str(message_id) in hub_soap.accepted))
    assert outcomes == [
        ("signature_missing", "signature_missing", False),
        ("timestamp_expired", "timestamp_expired", False),
    ]


def test_test_payloads_follow_the_information_model() -> None:
    schemas = Path(__file__).resolve().parents[2] / "schemas" / "inburgering" / "1.0"
    for name, xml in (
        ("inburgeringsplicht", inburgeringsplicht_xml()),
        ("correctiesignaal", correctiesignaal_xml(str(uuid.uuid4()))),
        ("pip", pip_xml().decode()),
    ):
        schema = etree.XMLSchema(etree.parse(str(schemas / f"{name}.xsd")))
        schema.assertValid(etree.fromstring(xml))


def test_correctiesignaal_names_the_signal_in_its_payload(duo, hub_soap: HubStandIn) -> None:
    first = send_from_duo(duo, type="inburgeringsplicht", payloadXml=inburgeringsplicht_xml()).json()["messageId"]
    correction = send_from_duo(duo, type="correctiesignaal", payloadXml=correctiesignaal_xml(first))
    assert correction.status_code == 200, correction.text
    assert hub_soap.accepted[correction.json()["messageId"]].replaces == uuid.UUID(first)
    unknown = send_from_duo(duo, type="correctiesignaal", payloadXml=correctiesignaal_xml(str(uuid.uuid4())))
    assert unknown.json()["fault"]["detailCode"] == "correction_unknown_signal"


def test_wrapper_and_payload_must_name_the_same_signal(duo, hub_soap: HubStandIn) -> None:
    first = send_from_duo(duo, type="inburgeringsplicht", payloadXml=inburgeringsplicht_xml()).json()["messageId"]
    response = send_from_duo(
        duo, type="correctiesignaal", payloadXml=correctiesignaal_xml(first), replaces=str(uuid.uuid4())
    )
    assert response.status_code == 422
    assert response.json()["fault"]["detailCode"] == "validation_failed"
