"""Every adapter in this package passes the shared AdapterContract against its own simulator."""

from __future__ import annotations

import httpx
import pytest

from adapters.discimus import DiscimusAdapter
from adapters.magda import MagdaAdapter
from adapters.rijksregister import RijksregisterAdapter
from hub.identifiers import INSZ
from hub.ports import Adapter, LookupRequest
from hub.registry import build
from tests.adapters.conftest import Control, LiveServer, fast_config
from tests.contract.adapter_contract import AdapterContract


class _SimulatedContract(AdapterContract):
    control: Control
    server: LiveServer
    subject: str

    def request_for(self, kind: str) -> LookupRequest:
        params = {"van": "2000-01-01", "tot": "2030-12-31"} if kind == "inschrijvingen" else {}
        return LookupRequest(
            kind=kind, subject=INSZ(self.subject), purpose="inburgering-opvolging", requester="agii", params=params
        )

    async def break_transiently(self) -> None:
        await self.control.fault("99996")

    async def reply_hostile(self) -> None:
        await self.control.fault("xxe")


class TestMagdaContract(_SimulatedContract):
    @pytest.fixture
    def adapter(self, http: httpx.AsyncClient, magda_server: LiveServer, magda_control: Control) -> Adapter:
        self.server, self.control, self.subject = magda_server, magda_control, magda_server.sim.personas.regular
        return MagdaAdapter("magda", fast_config(magda_server.soap_url), http)


class TestDiscimusContract(_SimulatedContract):
    @pytest.fixture
    def adapter(self, http: httpx.AsyncClient, discimus_server: LiveServer, discimus_control: Control) -> Adapter:
        self.server, self.control, self.subject = discimus_server, discimus_control, discimus_server.sim.personas.nt2
        return DiscimusAdapter("discimus", fast_config(discimus_server.soap_url), http)

    async def reply_hostile(self) -> None:
        await self.control.fault("wrong_namespace")


class TestRijksregisterContract(_SimulatedContract):
    @pytest.fixture
    def adapter(
        self, http: httpx.AsyncClient, rijksregister_server: LiveServer, rijksregister_control: Control
    ) -> Adapter:
        self.server, self.control = rijksregister_server, rijksregister_control
        self.subject = rijksregister_server.sim.personas.regular
        return RijksregisterAdapter("rijksregister", fast_config(rijksregister_server.soap_url), http)

    async def break_transiently(self) -> None:
        await self.control.fault("soap_fault")

    async def reply_hostile(self) -> None:
        await self.control.fault("truncated")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spec",
    ["adapters.magda:MagdaAdapter", "adapters.discimus:DiscimusAdapter", "adapters.rijksregister:RijksregisterAdapter"],
)
async def test_the_hub_registry_builds_each_adapter_from_its_spec(spec: str, http: httpx.AsyncClient) -> None:
    adapter = build(spec, "partner", fast_config("http://127.0.0.1:9/soap"), http)
    assert adapter.partner_id == "partner"
    await adapter.aclose()
