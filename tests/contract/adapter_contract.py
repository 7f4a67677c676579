"""The behaviour every adapter must show, whatever its partner (kombu's shared transport tests).

Subclass :class:`AdapterContract` once per adapter (``class TestMagdaContract(AdapterContract)``)
and provide:

- an ``adapter`` fixture: a fresh adapter bound to a live partner (a simulator on
  loopback), built with the ``http`` client fixture;
- :meth:`AdapterContract.request_for`: a lookup that the partner answers with data,
  for each lookup kind the adapter declares;
- :meth:`AdapterContract.break_transiently`: make the partner fail in a way that is
  worth retrying (unavailable source, 503, SOAP server fault...);
- :meth:`AdapterContract.reply_hostile`: make the partner answer with a hostile or
  broken reply (XXE, wrong namespace, truncated, huge...).

The subclass's conftest provides an ``http`` fixture (an ``httpx.AsyncClient``) and
``anyio_backend``; ``tests/adapters/conftest.py`` does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

import httpx
import pytest

from hub.envelope import Envelope
from hub.errors import PartnerError, PartnerRejected, PartnerUnavailable
from hub.identifiers import INSZ
from hub.ports import Adapter, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult


def sample_delivery() -> Delivery:
    """One small message for a partner (a new message id each time)."""
    envelope = Envelope(
        message_id=uuid.uuid4(),
        type="aanmelding",
        version="1.0",
        sender="gemeente-gent",
        subject=INSZ("85073003328"),
        purpose="inburgering-opvolging",
    )
    return Delivery(envelope=envelope, receiver="partner", payload_xml=b"<bericht/>", payload_json=None)


class AdapterContract:
    """Shared tests; a subclass binds them to one adapter and its partner."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def adapter(self, http: httpx.AsyncClient) -> Adapter:
        raise NotImplementedError("a contract subclass provides the adapter fixture")

    def request_for(self, kind: str) -> LookupRequest:
        raise NotImplementedError("a contract subclass provides a lookup the partner answers")

    async def break_transiently(self) -> None:
        raise NotImplementedError("a contract subclass makes its partner fail transiently")

    async def reply_hostile(self) -> None:
        raise NotImplementedError("a contract subclass makes its partner reply with hostile XML")

    def delivery(self) -> Delivery:
        return sample_delivery()

    async def test_declares_capabilities_as_data(self, adapter: Adapter) -> None:
        assert isinstance(adapter, Adapter)
        assert isinstance(adapter.partner_id, str)
        assert adapter.partner_id
        caps = adapter.capabilities
        assert isinstance(caps, Capabilities)
        assert all(isinstance(kind, str) and kind for kind in caps.lookups)
        assert caps.deliver or caps.lookups or caps.notifications

    async def test_health_answers_with_serialisable_facts(self, adapter: Adapter) -> None:
        health = await adapter.health()
        assert isinstance(health, HealthStatus)
        assert health.ok, health.detail
        json.dumps(dict(health.facts))

    async def test_lookup_answers_every_declared_kind(self, adapter: Adapter) -> None:
        for kind in sorted(adapter.capabilities.lookups):
            result = await adapter.lookup(self.request_for(kind))
            assert isinstance(result, LookupResult)
            assert result.found
            assert all(isinstance(w, str) for w in result.warnings)
            json.dumps(dict(result.data))

    async def test_deliver_only_when_declared(self, adapter: Adapter) -> None:
        if adapter.capabilities.deliver:
            assert isinstance(await adapter.deliver(self.delivery()), DeliveryReceipt)
        else:
            with pytest.raises(PartnerRejected):
                await adapter.deliver(self.delivery())

    def operations(self, adapter: Adapter) -> list[Callable[[], Awaitable[object]]]:
        """One call per declared capability: each lookup kind, and deliver when declared."""
        ops: list[Callable[[], Awaitable[object]]] = [
            partial(adapter.lookup, self.request_for(kind)) for kind in sorted(adapter.capabilities.lookups)
        ]
        if adapter.capabilities.deliver:
            ops.append(partial(adapter.deliver, self.delivery()))
        assert ops, "an adapter declares at least one lookup or deliver"
        return ops

    async def test_transient_failure_raises_partner_unavailable(self, adapter: Adapter) -> None:
        await self.break_transiently()
        for operation in self.operations(adapter):
            with pytest.raises(PartnerUnavailable):
                await operation()

    async def test_hostile_reply_raises_partner_error_without_leaking_it(self, adapter: Adapter) -> None:
        await self.reply_hostile()
        for operation in self.operations(adapter):
            with pytest.raises(PartnerError) as caught:
                await operation()
            assert not isinstance(caught.value, PartnerUnavailable)
            assert "<" not in caught.value.detail

    async def test_aclose_is_idempotent_and_keeps_the_http_client(
        self, adapter: Adapter, http: httpx.AsyncClient
    ) -> None:
        await adapter.aclose()
        await adapter.aclose()
        assert not http.is_closed
