"""The COA REST link over real HTTP: warm handover, confirmations, duplicates, outages, reconcile."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters._digikoppeling.reconcile import PeriodSummary, compare
from adapters._digikoppeling.simserver import SimulatorServer
from adapters.coa import CoaAdapter
from adapters.coa import simulator as coa_sim
from adapters.coa.simulator import openapi
from adapters.duo import DuoAdapter
from adapters.duo import simulator as duo_sim
from hub.errors import ConfigurationError, PartnerRejected, PartnerUnavailable
from hub.loopback import free_port
from hub.ports import Adapter

from .conftest import (
    COA_OIN,
    HUB_OIN,
    HubStandIn,
    coa_config,
    control,
    delivery,
    klantprofiel_json,
    pip_xml,
    received,
    wait_until_refusing,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def coa_adapter(coa: SimulatorServer, http: httpx.AsyncClient) -> CoaAdapter:
    return CoaAdapter("coa", coa_config(f"{coa.url}/v1"), http)


def handover(coa: SimulatorServer) -> str:
    """COA sends a klantprofiel to the knooppunt; returns its message id."""
    response = httpx.post(f"{coa.url}/control/send", json={"message": klantprofiel_json()}, timeout=10)
    assert response.status_code == 200, response.text
    message_id: str = response.json()["messageId"]
    return message_id


def confirmation(
    klantprofiel_id: str | None, *, message_id: uuid.UUID | None = None, created_at: datetime | None = None
) -> Any:
    d = delivery(
        b"<unused/>",
        message_type="klantprofiel-ontvangst",
        message_id=message_id,
        receiver="coa",
        payload_json={"ontvangen": True},
        created_at=created_at,
    )
    if klantprofiel_id is None:
        return d
    return replace(d, envelope=replace(d.envelope, conversation_id=uuid.UUID(klantprofiel_id)))


async def test_coa_adapter_implements_the_port(coa_adapter: CoaAdapter) -> None:
    assert isinstance(coa_adapter, Adapter)
    assert coa_adapter.capabilities.formats == frozenset({"json"})
    assert (await coa_adapter.health()).ok


def test_klantprofiel_reaches_the_hub_with_oin_and_transaction_id(coa, hub_rest: HubStandIn) -> None:
    message_id = handover(coa)
    accepted = hub_rest.accepted[message_id]
    assert accepted["oin"] == COA_OIN
    assert accepted["message"]["payload"]["taalniveau"] == "A2"


async def test_municipality_confirms_receipt_of_the_klantprofiel(coa_adapter: CoaAdapter, coa) -> None:
    klantprofiel_id = handover(coa)
    assert klantprofiel_id in httpx.get(f"{coa.url}/control/handovers").json()["unconfirmed"]
    receipt = await coa_adapter.deliver(confirmation(klantprofiel_id))
    assert receipt.detail == "ontvangen"
    assert receipt.partner_reference
    assert receipt.partner_reference.startswith("COA-")
    status = httpx.get(f"{coa.url}/control/handovers").json()
    assert klantprofiel_id in status["confirmed"]
    assert klantprofiel_id not in status["unconfirmed"]


async def test_confirmation_of_unknown_klantprofiel_is_rejected(coa_adapter: CoaAdapter, coa) -> None:
    d = confirmation(str(uuid.uuid4()))
    with pytest.raises(PartnerRejected, match="transaction_unknown"):
        await coa_adapter.deliver(d)
    assert str(d.envelope.message_id) not in received(coa)["messageIds"]


async def test_resend_is_eliminated_as_duplicate(coa_adapter: CoaAdapter, coa) -> None:
    klantprofiel_id = handover(coa)
    d = confirmation(klantprofiel_id)
    before = received(coa)
    first = await coa_adapter.deliver(d)
    again = await coa_adapter.deliver(d)
    after = received(coa)
    assert (first.detail, again.detail) == ("ontvangen", "duplicaat")
    assert first.partner_reference == again.partner_reference
    assert after["count"] == before["count"] + 1
    assert after["duplicatesEliminated"] == before["duplicatesEliminated"] + 1


async def test_unknown_oin_is_rejected(coa, http: httpx.AsyncClient) -> None:
    adapter = CoaAdapter("coa", coa_config(f"{coa.url}/v1", oin="00000004000000009000"), http)
    with pytest.raises(PartnerRejected, match="oin_unknown"):
        await adapter.deliver(confirmation(handover(coa)))


def test_transaction_id_must_be_the_message_id(coa) -> None:
    doc = {**klantprofiel_json(), "messageId": str(uuid.uuid4())}
    response = httpx.post(
        f"{coa.url}/v1/berichten", json=doc, headers={"X-OIN": HUB_OIN, "X-Transaction-Id": str(uuid.uuid4())}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "transaction_id_mismatch"
    assert response.headers["API-Version"] == "1.0.0"


async def test_delivery_without_json_payload_is_rejected(coa_adapter: CoaAdapter) -> None:
    with pytest.raises(PartnerRejected, match="payload_json"):
        await coa_adapter.deliver(delivery(b"<x/>", message_type="klantprofiel-ontvangst", receiver="coa"))


async def test_outage_then_recovery_delivers_once(coa_adapter: CoaAdapter, coa) -> None:
    d = confirmation(handover(coa))
    control(coa, down=True)
    with pytest.raises(PartnerUnavailable, match="503"):
        await coa_adapter.deliver(d)
    assert not (await coa_adapter.health()).ok
    control(coa, down=False)
    assert (await coa_adapter.deliver(d)).detail == "ontvangen"
    assert received(coa)["messageIds"].count(str(d.envelope.message_id)) == 1


async def test_refused_connections_are_transient_and_pass(coa_adapter: CoaAdapter, coa) -> None:
    klantprofiel_id = handover(coa)
    control(coa, refuseForSeconds=1.5)
    wait_until_refusing(coa)
    d = confirmation(klantprofiel_id)
    with pytest.raises(PartnerUnavailable, match="niet bereikbaar"):
        await coa_adapter.deliver(d)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert (await coa_adapter.deliver(d)).detail == "ontvangen"
            break
        except PartnerUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_slow_partner_is_transient(coa, http: httpx.AsyncClient) -> None:
    adapter = CoaAdapter("coa", coa_config(f"{coa.url}/v1", timeout_seconds=0.3), http)
    control(coa, delaySeconds=1.0)
    with pytest.raises(PartnerUnavailable, match="niet binnen"):
        await adapter.deliver(confirmation(None))


async def test_injected_faults_map_to_hub_errors(coa_adapter: CoaAdapter, coa) -> None:
    klantprofiel_id = handover(coa)
    control(coa, fault={"code": "druk", "transient": True, "count": 1})
    with pytest.raises(PartnerUnavailable):
        await coa_adapter.deliver(confirmation(klantprofiel_id))
    control(coa, fault={"code": "bsn_onbekend", "transient": False, "count": 1})
    with pytest.raises(PartnerRejected, match="bsn_onbekend"):
        await coa_adapter.deliver(confirmation(klantprofiel_id))
    assert (await coa_adapter.deliver(confirmation(klantprofiel_id))).detail == "ontvangen"


async def test_unreachable_port_is_unavailable(http: httpx.AsyncClient) -> None:
    adapter = CoaAdapter("coa", coa_config(f"http://127.0.0.1:{free_port()}/v1"), http)
    with pytest.raises(PartnerUnavailable):
        await adapter.deliver(confirmation(None))


async def test_reconcile_finds_a_dropped_message(coa_adapter: CoaAdapter, coa) -> None:
    klantprofiel_id = handover(coa)
    day = datetime(2026, 10, 9, 8, tzinfo=UTC)
    sent = [confirmation(klantprofiel_id, created_at=day + timedelta(minutes=i)) for i in range(3)]
    for d in sent:
        await coa_adapter.deliver(d)
    dropped = str(sent[0].envelope.message_id)
    assert httpx.delete(f"{coa.url}/control/received/{dropped}").status_code == 204
    coa_received, _ = await coa_adapter.reconcile("2026-10-09")
    ours = PeriodSummary.of("2026-10-09", [(d.envelope.message_id, d.envelope.type) for d in sent])
    assert coa_received.count == 2
    assert compare(ours, coa_received).missing_at_receiver == (dropped,)


def test_every_path_of_the_contract_is_served(coa) -> None:
    doc = openapi()
    assert httpx.get(f"{coa.url}/v1/openapi.json").json() == doc
    for path, operations in doc["paths"].items():
        for method in operations:
            response = httpx.request(method.upper(), f"{coa.url}/v1{path}", headers={"X-OIN": HUB_OIN})
            assert response.status_code not in (404, 405), (method, path)
            assert response.headers["API-Version"] == doc["info"]["version"]


def test_simulators_offer_a_uvicorn_server_for_the_hubs_event_loop(tmp_path: Path) -> None:
    duo = duo_sim.server(port=free_port(), pki_dir=tmp_path / "pki", hub_url="http://127.0.0.1:9/wus/duo")
    coa = coa_sim.server(port=free_port(), hub_url="http://127.0.0.1:9/v1/berichten")
    assert duo.config.host == coa.config.host == "127.0.0.1"
    assert (tmp_path / "pki" / "duo.cert.pem").exists()
    with pytest.raises(ConfigurationError):
        coa_sim.server(host="0.0.0.0")


async def test_demo_wiring_helpers_connect_adapters_to_simulators(tmp_path: Path, http: httpx.AsyncClient) -> None:
    """The pieces `make run` uses: one PKI, two simulators, adapters built from adapter_config()."""
    pki_dir = tmp_path / "pki"
    duo_app = SimulatorServer(duo_sim.create_app(duo_sim.default_config(pki_dir)))
    coa_app = SimulatorServer(coa_sim.create_app())
    with duo_app, coa_app:
        duo = DuoAdapter("duo", duo_sim.adapter_config(duo_app.url, pki_dir), http)
        coa = CoaAdapter("coa", coa_sim.adapter_config(coa_app.url), http)
        assert (await duo.health()).ok
        assert (await coa.health()).ok
        assert (await duo.deliver(delivery(pip_xml()))).detail == "ONTVANGEN"
