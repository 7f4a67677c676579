"""The DUO and COA adapters pass the shared AdapterContract against their own simulators."""

from __future__ import annotations

import uuid
from dataclasses import replace

import httpx
import pytest

from adapters._digikoppeling.simserver import SimulatorServer
from adapters._digikoppeling.testpki import DemoPki
from adapters.coa import CoaAdapter
from adapters.duo import DuoAdapter
from hub.ports import Adapter, Delivery, LookupRequest
from hub.registry import build
from tests.contract.adapter_contract import AdapterContract

from .conftest import coa_config, control, delivery, hub_config, klantprofiel_json, pip_xml


class _SimulatedContract(AdapterContract):
    server: SimulatorServer

    def request_for(self, kind: str) -> LookupRequest:
        raise AssertionError(f"the Dutch adapters declare no lookups, yet {kind!r} was asked")

    async def break_transiently(self) -> None:
        control(self.server, down=True)

    async def reply_hostile(self) -> None:
        control(self.server, hostile={"kind": "xxe"})


class TestDuoContract(_SimulatedContract):
    @pytest.fixture
    def adapter(self, http: httpx.AsyncClient, pki: DemoPki, duo: SimulatorServer) -> Adapter:
        self.server = duo
        return DuoAdapter("duo", hub_config(pki, f"{duo.url}/wus/duo"), http)

    def delivery(self) -> Delivery:
        return delivery(pip_xml())


class TestDuoContractWithUnsignedAnswers(TestDuoContract):
    async def reply_hostile(self) -> None:
        control(self.server, hostile={"kind": "unsigned"})


class TestCoaContract(_SimulatedContract):
    @pytest.fixture
    def adapter(self, http: httpx.AsyncClient, coa: SimulatorServer) -> Adapter:
        self.server = coa
        return CoaAdapter("coa", coa_config(f"{coa.url}/v1"), http)

    def delivery(self) -> Delivery:
        """The municipality's confirmation of a klantprofiel COA handed over."""
        handover = httpx.post(f"{self.server.url}/control/send", json={"message": klantprofiel_json()}, timeout=10)
        assert handover.status_code == 200, handover.text
        d = delivery(b"<unused/>", message_type="klantprofiel-ontvangst", receiver="coa", payload_json={"ok": True})
        return replace(d, envelope=replace(d.envelope, conversation_id=uuid.UUID(handover.json()["messageId"])))


class TestCoaContractWithTruncatedAnswers(TestCoaContract):
    async def reply_hostile(self) -> None:
        control(self.server, hostile={"kind": "truncated"})


@pytest.mark.anyio
async def test_the_hub_registry_builds_both_adapters_from_their_specs(pki: DemoPki, http: httpx.AsyncClient) -> None:
    duo = build("adapters.duo:DuoAdapter", "duo", hub_config(pki, "http://127.0.0.1:9/wus/duo"), http)
    coa = build("adapters.coa:CoaAdapter", "coa", coa_config("http://127.0.0.1:9/v1"), http)
    assert (duo.partner_id, coa.partner_id) == ("duo", "coa")
    await duo.aclose()
    await coa.aclose()
