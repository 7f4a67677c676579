"""Contract-style tests every Dutch adapter passes (until the shared AdapterContract lands on main).

Each subclass provides an adapter bound to its running simulator, a delivery
the partner accepts, and the simulator's control; the behaviour asked is the
port's: declared capabilities, delivery with a receipt, at-least-once without
duplicates, transient failures as PartnerUnavailable, refusals as
PartnerRejected, health, lookups refused, aclose.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters._digikoppeling.simserver import SimulatorServer
from adapters._digikoppeling.testpki import DemoPki
from adapters.coa import CoaAdapter
from adapters.duo import DuoAdapter
from hub.errors import PartnerRejected, PartnerUnavailable
from hub.identifiers import parse_bsn
from hub.loopback import free_port
from hub.ports import Adapter, Delivery, LookupRequest

from .conftest import coa_config, control, delivery, hub_config, klantprofiel_json, pip_xml, received

pytestmark = pytest.mark.anyio


class NlAdapterContract:
    """What the port asks of an adapter, checked against a live simulator."""

    def make(self, url: str, http: httpx.AsyncClient) -> Adapter:
        raise NotImplementedError

    def accepted_delivery(self, server: SimulatorServer) -> Delivery:
        raise NotImplementedError

    @pytest.fixture
    def server(self) -> SimulatorServer:
        raise NotImplementedError

    async def test_honours_the_port(self, server: SimulatorServer, http: httpx.AsyncClient) -> None:
        adapter = self.make(server.url, http)
        assert isinstance(adapter, Adapter)
        assert adapter.capabilities.deliver
        assert adapter.capabilities.lookups == frozenset()

    async def test_delivers_and_gets_a_receipt(self, server: SimulatorServer, http: httpx.AsyncClient) -> None:
        d = self.accepted_delivery(server)
        receipt = await self.make(server.url, http).deliver(d)
        assert receipt.partner_reference
        assert str(d.envelope.message_id) in received(server)["messageIds"]

    async def test_redelivery_reaches_the_partner_once(self, server: SimulatorServer, http: httpx.AsyncClient) -> None:
        adapter = self.make(server.url, http)
        d = self.accepted_delivery(server)
        first = await adapter.deliver(d)
        second = await adapter.deliver(replace(d, attempt=2))
        assert first.partner_reference == second.partner_reference
        assert received(server)["messageIds"].count(str(d.envelope.message_id)) == 1

    async def test_outage_is_transient_and_nothing_is_lost(
        self, server: SimulatorServer, http: httpx.AsyncClient
    ) -> None:
        adapter = self.make(server.url, http)
        d = self.accepted_delivery(server)
        control(server, down=True)
        with pytest.raises(PartnerUnavailable):
            await adapter.deliver(d)
        control(server, down=False)
        await adapter.deliver(replace(d, attempt=2))
        assert str(d.envelope.message_id) in received(server)["messageIds"]

    async def test_permanent_refusal_is_rejected(self, server: SimulatorServer, http: httpx.AsyncClient) -> None:
        control(server, fault={"code": "geweigerd", "transient": False, "count": 1})
        with pytest.raises(PartnerRejected):
            await self.make(server.url, http).deliver(self.accepted_delivery(server))

    async def test_unreachable_partner_is_unavailable(self, http: httpx.AsyncClient, server: SimulatorServer) -> None:
        adapter = self.make(f"http://127.0.0.1:{free_port()}", http)
        d = self.accepted_delivery(server)
        with pytest.raises(PartnerUnavailable):
            await adapter.deliver(d)
        assert not (await adapter.health()).ok

    async def test_health_and_aclose(self, server: SimulatorServer, http: httpx.AsyncClient) -> None:
        adapter = self.make(server.url, http)
        assert (await adapter.health()).ok
        await adapter.aclose()
        assert not http.is_closed

    async def test_lookups_are_refused(self, server: SimulatorServer, http: httpx.AsyncClient) -> None:
        request = LookupRequest(kind="geef-persoon", subject=parse_bsn("111222333"), purpose="p", requester="r")
        with pytest.raises(PartnerRejected):
            await self.make(server.url, http).lookup(request)


class TestDuoAdapterContract(NlAdapterContract):
    @pytest.fixture
    def server(self, duo: SimulatorServer, pki: DemoPki) -> SimulatorServer:
        self.pki = pki
        return duo

    def make(self, url: str, http: httpx.AsyncClient) -> Adapter:
        return DuoAdapter("duo", hub_config(self.pki, f"{url}/wus/duo", timeout_seconds=3), http)

    def accepted_delivery(self, server: SimulatorServer) -> Delivery:
        return delivery(pip_xml())


class TestCoaAdapterContract(NlAdapterContract):
    @pytest.fixture
    def server(self, coa: SimulatorServer) -> SimulatorServer:
        return coa

    def make(self, url: str, http: httpx.AsyncClient) -> Adapter:
        return CoaAdapter("coa", coa_config(f"{url}/v1", timeout_seconds=3), http)

    def accepted_delivery(self, server: SimulatorServer) -> Delivery:
        handover = httpx.post(f"{server.url}/control/send", json={"message": klantprofiel_json()}, timeout=10)
        assert handover.status_code == 200, handover.text
        d = delivery(
            b"<unused/>", message_type="klantprofiel-ontvangst", receiver="coa", payload_json={"ontvangen": True}
        )
        return replace(d, envelope=replace(d.envelope, conversation_id=uuid.UUID(handover.json()["messageId"])))


async def test_each_adapter_plans_retries_in_its_own_window(pki: DemoPki, http: httpx.AsyncClient) -> None:
    duo = DuoAdapter(
        "duo", hub_config(pki, "http://127.0.0.1:1/wus/duo", retry_interval_seconds=3600, retry_window_days=2), http
    )
    coa = CoaAdapter(
        "coa", coa_config("http://127.0.0.1:1/v1", retry_interval_seconds=60, retry_window_days=0.01), http
    )
    start = datetime(2026, 10, 7, 10, tzinfo=UTC)
    assert duo.next_attempt(1, start, start) == start + timedelta(hours=1)
    assert duo.next_attempt(40, start, start + timedelta(days=2)) is None
    assert coa.next_attempt(1, start, start) == start + timedelta(minutes=1)
    assert coa.next_attempt(14, start, start + timedelta(minutes=14)) is None


HOSTILE = ["xxe", "truncated", "wrong-envelope", "huge", "unsigned", "not-xml", "not-json", "wrong-shape"]


@pytest.mark.parametrize("kind", HOSTILE)
async def test_duo_hostile_answer_is_rejected_without_leaking_it(
    kind: str, pki: DemoPki, duo: SimulatorServer, http: httpx.AsyncClient
) -> None:
    adapter = DuoAdapter("duo", hub_config(pki, f"{duo.url}/wus/duo"), http)
    control(duo, hostile={"kind": kind, "count": 1})
    with pytest.raises(PartnerRejected) as caught:
        await adapter.deliver(delivery(pip_xml()))
    assert "<" not in caught.value.detail
    assert "passwd" not in caught.value.detail
    assert (await adapter.deliver(delivery(pip_xml()))).detail == "ONTVANGEN"


@pytest.mark.parametrize("kind", HOSTILE)
async def test_coa_hostile_answer_is_rejected_without_leaking_it(
    kind: str, coa: SimulatorServer, http: httpx.AsyncClient
) -> None:
    adapter = CoaAdapter("coa", coa_config(f"{coa.url}/v1"), http)
    control(coa, hostile={"kind": kind, "count": 1})
    with pytest.raises(PartnerRejected) as caught:
        await adapter.deliver(delivery(b"<x/>", message_type="bericht", receiver="coa", payload_json={"a": 1}))
    assert "<" not in caught.value.detail
    assert "passwd" not in caught.value.detail
