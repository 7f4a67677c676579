"""The adapter port: what the hub asks of every partner integration.

An adapter turns canonical messages into the partner's protocol and back. It
is named in configuration as ``"module:Class"`` and loaded by
:mod:`hub.registry`; the hub core never imports a concrete adapter. Every
adapter passes the same contract suite (``tests/contract/test_adapters.py``).

Adapters get their HTTP client through the constructor, so tests hand them
a client bound to a real local simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import httpx

from hub.envelope import Envelope, Message
from hub.errors import HubError
from hub.identifiers import BSN, INSZ

JSON = str | int | float | bool | None | list["JSON"] | dict[str, "JSON"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do, declared as data (kombu's ``implements``)."""

    deliver: bool = False
    lookups: frozenset[str] = frozenset()
    notifications: bool = False
    formats: frozenset[str] = frozenset({"xml"})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for one receiver, already minimised to the receiver's protocol.

    ``payload_xml`` is the payload element alone (its namespace declared); an adapter
    that sends the canonical envelope builds it with :func:`hub.envelope.to_xml`.
    ``payload_json`` is the same payload as canonical JSON, filled in for adapters whose
    ``capabilities.formats`` include ``"json"`` and None for the others.
    """

    envelope: Envelope
    receiver: str
    payload_xml: bytes
    payload_json: Mapping[str, JSON] | None
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """The partner's acknowledgement."""

    partner_reference: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """A synchronous question about one person (e.g. GeefPersoon by INSZ)."""

    kind: str
    subject: INSZ | BSN
    purpose: str
    requester: str
    params: Mapping[str, str] = field(default_factory=dict)
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The canonical answer; ``warnings`` carry partial-answer notices."""

    data: Mapping[str, JSON]
    warnings: tuple[str, ...] = ()
    found: bool = True


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """Is the partner reachable, and what do we know about its link."""

    ok: bool
    detail: str = ""
    facts: Mapping[str, JSON] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """A partner integration.

    Adapters raise :class:`hub.errors.PartnerUnavailable` for transient failures
    (the hub retries) and :class:`hub.errors.PartnerRejected` for permanent ones.
    """

    partner_id: str
    capabilities: Capabilities

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Push one message to the partner."""
        ...

    async def lookup(self, request: LookupRequest) -> LookupResult:
        """Answer a synchronous question about one person."""
        ...

    async def health(self) -> HealthStatus:
        """A harmless call that says whether the partner's link works."""
        ...

    async def aclose(self) -> None:
        """Release what the adapter holds (not the injected HTTP client)."""
        ...


class AdapterFactory(Protocol):
    """How the registry builds an adapter: partner id, its configuration, an HTTP client."""

    def __call__(self, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> Adapter: ...


class InboundMessage(Protocol):
    """What an inbound link hands the hub: a verified canonical message."""

    @property
    def message(self) -> Message: ...


class InboundLink(Protocol):
    """An adapter that also receives what its partner sends in over the partner's own protocol
    (e.g. DUO over Digikoppeling WUS): it verifies, lets the hub store, and answers."""

    async def handle(
        self,
        body: bytes,
        *,
        is_known: Callable[[uuid.UUID], bool | Awaitable[bool]],
        accept: Callable[[Any], Awaitable[tuple[bool, str | None]]],
        counts: Callable[[str], Awaitable[tuple[Mapping[str, str], Mapping[str, str]]]] | None = None,
        refused: Callable[[HubError], Awaitable[None]] | None = None,
    ) -> tuple[int, bytes]:
        """Verify ``body``; call ``accept`` for a message; return (HTTP status, response body)."""
        ...


@runtime_checkable
class RetryWindow(Protocol):
    """An adapter whose partner sets its own retry window (e.g. Digikoppeling: days, for
    partners that are not 24x7); the hub then follows it instead of its own backoff."""

    def next_attempt(self, attempts_made: int, first_attempt_at: datetime, now: datetime) -> datetime | None:
        """When to try again after ``attempts_made`` failed attempts, or None: the window is over."""
        ...
