"""The hub's use cases, independent of the channel a message arrived on.

``Hub`` is built once from :class:`hub.settings.Settings` and owns the info
model, protocols, router, partner directory, store and transport. The API,
the portal and the CLI call it; it never knows FastAPI.

Ingest (one message)::

    parse -> envelope -> validate (XSD, identifiers) -> authorize (protocol)
          -> route -> ONE transaction (message + audit received/routed + outbox)
          -> answer (a replay of the same id gets the same answer)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import httpx
import orjson
import structlog
from lxml import etree
from sqlalchemy import Engine, String, and_, bindparam, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from hub import envelope as env
from hub import xmlsafe
from hub.audit import AuditEvent
from hub.auth import check_scope
from hub.crypto import MasterKeys, SubjectHasher, decrypt, encrypt, forget_ciphers, new_data_key
from hub.directory import Directory, Forwarding
from hub.doorbell import Doorbell
from hub.errors import (
    Conflict,
    ErrorCollector,
    HubError,
    InvalidParam,
    MalformedInput,
    NotAllowed,
    NotFound,
    PartnerError,
    UnknownPartner,
    ValidationFailed,
)
from hub.http import partner_client
from hub.identifiers import BSN, INSZ, IdentifierError, parse_insz
from hub.infomodel import InfoModel, MessageType
from hub.metrics import Metrics
from hub.partners import Partner, PartnerDirectory
from hub.ports import JSON, Adapter, LookupRequest
from hub.protocols import PartnerRef, Protocol, ProtocolBook, fields_outside, minimize, minimize_json
from hub.registry import build as build_adapter
from hub.routing import Router
from hub.settings import Settings
from hub.signals import SIGNAL_TYPES, SignalNotices
from hub.store import migrate
from hub.store.database import Tx, Writer, make_engine
from hub.store.tables import data_keys, deliveries, messages, outbox
from hub.tls import OutboundTLS
from hub.transport import Job, Transport

log = structlog.get_logger(__name__)

# built once: SQLAlchemy finds it in its compiled cache without building and hashing it per read
_MESSAGE_ROW = select(messages).where(messages.c.id == bindparam("message_id"))


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to an accepted message (the same for a replay of its id)."""

    message_id: str
    receivers: tuple[str, ...]
    received_at: datetime
    duplicate: bool = False
    forwarding: Forwarding | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messageId": self.message_id,
            "status": "accepted",
            "receivers": list(self.receivers),
            "receivedAt": self.received_at.isoformat(),
        }
        if self.forwarding is not None:
            out["forwarding"] = self.forwarding.as_json()
        return out


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message read back from the store, payload decrypted."""

    envelope: env.Envelope
    payload: etree._Element | None
    protocol_id: str
    received_at: datetime
    channel: str


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class KeyRing:
    """Data keys per (protocol, month), unwrapped once and cached."""

    def __init__(self, master: MasterKeys) -> None:
        self.master = master
        self._by_scope: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._by_id: dict[int, bytes] = {}

    @staticmethod
    def _context(protocol_id: str, period: str) -> str:
        return f"{protocol_id}|{period}"

    def cached(self, protocol_id: str, period: str) -> tuple[int, bytes] | None:
        return self._by_scope.get((protocol_id, period))

    def ensure_unit(self, protocol_id: str, period: str) -> Any:
        """A unit of work that returns the (id, key) of the scope, creating it if needed."""

        def unit(tx: Tx) -> tuple[int, bytes]:
            row = (
                tx.conn.execute(
                    select(data_keys).where(and_(data_keys.c.protocol_id == protocol_id, data_keys.c.period == period))
                )
                .mappings()
                .first()
            )
            if row is None:
                key = new_data_key()
                result = tx.conn.execute(
                    insert(data_keys).values(
                        protocol_id=protocol_id,
                        period=period,
                        master_kid=self.master.active_kid,
                        wrapped_key=self.master.wrap(key, self._context(protocol_id, period)),
                        created_at=tx.now,
                    )
                )
                pk = result.inserted_primary_key
                return int(pk[0]) if pk else 0, key
            return int(row["id"]), self._unwrap(row)

        return unit

    def _unwrap(self, row: Mapping[Any, Any]) -> bytes:
        if row["wrapped_key"] is None:
            raise NotFound(f"de gegevens van {row['protocol_id']} {row['period']} zijn vernietigd (bewaartermijn)")
        return self.master.unwrap(
            row["master_kid"], row["wrapped_key"], self._context(row["protocol_id"], row["period"])
        )

    def remember(self, protocol_id: str, period: str, key_id: int, key: bytes) -> None:
        self._by_scope[(protocol_id, period)] = (key_id, key)
        self._by_id[key_id] = key

    def by_id(self, conn: Any, key_id: int) -> bytes:
        key = self._by_id.get(key_id)
        if key is None:
            row = conn.execute(select(data_keys).where(data_keys.c.id == key_id)).mappings().first()
            if row is None:
                raise NotFound(f"data key {key_id} bestaat niet")
            key = self._unwrap(row)
            self._by_id[key_id] = key
        return key

    def cached_by_id(self, key_id: int) -> bytes | None:
        """The data key if it is unwrapped already (no database needed)."""
        return self._by_id.get(key_id)

    def forget(self, key_id: int) -> None:
        forget_ciphers()
        self._by_id.pop(key_id, None)
        for scope, (kid, _) in list(self._by_scope.items()):
            if kid == key_id:
                del self._by_scope[scope]


class Hub:
    """Everything the hub does, built from settings and started once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.infomodel = InfoModel(settings.schemas_dir)
        self.protocols = ProtocolBook.load(settings.protocols_dir)
        self.router = Router.load(settings.routing_file)
        self.partners = PartnerDirectory()
        self.hasher = SubjectHasher(settings.audit_key_bytes)
        self.keys = KeyRing(
            MasterKeys(settings.payload_key_bytes, [base64.b64decode(k) for k in settings.payload_old_keys])
        )
        self.engine: Engine = make_engine(settings)
        store = settings.store
        group_commit: dict[str, Any] = {"batch_max": store.batch_max, "linger": settings.writer_linger_seconds}
        # every process of `knooppunt run --processes N` writes itself, in turns (hub.store.writelock)
        self.writer = Writer(make_engine(settings, writer=True), **group_commit)
        self.directory = Directory(
            engine=self.engine,
            writer=self.writer,
            hasher=self.hasher,
            keys=self.keys,
            protocols=self.protocols,
            partners=self.partners,
            allow_test_numbers=settings.insz_test_numbers,
        )
        self.transport: Transport | None = None
        # an extra API process of `knooppunt run --processes N` (no transport) rings the leader's
        # relay after committing messages, so they are published at once (hub.doorbell); set at start
        self.doorbell: Doorbell | None = None
        self.http: httpx.AsyncClient | None = None
        # outgoing TLS profiles (checked at start) and the partner client of each profile in use
        self.outbound: OutboundTLS | None = None
        self._profile_http: dict[str, httpx.AsyncClient] = {}
        self._adapters: dict[str, Adapter] = {}
        # the configuration each adapter was built from: a changed one is rebuilt (plateau moves)
        self._adapter_specs: dict[str, tuple[str, dict[str, Any]]] = {}
        self._retired: list[Adapter] = []
        self._partners_loaded = 0.0
        self.started = False
        self.metrics = Metrics()
        self.signals = SignalNotices(self)

    # -- life cycle -------------------------------------------------------------

    def open_store(self) -> None:
        """Migrate, start the writer and load partners (enough for the CLI)."""
        migrate.upgrade(self.engine)
        self.writer.start()
        self.reload_partners()

    def reload_partners(self) -> None:
        with self.engine.connect() as conn:
            self.partners.load(conn)
        self._partners_loaded = time.monotonic()

    def refresh_partners(self) -> None:
        """Reload the partner configuration when it is older than ``partners_refresh_seconds``.

        Moving a partner to another plateau (another adapter, or none) is a change in
        its configuration only; the running hub follows it without a restart.
        """
        if time.monotonic() - self._partners_loaded >= self.settings.partners_refresh_seconds:
            try:
                self.reload_partners()
            except SQLAlchemyError as exc:
                log.warning("partners_reload_failed", error=exc.__class__.__name__)

    async def start(self, transport: Transport | None) -> None:
        """None: an API-only process; what it accepts stays unpublished for another process's relay.

        Raises:
            ConfigurationError: an outgoing TLS profile cannot be loaded (hub/tls.py); nothing started.
        """
        self.outbound = OutboundTLS(self.settings.outbound_tls)
        self.open_store()
        # what this loop submits (the API's messages, the dispatcher's records) it writes itself
        self.writer.attach(asyncio.get_running_loop())
        self.transport = transport
        relay = self.settings.delivery.relay_socket
        if transport is None and relay is not None and self.doorbell is None:
            self.doorbell = Doorbell(relay)
        self.http = partner_client(self.settings.delivery.timeout_seconds)
        self.started = True

    async def stop_adapters(self) -> None:
        for adapter in [*self._adapters.values(), *self._retired]:
            try:
                await adapter.aclose()
            except HubError as exc:
                log.warning("adapter_close_failed", partner=adapter.partner_id, error=str(exc))
        self._adapters.clear()
        self._retired.clear()
        # the profiles' clients serve these adapters only; a later adapter builds its client again
        clients = list(self._profile_http.values())
        self._profile_http.clear()
        for client in clients:
            await client.aclose()

    async def stop(self) -> None:
        await self.stop_adapters()
        if self.transport is not None:
            await self.transport.close()
        if self.http is not None:
            await self.http.aclose()
        self.close_store()
        self.started = False

    def close_store(self) -> None:
        self.writer.stop()
        if self.doorbell is not None:
            self.doorbell.close()
            self.doorbell = None
        self.directory.reads.close()
        self.writer.engine.dispose()
        self.engine.dispose()

    # -- adapters -----------------------------------------------------------------

    def adapter_for(self, partner: Partner) -> Adapter | None:
        if not partner.adapter:
            return None
        spec = (partner.adapter, dict(partner.adapter_config))
        adapter = self._adapters.get(partner.id)
        if adapter is not None and self._adapter_specs.get(partner.id) != spec:
            self._retired.append(adapter)  # closed at stop; a delivery may still be using it
            adapter = None
        if adapter is None:
            adapter = build_adapter(partner.adapter, partner.id, partner.adapter_config, self._client_for(partner))
            self._adapters[partner.id] = adapter
            self._adapter_specs[partner.id] = spec
        return adapter

    def _client_for(self, partner: Partner) -> httpx.AsyncClient:
        """The partner client for this partner's outgoing TLS profile (``tls_profile``, else
        ``default``), built at first use; the hub's one client when it has none."""
        if self.http is None:
            raise HubError("de hub is niet gestart")
        if self.outbound is None:  # the CLI's lookups set self.http without start()
            self.outbound = OutboundTLS(self.settings.outbound_tls)
        profile = self.outbound.choose(partner.id, partner.adapter_config)
        if profile is None:
            return self.http
        client = self._profile_http.get(profile.name)
        if client is None:
            client = partner_client(self.settings.delivery.timeout_seconds, ssl_context=profile.context)
            self._profile_http[profile.name] = client
        return client

    # -- ingest -------------------------------------------------------------------

    def parse_xml(self, body: bytes) -> env.Message:
        """Body bytes -> envelope + payload element, or a specific input error."""
        root = xmlsafe.parse(body, max_bytes=self.settings.max_body_bytes, max_depth=self.settings.max_xml_depth)
        self.infomodel.validate_envelope(root)
        return env.from_xml(root, allow_test_numbers=self.settings.insz_test_numbers)

    def parse_json(self, body: bytes) -> env.Message:
        """Body bytes (JSON) -> envelope + payload element converted through the type's XSD."""
        xmlsafe.check_size(body, self.settings.max_body_bytes)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedInput(f"JSON is niet leesbaar: {exc}") from exc
        envelope, payload = env.from_json(doc, allow_test_numbers=self.settings.insz_test_numbers)
        mtype = self.infomodel.get(envelope.type, envelope.version)
        return env.Message(envelope, self.infomodel.json_to_xml(mtype, payload))

    async def accept(self, caller: Partner, message: env.Message, *, channel: str, pointer: str = "xpath") -> Accepted:
        """Validate, authorize, route and store one message; durable before it returns.

        Raises:
            HubError: a specific 4xx error; nothing is stored then, and a "refused"
                audit record names the caller and the reason.
        """
        try:
            routed = self._route(caller, message, pointer)
            read = None
            if routed.to_followers and routed.subject_hash is not None:
                # person-bound: who follows this person, read with the other messages of this turn
                read = await self.directory.read_followers(routed.subject_hash)
            prepared = self._prepare(caller, routed, read)
        except HubError as exc:
            await self._refused(caller, message.envelope, exc, channel)
            raise
        mtype, protocol, envelope, payload_bytes, forwarding, subject_hash = prepared
        # payloads are keyed by the month they arrived in: retention counts from receipt
        now = datetime.now(UTC)
        period = f"{now.year:04d}-{now.month:02d}"  # strftime("%Y-%m"), without its cost per message
        key_ref = self.keys.cached(protocol.id, period)
        if key_ref is None:
            key_id, key = await self.writer.submit(self.keys.ensure_unit(protocol.id, period))
            self.keys.remember(protocol.id, period, key_id, key)
            key_ref = (key_id, key)
        message_id = str(envelope.message_id)
        nonce, ciphertext = encrypt(key_ref[1], payload_bytes, message_id.encode())
        digest = _digest(envelope, payload_bytes)
        directory_effects = None
        if forwarding is not None and forwarding.effects and envelope.subject_type and envelope.subject_id:
            directory_effects = self.directory.effects_unit(
                forwarding, envelope.subject_type, envelope.subject_id, await self.directory.key(), subject_hash
            )
        unit = _IngestUnit(
            envelope=envelope,
            protocol_id=protocol.id,
            digest=digest,
            subject_hash=subject_hash,
            key_id=key_ref[0],
            nonce=nonce,
            ciphertext=ciphertext,
            size=len(payload_bytes),
            channel=channel,
            transport=self.transport,
            forwarding=forwarding,
            directory_effects=directory_effects,
            ring=self.doorbell.ring if self.doorbell is not None else None,
        )
        result = await self.writer.submit(unit)
        if result.duplicate:
            log.info("message_replayed", message_id=message_id, partner=caller.id)
        else:
            self.metrics.accepted.labels(caller.id).inc()
            log.info(
                "message_accepted",
                message_id=message_id,
                partner=caller.id,
                type=mtype.name,
                receivers=list(result.receivers),
                correlation_id=str(envelope.conversation_id or message_id),
            )
        if mtype.name in SIGNAL_TYPES:
            # a replay sends the (same) notices again: a crash after the signal loses none
            await self.signals.after_signal(caller, envelope, message.payload, result)
        return result

    def _route(self, caller: Partner, message: env.Message, pointer: str) -> _Routed:
        """The checks of an incoming message up to routing (the first half of :meth:`_prepare`;
        the reference directory's read comes in between)."""
        envelope = message.envelope
        payload = message.payload
        if envelope.sender and envelope.sender != caller.id:
            raise NotAllowed(
                f"afzender {envelope.sender} is niet de aangemelde partner {caller.id}",
                invalid_params=[InvalidParam("sender", "moet de aangemelde partner zijn", "sender")],
            )
        check_scope(caller, envelope.purpose)  # an OAuth2 token names the protocols it is good for
        mtype = self.infomodel.get(envelope.type, envelope.version)
        self.infomodel.validate_payload(
            mtype, payload, allow_test_numbers=self.settings.insz_test_numbers, pointer=pointer
        )
        if mtype.aggregated and envelope.subject is not None:
            raise ValidationFailed(
                f"{mtype.name} is geaggregeerd en gaat over niemand: laat subject weg",
                invalid_params=[InvalidParam("subject", "geen betrokkene bij geaggregeerde berichten", "subject")],
            )
        if not mtype.aggregated and envelope.subject is None:
            raise ValidationFailed(
                "de betrokkene (subject) ontbreekt",
                invalid_params=[InvalidParam("subject", "INSZ of BSN van de persoon is verplicht", "required")],
            )
        subject_type, subject_id = envelope.subject_type, envelope.subject_id
        found = self.infomodel.subject_of(mtype, payload)
        if found is not None and (found[0], found[1]) != (subject_type, subject_id):
            raise ValidationFailed(
                "de betrokkene in de envelop verschilt van de persoon in de payload",
                invalid_params=[InvalidParam("subject", "moet gelijk zijn aan " + mtype.subject_field, "subject")],
            )
        # who may send what under which protocol is known before routing; say that first
        protocol = self.protocols.authorize(
            purpose=envelope.purpose, sender=caller.ref, message_type=mtype.name, receivers=()
        )
        fixed, to_followers = self.router.resolve(mtype.name, caller.id, payload, self.partners.code_owner)
        return _Routed(mtype, protocol, envelope, payload, fixed, to_followers, self.subject_hash(envelope))

    def _prepare(
        self, caller: Partner, routed: _Routed, read: tuple[date, list[tuple[str, str]]] | None
    ) -> tuple[MessageType, Protocol, env.Envelope, bytes, Forwarding | None, str | None]:
        """Every check of an incoming message after :meth:`_route`, with the reference
        directory's ``read`` for a person-bound one; -> type, protocol, settled envelope, payload
        bytes, forwarding (person-bound) and the subject's keyed hash (computed once, for all
        who need it)."""
        mtype, protocol, envelope, payload, fixed, _, subject_hash = routed
        receivers = envelope.receivers or fixed
        forwarding = None
        if read is not None and envelope.subject_type and envelope.subject_id:
            # person-bound: the reference directory decides, and "nobody" is an answer, not an error
            forwarding = self.directory.plan(
                protocol=protocol,
                sender=caller,
                message_type=mtype.name,
                subject_type=envelope.subject_type,
                subject_id=envelope.subject_id,
                payload=payload,
                fixed=fixed,
                code_owner=self.partners.code_owner,
                id_hash=subject_hash,
                read=read,
            )
            if not envelope.receivers:
                receivers = forwarding.receivers
        if not receivers and forwarding is None:
            raise NotAllowed(
                f"geen ontvanger gevonden voor {mtype.name} van {caller.id}: geen routeringsregel past",
                invalid_params=[
                    InvalidParam(
                        "receivers", "geef een ontvanger of een gemeentecode die gerouteerd kan worden", "routing"
                    )
                ],
            )
        unknown = ErrorCollector()
        refs = []
        for i, receiver in enumerate(receivers):
            partner = self.partners.get(receiver)
            if partner is None or not partner.active:
                unknown.add(f"receivers/{i}", f"onbekende of inactieve partner {receiver!r}", "unknown_partner")
            else:
                refs.append(partner.ref)
        if unknown.params:
            raise UnknownPartner("onbekende ontvanger", invalid_params=unknown.params)
        # the rest of protocols.authorize: purpose, type and sender passed above, for the same protocol
        self.protocols.authorize_receivers(protocol, refs)
        extra = fields_outside(payload, protocol.fields)
        if extra:
            raise NotAllowed(
                f"protocol {protocol.id} staat deze velden niet toe (dataminimalisatie)",
                invalid_params=[
                    InvalidParam(f, "veld niet toegestaan onder dit protocol", "minimisation") for f in extra
                ],
            )
        if forwarding is not None and envelope.receivers:
            # receivers the sender names itself are served only if the directory allows them too
            forwarding = forwarding.restricted_to(envelope.receivers)
            receivers = forwarding.receivers
        # one copy with everything the hub settled on: the sender, the receivers, the trace
        envelope = envelope.evolve(
            sender=caller.id,
            receivers=tuple(receivers),
            traceparent=envelope.traceparent or env.new_traceparent(),
        )
        return mtype, protocol, envelope, etree.tostring(payload), forwarding, subject_hash

    async def _refused(self, caller: Partner, envelope: env.Envelope | None, exc: HubError, channel: str) -> None:
        await self.writer.submit(self.refused_unit(caller.id, envelope, exc, channel))

    def refused_unit(self, caller_id: str | None, envelope: env.Envelope | None, exc: HubError, channel: str) -> Any:
        """An audit "refused" record (the only thing a refused message leaves behind)."""
        detail: dict[str, Any] = {"code": exc.code, "reason": exc.detail[:500], "channel": channel}
        subject_type = subject_hash = None
        if envelope is not None:
            subject_type = envelope.subject_type
            subject_hash = self.subject_hash(envelope)
        event = AuditEvent(
            "refused",
            status="refused",
            trace_id=envelope.trace_id if envelope else "",
            message_id=str(envelope.message_id) if envelope else None,
            message_type=envelope.type if envelope else None,
            sender=caller_id,
            protocol_id=envelope.purpose if envelope else None,
            subject_type=subject_type,
            subject_hash=subject_hash,
            detail=detail,
        )

        def unit(tx: Tx) -> None:
            tx.audit(event)

        return unit

    async def refuse_unparsed(self, caller: Partner, exc: HubError, channel: str) -> None:
        """Audit a refusal that happened before an envelope could be read."""
        await self.writer.submit(self.refused_unit(caller.id, None, exc, channel))

    # -- synchronous lookups --------------------------------------------------------

    async def lookup(
        self,
        requester: PartnerRef,
        kind: str,
        subject: str,
        *,
        purpose: str,
        params: Mapping[str, str] | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Ask a partner a question about one person, as a protocol allows; audited "consulted".

        Raises:
            ValidationFailed: the INSZ is not valid.
            NotAllowed: no protocol allows this requester this question for this purpose.
            PartnerError: the partner could not answer (audited "failed").
        """
        try:
            insz = parse_insz(subject, allow_test_numbers=self.settings.insz_test_numbers)
        except IdentifierError as exc:
            raise ValidationFailed(
                "ongeldig INSZ", invalid_params=[InvalidParam("insz", str(exc), "identifier")]
            ) from exc
        protocol = self.protocols.authorize_lookup(purpose=purpose, requester=requester, kind=kind)
        partner_id = self.router.lookups.get(kind)
        partner = self.partners.get(partner_id) if partner_id else None
        if partner is None:
            raise NotFound(f"geen partner ingesteld die opvraging {kind!r} beantwoordt")
        if not protocol.allows_receiver(partner.ref):
            raise NotAllowed(f"protocol {protocol.id} staat opvragingen bij {partner.id} niet toe")
        adapter = self.adapter_for(partner)
        if adapter is None or kind not in adapter.capabilities.lookups:
            raise NotFound(f"{partner.id} beantwoordt geen opvraging {kind!r}")
        subject_hash = self.hasher("INSZ", str(insz))
        trace = env.new_traceparent()
        request = LookupRequest(
            kind=kind,
            subject=insz,
            purpose=protocol.id,
            requester=requester.id,
            params=dict(params or {}),
            trace_id=trace.split("-")[1],
        )
        common: dict[str, Any] = {
            "trace_id": request.trace_id,
            "sender": requester.id,
            "receiver": partner.id,
            "actor": actor,
            "protocol_id": protocol.id,
            "subject_type": "INSZ",
            "subject_hash": subject_hash,
        }
        try:
            result = await adapter.lookup(request)
        except PartnerError as exc:
            failed = AuditEvent("failed", status="failed", detail={"lookup": kind, "error": exc.detail[:500]}, **common)
            await self.writer.submit(_AuditUnit(failed))
            raise
        data = minimize_json(result.data, protocol.fields)
        consulted = AuditEvent(
            "consulted",
            status="found" if result.found else "not_found",
            detail={"lookup": kind, "fields": list[JSON](sorted(data)), "warnings": len(result.warnings)},
            **common,
        )
        await self.writer.submit(_AuditUnit(consulted))
        log.info("person_consulted", partner=partner.id, requester=requester.id, lookup=kind, found=result.found)
        return {"found": result.found, "data": data, "waarschuwingen": list(result.warnings), "bron": partner.id}

    # -- reconciliation -------------------------------------------------------------

    def exchange_counts(self, partner_id: str, period: str) -> tuple[dict[str, str], dict[str, str]]:
        """What the hub received from a partner, and delivered to it, in a period (``YYYY-MM[-DD]``
        of the message's createdAt): two ``{message id: type}`` maps, for a completeness check."""
        like = f"{period}%"
        created = func.cast(messages.c.created_at, String)
        with self.engine.connect() as conn:
            received = conn.execute(
                select(messages.c.id, messages.c.type).where(and_(messages.c.sender == partner_id, created.like(like)))
            ).all()
            sent = conn.execute(
                select(messages.c.id, messages.c.type)
                .join(deliveries, deliveries.c.message_id == messages.c.id)
                .where(
                    and_(
                        deliveries.c.receiver == partner_id,
                        deliveries.c.status == "delivered",
                        created.like(like),
                    )
                )
            ).all()
        return {r.id: r.type for r in received}, {r.id: r.type for r in sent}

    # -- reading ------------------------------------------------------------------

    def load_message(self, message_id: str, *, with_payload: bool = True) -> StoredMessage:
        """One stored message, decrypted.

        Raises:
            NotFound: no such message, or its payload was destroyed after its retention period.
        """
        with self.engine.connect() as conn:
            row = conn.execute(_MESSAGE_ROW, {"message_id": message_id}).mappings().first()
            if row is None:
                raise NotFound(f"bericht {message_id} bestaat niet")
            return self._stored(conn, row, with_payload=with_payload)

    def warm_keys(self, conn: Any, rows: Iterable[Mapping[Any, Any]]) -> None:
        """Unwrap and cache the data keys of message rows, so :meth:`stored_from_row` needs no
        database (delivery workers read a batch of rows in a thread, then decrypt in the loop)."""
        for row in rows:
            if row["ciphertext"] is not None:
                # a destroyed key: stored_from_row says so for this message alone
                with contextlib.suppress(NotFound):
                    self.keys.by_id(conn, int(row["data_key_id"]))

    def stored_from_row(self, row: Mapping[Any, Any]) -> StoredMessage:
        """A row of ``messages``, decrypted and parsed (see :meth:`warm_keys`).

        Raises:
            NotFound: the payload was destroyed after its retention period.
        """
        return self._stored(None, row, with_payload=True)

    def _stored(self, conn: Any | None, row: Mapping[Any, Any], *, with_payload: bool) -> StoredMessage:
        message_id = str(row["id"])
        payload = None
        if with_payload:
            if row["ciphertext"] is None:
                raise NotFound(f"de inhoud van bericht {message_id} is vernietigd na de bewaartermijn")
            key_id = int(row["data_key_id"])
            key = self.keys.cached_by_id(key_id)
            if key is None:  # not unwrapped yet: read it, on the caller's connection if it has one
                with contextlib.nullcontext(conn) if conn is not None else self.engine.connect() as c:
                    key = self.keys.by_id(c, key_id)
            plain = decrypt(key, row["nonce"], row["ciphertext"], message_id.encode())
            payload = etree.fromstring(plain, parser=xmlsafe.parser())
        return StoredMessage(
            envelope=self._envelope_of(row),
            payload=payload,
            protocol_id=row["protocol_id"],
            received_at=_utc(row["received_at"]),
            channel=row["channel"],
        )

    def _envelope_of(self, row: Mapping[Any, Any]) -> env.Envelope:
        # The subject id itself is not stored in the row (only its keyed hash);
        # it is inside the encrypted payload. The envelope read back carries a
        # placeholder that callers replace from the payload when they need it.
        placeholder: INSZ | BSN | None = None
        if row["subject_type"] == "INSZ":
            placeholder = INSZ("")
        elif row["subject_type"] == "BSN":
            placeholder = BSN("")
        return env.Envelope(
            message_id=uuid.UUID(row["id"]),
            type=row["type"],
            version=row["version"],
            sender=row["sender"],
            subject=placeholder,
            purpose=row["protocol_id"],
            receivers=tuple(row["receivers"]),
            conversation_id=uuid.UUID(row["conversation_id"]) if row["conversation_id"] else None,
            traceparent=row["traceparent"],
            created_at=_utc(row["created_at"]),
        )

    def message_status(self, caller: Partner, message_id: str) -> dict[str, Any]:
        """Status of one message and its deliveries, for its sender or one of its receivers."""
        try:
            uuid.UUID(message_id)
        except ValueError as exc:
            raise NotFound(f"bericht {message_id} bestaat niet") from exc
        with self.engine.connect() as conn:
            row = conn.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
            if row is None or (caller.id != row["sender"] and caller.id not in row["receivers"]):
                # the same answer whether it does not exist or is not yours
                raise NotFound(f"bericht {message_id} bestaat niet")
            query = select(deliveries).where(deliveries.c.message_id == message_id)
            if caller.id != row["sender"]:
                query = query.where(deliveries.c.receiver == caller.id)
            rows = conn.execute(query.order_by(deliveries.c.receiver)).mappings().all()
        return {
            "messageId": message_id,
            "type": row["type"],
            "version": row["version"],
            "sender": row["sender"],
            "purpose": row["protocol_id"],
            "receivedAt": _utc(row["received_at"]).isoformat(),
            "deliveries": [
                {
                    "receiver": d["receiver"],
                    "status": d["status"],
                    "attempts": d["attempts"],
                    "deliveredAt": _utc(d["delivered_at"]).isoformat() if d["delivered_at"] else None,
                    "nextAttemptAt": _utc(d["next_attempt_at"]).isoformat() if d["next_attempt_at"] else None,
                    "lastError": d["last_error"],
                }
                for d in rows
            ],
        }

    def inbox(
        self, caller: Partner, *, after: int = 0, limit: int = 50, message_type: str | None = None
    ) -> dict[str, Any]:
        """Messages for the calling partner, oldest first from a cursor, payload minimised to its protocol."""
        limit = max(1, min(limit, 200))
        with self.engine.connect() as conn:
            query = (
                select(deliveries.c.id, deliveries.c.status, deliveries.c.delivered_at, messages.c.id.label("mid"))
                .join(messages, messages.c.id == deliveries.c.message_id)
                .where(and_(deliveries.c.receiver == caller.id, deliveries.c.id > after))
                .order_by(deliveries.c.id)
                .limit(limit)
            )
            if message_type:
                query = query.where(messages.c.type == message_type)
            rows = conn.execute(query).mappings().all()
        items = []
        for r in rows:
            stored = self.load_message(r["mid"])
            items.append(
                {
                    "cursor": r["id"],
                    "deliveryStatus": r["status"],
                    **self.render_for(caller, stored),
                }
            )
        return {"items": items, "next": items[-1]["cursor"] if len(items) == limit else None}

    def render_for(self, receiver: Partner, stored: StoredMessage) -> dict[str, Any]:
        """The JSON form a receiver sees: header plus the payload minimised to its protocol."""
        if stored.payload is None:
            raise NotFound("inhoud niet beschikbaar")
        protocol = self.protocols.get(stored.protocol_id)
        fields = protocol.fields_for(receiver.ref) if protocol else ()
        payload = minimize(stored.payload, fields)
        mtype = self.infomodel.get(stored.envelope.type, stored.envelope.version)
        envelope = self.with_subject_from_payload(mtype, stored.envelope, stored.payload)
        out = env.header_to_json(envelope)
        out["receivedAt"] = stored.received_at.isoformat()
        out["payload"] = self.infomodel.xml_to_json(mtype, payload)
        return out

    def subject_hash(self, envelope: env.Envelope) -> str | None:
        """The keyed hash the audit log and the store keep instead of the national number."""
        if envelope.subject_type is None or envelope.subject_id is None:
            return None
        return self.hasher(envelope.subject_type, envelope.subject_id)

    def with_subject_from_payload(
        self, mtype: MessageType, envelope: env.Envelope, payload: etree._Element
    ) -> env.Envelope:
        found = self.infomodel.subject_of(mtype, payload)
        if found is None:
            return envelope
        subject: INSZ | BSN = INSZ(found[1]) if found[0] == "INSZ" else BSN(found[1])
        return replace(envelope, subject=subject)


@dataclass(frozen=True, slots=True)
class _AuditUnit:
    """A unit of work that only chains one audit record (a lookup's "consulted" or "failed")."""

    event: AuditEvent
    # Chaining only buffers the record (written at the end of the batch, in its transaction), so a
    # failure leaves nothing to undo: no SAVEPOINT needed (see hub.store.database.Tx).
    pure = True

    def __call__(self, tx: Tx) -> None:
        tx.audit(self.event)


class _Routed(NamedTuple):
    """What :meth:`Hub._route` settled: the checks up to routing passed."""

    mtype: MessageType
    protocol: Protocol
    envelope: env.Envelope
    payload: etree._Element
    fixed: tuple[str, ...]  # the routing rules' receivers
    to_followers: bool  # and the reference directory's followers of the person
    subject_hash: str | None


def _digest(envelope: env.Envelope, payload: bytes) -> str:
    """What makes a resend 'the same message': header fields that matter plus the payload."""
    h = hashlib.sha256()
    for part in (
        envelope.type,
        envelope.version,
        envelope.sender,
        envelope.subject_type or "",
        envelope.subject_id or "",
        envelope.purpose,
    ):
        h.update(part.encode())
        h.update(b"\x00")
    h.update(payload)
    return h.hexdigest()


@dataclass
class _IngestUnit:
    """The one transaction of an accepted message: message, deliveries, outbox, audit."""

    envelope: env.Envelope
    protocol_id: str
    digest: str
    subject_hash: str | None
    key_id: int
    nonce: bytes
    ciphertext: bytes
    size: int
    channel: str
    transport: Transport | None
    forwarding: Forwarding | None = None
    directory_effects: Callable[[Tx, Mapping[str, Any]], None] | None = None  # reference-directory changes
    ring: Callable[[], None] | None = None  # no transport here: tell the leader's relay (hub.doorbell)

    @property
    def message_key(self) -> str:
        """The id the writer looks up for the whole batch at once (see ``Batch.stored_messages``)."""
        return str(self.envelope.message_id)

    @property
    def pure(self) -> bool:
        """Only reads and buffers, so no SAVEPOINT is needed (see hub.store.database.Tx); the
        reference-directory effects of a person-bound event write directly, so those need one."""
        return self.directory_effects is None

    def __call__(self, tx: Tx) -> Accepted:
        e = self.envelope
        message_id = str(e.message_id)
        seen = tx.batch.pending.get(message_id)
        if seen is None:
            stored = tx.batch.stored_messages(tx.conn).get(message_id)
            seen = (*stored[:3], _utc(stored[3])) if stored else None
        if seen is not None:
            digest, sender, receivers, received_at = seen
            if sender != e.sender or digest != self.digest:
                raise Conflict(f"bericht-id {message_id} is al gebruikt voor een ander bericht")
            replayed = Forwarding(tuple(receivers), replayed=True) if self.forwarding is not None else None
            return Accepted(message_id, receivers, received_at, duplicate=True, forwarding=replayed)
        tx.batch.pending[message_id] = (self.digest, e.sender, e.receivers, tx.now)
        tx.insert(
            messages,
            {
                "id": message_id,
                "type": e.type,
                "version": e.version,
                "sender": e.sender,
                "receivers": list(e.receivers),
                "subject_type": e.subject_type,
                "subject_hash": self.subject_hash,
                "protocol_id": self.protocol_id,
                "conversation_id": str(e.conversation_id) if e.conversation_id else None,
                "traceparent": e.traceparent,
                "created_at": e.created_at,
                "received_at": tx.now,
                "digest": self.digest,
                "channel": self.channel,
                "data_key_id": self.key_id,
                "nonce": self.nonce,
                "ciphertext": self.ciphertext,
                "payload_size": self.size,
            },
        )
        jobs = []
        for receiver in e.receivers:
            tx.insert(
                deliveries,
                {
                    "message_id": message_id,
                    "receiver": receiver,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": None,
                    "last_error": None,
                    "delivered_at": None,
                    "updated_at": tx.now,
                },
            )
            tx.insert(
                outbox,
                # published at once by this process when it has a transport; otherwise (the CLI)
                # left unpublished, so the running hub's relay picks it up on its next poll
                {
                    "message_id": message_id,
                    "receiver": receiver,
                    "available_at": tx.now,
                    "published_at": tx.now if self.transport is not None else None,
                },
            )
            jobs.append(Job(message_id, receiver))
        common: dict[str, Any] = {
            "trace_id": e.trace_id,
            "message_id": message_id,
            "message_type": e.type,
            "sender": e.sender,
            "protocol_id": self.protocol_id,
            "subject_type": e.subject_type,
            "subject_hash": self.subject_hash,
        }
        tx.audit(
            AuditEvent("received", detail={"channel": self.channel, "version": e.version, "bytes": self.size}, **common)
        )
        routed: dict[str, Any] = {"receivers": list(e.receivers)}
        if self.forwarding is not None:
            routed.update(self.forwarding.summary)
        tx.audit(AuditEvent("routed", detail=routed, **common))
        if self.directory_effects is not None:
            self.directory_effects(tx, common)
        transport = self.transport
        if transport is not None:
            tx.after_commit(lambda: transport.publish(jobs))
        elif self.ring is not None:
            tx.after_commit(self.ring)
        return Accepted(message_id, e.receivers, tx.now, forwarding=self.forwarding)
