"""Fixtures for the Dutch adapters: a test PKI made at start, real simulators on loopback.

The ``hub_soap`` fixture is a minimal stand-in for the hub's SOAP endpoint for
DUO, written the way the hub should wire :meth:`DuoAdapter.receive`: verify,
store, acknowledge, or answer with the fault of the refusal.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters._digikoppeling.simserver import SimulatorServer
from adapters._digikoppeling.testpki import DemoPki, ensure_test_pki
from adapters.coa import simulator as coa_simulator
from adapters.duo import DuoAdapter
from adapters.duo import simulator as duo_simulator
from hub.envelope import Envelope
from hub.errors import HubError
from hub.identifiers import parse_bsn
from hub.ports import Delivery

DUO_OIN = duo_simulator.DUO_OIN
HUB_OIN = duo_simulator.KNOOPPUNT_OIN
COA_OIN = coa_simulator.COA_OIN
STRANGER_OIN = "00000004000000009000"
BSN = "111222333"
INB = "urn:knooppunt:inburgering:1"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return ensure_test_pki(
        tmp_path_factory.mktemp("pki"), {"duo": DUO_OIN, "knooppunt": HUB_OIN, "stranger": STRANGER_OIN}
    )


@pytest.fixture(scope="session")
def rogue_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    """Another CA issuing a certificate with the knooppunt's OIN: must not be trusted."""
    return ensure_test_pki(tmp_path_factory.mktemp("rogue"), {"knooppunt": HUB_OIN})


@dataclass
class HubStandIn:
    """What the stand-in hub endpoint accepted."""

    url: str = ""
    accepted: dict[str, Any] = field(default_factory=dict)
    refused: list[HubError] = field(default_factory=list)


@pytest.fixture(scope="session")
def hub_soap(pki: DemoPki) -> Iterator[HubStandIn]:
    state = HubStandIn()
    adapter = DuoAdapter("duo", hub_config(pki, "http://127.0.0.1:1/unused"), httpx.AsyncClient())

    async def accept(inbound: Any) -> tuple[bool, str | None]:
        key = str(inbound.message.envelope.message_id)
        duplicate = key in state.accepted
        state.accepted.setdefault(key, inbound)
        return duplicate, f"HUB-{key[:8]}"

    async def counts(period: str) -> tuple[dict[str, str], dict[str, str]]:
        got = {
            key: inbound.message.envelope.type
            for key, inbound in state.accepted.items()
            if inbound.message.envelope.created_at.date().isoformat().startswith(period)
        }
        return got, {}

    async def refused(error: HubError) -> None:
        state.refused.append(error)

    async def endpoint(request: Request) -> Response:
        status, body = await adapter.handle(
            await request.body(),
            is_known=lambda mid: str(mid) in state.accepted,
            accept=accept,
            counts=counts,
            refused=refused,
        )
        return Response(body, status_code=status, media_type="text/xml; charset=utf-8")

    server = SimulatorServer(Starlette(routes=[Route("/soap/duo", endpoint, methods=["POST"])]))
    state.url = f"{server.url}/soap/duo"
    with server:
        yield state


@pytest.fixture(scope="session")
def duo_server(pki: DemoPki, hub_soap: HubStandIn) -> Iterator[SimulatorServer]:
    party = pki.parties["duo"]
    config = duo_simulator.DuoSimulatorConfig(
        key_file=party.key_file,
        cert_file=party.cert_file,
        ca_file=pki.ca_file,
        trusted_oins=(HUB_OIN,),
        hub_url=hub_soap.url,
        hub_oin=HUB_OIN,
    )
    server = SimulatorServer(None)
    server.app = duo_simulator.create_app(config, server)
    with server:
        yield server


@pytest.fixture
def duo(duo_server: SimulatorServer) -> Iterator[SimulatorServer]:
    """The DUO simulator, back to normal behaviour for each test."""
    httpx.post(f"{duo_server.url}/control", json={"reset": True})
    yield duo_server
    httpx.post(f"{duo_server.url}/control", json={"reset": True})


def hub_config(pki: DemoPki, endpoint_url: str, **extra: Any) -> dict[str, Any]:
    party = pki.parties["knooppunt"]
    config: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "oin": HUB_OIN,
        "partner_oin": DUO_OIN,
        "key_file": str(party.key_file),
        "cert_file": str(party.cert_file),
        "ca_file": str(pki.ca_file),
        "timeout_seconds": 5,
    }
    config.update(extra)
    return config


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def duo_adapter(pki: DemoPki, duo: SimulatorServer, http: httpx.AsyncClient) -> DuoAdapter:
    return DuoAdapter("duo", hub_config(pki, f"{duo.url}/wus/duo"), http)


def pip_xml(*, leerroute: str = "B1", extra: str = "") -> bytes:
    return (
        f'<Pip xmlns="{INB}"><persoon><identificatie><bsn>{BSN}</bsn></identificatie>'
        f"<achternaam>Haddad</achternaam></persoon><gemeentecode>0344</gemeentecode>"
        f"<vastgesteldOp>2026-10-12</vastgesteldOp><leerroute>{leerroute}</leerroute>{extra}</Pip>"
    ).encode()


def inburgeringsplicht_xml(extra: str = "") -> str:
    return (
        f'<Inburgeringsplicht xmlns="{INB}">{extra}<persoon><identificatie><bsn>{BSN}</bsn></identificatie>'
        f"<achternaam>Haddad</achternaam></persoon><gemeentecode>0344</gemeentecode>"
        f"<plichtig>true</plichtig><vastgesteldOp>2026-10-01</vastgesteldOp></Inburgeringsplicht>"
    )


def delivery(
    payload: bytes,
    *,
    message_type: str = "pip",
    message_id: uuid.UUID | None = None,
    attempt: int = 1,
    receiver: str = "duo",
    payload_json: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> Delivery:
    envelope = Envelope(
        message_id=message_id or uuid.uuid4(),
        type=message_type,
        version="1.0",
        sender="gemeente-utrecht",
        subject=parse_bsn(BSN),
        purpose="inburgering-pip",
        receivers=(receiver,),
        created_at=created_at or datetime.now(UTC),
    )
    return Delivery(
        envelope=envelope, receiver=receiver, payload_xml=payload, payload_json=payload_json, attempt=attempt
    )


def control(server: SimulatorServer, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/control", json=body)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def received(server: SimulatorServer) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{server.url}/control/received").json()
    return result


def pki_files(pki: DemoPki, name: str) -> tuple[Path, Path]:
    party = pki.parties[name]
    return party.key_file, party.cert_file


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def hub_rest() -> Iterator[HubStandIn]:
    """A stand-in for the hub's POST /v1/berichten: records what COA posts, answers 202."""
    state = HubStandIn()

    async def endpoint(request: Request) -> Response:
        doc = await request.json()
        if request.headers.get("X-Transaction-Id") != doc.get("messageId"):
            return Response(status_code=400)
        state.accepted[doc["messageId"]] = {"oin": request.headers.get("X-OIN"), "message": doc}
        return Response(b'{"status": "accepted"}', status_code=202, media_type="application/json")

    server = SimulatorServer(Starlette(routes=[Route("/v1/berichten", endpoint, methods=["POST"])]))
    state.url = f"{server.url}/v1/berichten"
    with server:
        yield state


@pytest.fixture(scope="session")
def coa_server(hub_rest: HubStandIn) -> Iterator[SimulatorServer]:
    config = coa_simulator.CoaSimulatorConfig(trusted_oins=(HUB_OIN,), hub_url=hub_rest.url)
    server = SimulatorServer(None)
    server.app = coa_simulator.create_app(config, server)
    with server:
        yield server


@pytest.fixture
def coa(coa_server: SimulatorServer) -> Iterator[SimulatorServer]:
    httpx.post(f"{coa_server.url}/control", json={"reset": True})
    yield coa_server
    httpx.post(f"{coa_server.url}/control", json={"reset": True})


def coa_config(base_url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"base_url": base_url, "oin": HUB_OIN, "partner_oin": COA_OIN, "timeout_seconds": 5}
    config.update(extra)
    return config


def klantprofiel_json() -> dict[str, Any]:
    return {
        "type": "klantprofiel",
        "version": "1.0",
        "subject": {"type": "BSN", "id": BSN},
        "purpose": "nl-klantprofiel",
        "payload": {
            "persoon": {"identificatie": {"bsn": BSN}, "achternaam": "Haddad"},
            "gemeentecode": "0344",
            "koppeldatum": "2026-10-05",
            "taalniveau": "A2",
        },
    }


def wait_until_refusing(server: SimulatorServer, timeout: float = 10.0) -> None:
    """After refuseForSeconds: wait until the port really refuses connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{server.url}/control", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.05)
    raise AssertionError("the simulator kept accepting connections")


def correctiesignaal_xml(replaces: str) -> str:
    """A Correctiesignaal (schemas/inburgering/1.0/correctiesignaal.xsd) naming the signal it replaces."""
    return (
        f'<Correctiesignaal xmlns="{INB}"><persoon><identificatie><bsn>{BSN}</bsn></identificatie>'
        f"<achternaam>Haddad</achternaam></persoon><gemeentecode>0344</gemeentecode>"
        f"<vervangtBericht>{replaces}</vervangtBericht><vervangtBerichttype>inburgeringsplicht</vervangtBerichttype>"
        f"<soort>VERVANGING</soort><gecorrigeerdOp>2026-10-20</gecorrigeerdOp><reden>Verkeerde datum</reden>"
        f"<plichtig>true</plichtig><vastgesteldOp>2026-10-02</vastgesteldOp></Correctiesignaal>"
    )
