"""Delivery: drain the outbox through the transport to each receiver's adapter.

A job names one outbox row (one delivery of one message to one receiver).
The worker loads and decrypts the message, minimises it to the receiver's
protocol, calls ``adapter.deliver`` and records the outcome in one
transaction with its audit record:

- delivered -> delivery ``delivered``, outbox row gone, audit "delivered";
- plateau 1 (no adapter) -> delivery ``in_inbox``, outbox row gone, no audit
  yet: the portal inbox holds it, and "delivered" is audited only when the
  partner opens or downloads it (:func:`receipt_unit`);
- transient failure -> ``retrying``, outbox row due again after an
  exponential backoff with jitter, audit "retry_scheduled";
- permanent failure or the last attempt -> ``dead``, audit "failed".

The relay re-publishes outbox rows that are due (retries) or whose lease ran
out (a job lost in a crash). ``replay`` puts dead deliveries back in the
outbox. Every step is idempotent on (message id, receiver): a job for a
delivery that is already delivered is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from lxml import etree
from sqlalchemy import and_, delete, or_, select, update

from hub import envelope as env
from hub.audit import AuditEvent
from hub.errors import HubError, NotFound, PartnerRejected
from hub.notify import InboxNotifier
from hub.ports import Delivery
from hub.protocols import minimize
from hub.service import Hub
from hub.store.database import Tx
from hub.store.tables import deliveries, messages, outbox
from hub.transport import Job

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, capped, with full jitter on the upper half."""
    delay = min(cap, base * float(2 ** max(0, attempt - 1)))
    return delay / 2 + random.random() * delay / 2  # noqa: S311 - jitter, not cryptography


@dataclass
class Outcome:
    ok: bool
    permanent: bool = False
    error: str = ""
    reference: str | None = None
    in_inbox: bool = False


#: statuses after which a delivery job has nothing left to do
SETTLED = ("delivered", "dead", "in_inbox")


class Dispatcher:
    """Delivery workers and the outbox relay of one process."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._inflight: set[Job] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.delivered = 0
        self.failed = 0
        self.notifier = InboxNotifier(hub.settings.portal, hub.engine, hub.settings.public_url)

    async def start(self, *, recover_all: bool) -> None:
        transport = self.hub.transport
        if transport is None:
            raise HubError("de transportlaag is niet gestart")
        await self.relay_once(recover_all=recover_all)
        self._tasks = [
            asyncio.create_task(transport.consume(self.handle, self.hub.settings.delivery.workers)),
            asyncio.create_task(self._relay_loop()),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- relay ----------------------------------------------------------------------

    async def _relay_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.hub.settings.delivery.poll_seconds)
            if self._stopping.is_set():
                return
            try:
                self.hub.refresh_partners()  # a partner moved to another plateau: follow its configuration
                await self.relay_once()
            except HubError as exc:
                log.error("relay_failed", error=str(exc))

    async def relay_once(self, *, recover_all: bool = False, limit: int = 500) -> int:
        """Publish due outbox rows: new retries, and leases that ran out (or all, after a restart)."""

        def unit(tx: Tx) -> list[Job]:
            expired = tx.now - LEASE
            due = and_(
                outbox.c.available_at <= tx.now,
                or_(outbox.c.published_at.is_(None), outbox.c.published_at < expired)
                if not recover_all
                else outbox.c.id > 0,
            )
            rows = tx.conn.execute(select(outbox).where(due).order_by(outbox.c.id).limit(limit)).mappings().all()
            if not rows:
                return []
            ids = [r["id"] for r in rows]
            tx.conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(published_at=tx.now))
            return [Job(r["message_id"], r["receiver"]) for r in rows]

        jobs = await self.hub.writer.submit(unit)
        jobs = [j for j in jobs if j not in self._inflight]
        if jobs and self.hub.transport is not None:
            self.hub.transport.publish(jobs)
        return len(jobs)

    # -- one job ----------------------------------------------------------------------

    async def handle(self, job: Job) -> None:
        """Deliver one job; safe to call twice for the same delivery."""
        if job in self._inflight:
            return
        self._inflight.add(job)
        try:
            await self._handle(job)
        finally:
            self._inflight.discard(job)

    async def _handle(self, job: Job) -> None:
        hub = self.hub
        with hub.engine.connect() as conn:
            row = conn.execute(select(deliveries.c.status, deliveries.c.attempts).where(_delivery_key(job))).first()
        if row is None or row.status in SETTLED:
            await hub.writer.submit(_drop_outbox(job))
            return
        attempt = int(row.attempts) + 1
        receiver = hub.partners.get(job.receiver)
        if receiver is None:
            hub.reload_partners()
            receiver = hub.partners.get(job.receiver)
        try:
            stored = hub.load_message(job.message_id)
        except NotFound as exc:
            await hub.writer.submit(self._record(job, attempt, Outcome(False, permanent=True, error=str(exc)), None))
            return
        envelope = stored.envelope
        if receiver is None:
            outcome = Outcome(False, permanent=True, error=f"ontvanger {job.receiver} bestaat niet meer")
        else:
            outcome = await self._deliver(receiver, stored, attempt)
        mtype = hub.infomodel.get(envelope.type, envelope.version)
        subject_hash = None
        if stored.payload is not None:
            subject_hash = hub.subject_hash(hub.with_subject_from_payload(mtype, envelope, stored.payload))
        status = await hub.writer.submit(self._record(job, attempt, outcome, (envelope, subject_hash)))
        if status == "in_inbox" and outcome.in_inbox:
            self.notifier.message_waiting(job.receiver)

    async def _deliver(self, receiver: Any, stored: Any, attempt: int) -> Outcome:
        hub = self.hub
        adapter = hub.adapter_for(receiver)
        if adapter is None:
            # plateau 1: the message waits in the portal inbox; receipt is recorded when it is read
            return Outcome(True, reference="inbox", in_inbox=True)
        protocol = hub.protocols.get(stored.protocol_id)
        fields = protocol.fields_for(receiver.ref) if protocol else ()
        payload = minimize(stored.payload, fields)
        mtype = hub.infomodel.get(stored.envelope.type, stored.envelope.version)
        envelope = hub.with_subject_from_payload(mtype, stored.envelope, stored.payload)
        delivery = Delivery(
            envelope=envelope,
            receiver=receiver.id,
            payload_xml=etree.tostring(payload),
            payload_json=hub.infomodel.xml_to_json(mtype, payload),
            attempt=attempt,
        )
        try:
            receipt = await asyncio.wait_for(adapter.deliver(delivery), timeout=hub.settings.delivery.timeout_seconds)
        except TimeoutError:
            return Outcome(False, error="de partner antwoordde niet op tijd")
        except PartnerRejected as exc:
            return Outcome(False, permanent=True, error=exc.detail)
        except HubError as exc:
            return Outcome(False, error=exc.detail)
        return Outcome(True, reference=receipt.partner_reference)

    def _record(self, job: Job, attempt: int, outcome: Outcome, context: tuple[env.Envelope, str | None] | None) -> Any:
        settings = self.hub.settings.delivery

        def unit(tx: Tx) -> str:
            current = tx.conn.execute(select(deliveries.c.status).where(_delivery_key(job))).scalar()
            if current in SETTLED:
                tx.conn.execute(delete(outbox).where(_outbox_key(job)))
                return str(current)
            common: dict[str, Any] = {"message_id": job.message_id, "receiver": job.receiver}
            if context is not None:
                envelope, subject_hash = context
                common.update(
                    trace_id=envelope.trace_id,
                    message_type=envelope.type,
                    sender=envelope.sender,
                    protocol_id=envelope.purpose,
                    subject_type=envelope.subject_type,
                    subject_hash=subject_hash,
                )
            if outcome.ok and outcome.in_inbox:
                status = "in_inbox"
                tx.conn.execute(
                    update(deliveries)
                    .where(_delivery_key(job))
                    .values(status=status, attempts=attempt, updated_at=tx.now, last_error=None)
                )
                tx.conn.execute(delete(outbox).where(_outbox_key(job)))
            elif outcome.ok:
                status = "delivered"
                tx.conn.execute(
                    update(deliveries)
                    .where(_delivery_key(job))
                    .values(status=status, attempts=attempt, delivered_at=tx.now, updated_at=tx.now, last_error=None)
                )
                tx.conn.execute(delete(outbox).where(_outbox_key(job)))
                tx.audit(AuditEvent("delivered", detail={"attempt": attempt, "reference": outcome.reference}, **common))
            elif outcome.permanent or attempt >= settings.max_attempts:
                status = "dead"
                tx.conn.execute(
                    update(deliveries)
                    .where(_delivery_key(job))
                    .values(
                        status=status,
                        attempts=attempt,
                        updated_at=tx.now,
                        last_error=outcome.error[:2000],
                        next_attempt_at=None,
                    )
                )
                tx.conn.execute(delete(outbox).where(_outbox_key(job)))
                tx.audit(
                    AuditEvent(
                        "failed", status="failed", detail={"attempt": attempt, "error": outcome.error[:500]}, **common
                    )
                )
            else:
                status = "retrying"
                due = tx.now + timedelta(
                    seconds=backoff(attempt, settings.backoff_base_seconds, settings.backoff_max_seconds)
                )
                tx.conn.execute(
                    update(deliveries)
                    .where(_delivery_key(job))
                    .values(
                        status=status,
                        attempts=attempt,
                        updated_at=tx.now,
                        last_error=outcome.error[:2000],
                        next_attempt_at=due,
                    )
                )
                tx.conn.execute(update(outbox).where(_outbox_key(job)).values(available_at=due, published_at=None))
                tx.audit(
                    AuditEvent(
                        "retry_scheduled",
                        status="retrying",
                        detail={"attempt": attempt, "error": outcome.error[:500], "nextAttemptAt": due.isoformat()},
                        **common,
                    )
                )
            return status

        def counted(tx: Tx) -> str:
            status = unit(tx)
            tx.after_commit(lambda: self._count(status, job))
            return status

        return counted

    def _count(self, status: str, job: Job) -> None:
        if status in ("delivered", "in_inbox"):
            self.delivered += 1
            log.info("message_delivered", message_id=job.message_id, partner=job.receiver)
        elif status == "dead":
            self.failed += 1
            log.warning("delivery_failed", message_id=job.message_id, partner=job.receiver)
        else:
            log.info("delivery_retry_scheduled", message_id=job.message_id, partner=job.receiver)


def _delivery_key(job: Job) -> Any:
    return and_(deliveries.c.message_id == job.message_id, deliveries.c.receiver == job.receiver)


def _outbox_key(job: Job) -> Any:
    return and_(outbox.c.message_id == job.message_id, outbox.c.receiver == job.receiver)


def _drop_outbox(job: Job) -> Any:
    def unit(tx: Tx) -> None:
        tx.conn.execute(delete(outbox).where(_outbox_key(job)))

    return unit


def receipt_unit(receiver: str, delivery_ids: list[int], *, actor: str, how: str) -> Any:
    """Record that a plateau-1 partner received messages from its inbox (opened, downloaded, fetched).

    Each delivery still ``in_inbox`` becomes ``delivered`` with an audit
    "delivered" naming the actor; deliveries of another receiver, or already
    received, are left alone. Returns the number recorded.
    """

    def unit(tx: Tx) -> int:
        if not delivery_ids:
            return 0
        rows = tx.conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.message_id,
                deliveries.c.attempts,
                messages.c.type,
                messages.c.sender,
                messages.c.protocol_id,
                messages.c.subject_type,
                messages.c.subject_hash,
                messages.c.traceparent,
            )
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(
                and_(
                    deliveries.c.id.in_(delivery_ids),
                    deliveries.c.receiver == receiver,
                    deliveries.c.status == "in_inbox",
                )
            )
        ).all()
        for r in rows:
            tx.conn.execute(
                update(deliveries)
                .where(deliveries.c.id == r.id)
                .values(status="delivered", delivered_at=tx.now, updated_at=tx.now)
            )
            tx.audit(
                AuditEvent(
                    "delivered",
                    trace_id=r.traceparent.split("-")[1] if r.traceparent else "",
                    message_id=r.message_id,
                    message_type=r.type,
                    sender=r.sender,
                    receiver=receiver,
                    actor=actor,
                    protocol_id=r.protocol_id,
                    subject_type=r.subject_type,
                    subject_hash=r.subject_hash,
                    detail={"attempt": int(r.attempts), "reference": "inbox", "how": how},
                )
            )
        return len(rows)

    return unit


def replay_unit(*, actor: str, message_id: str | None = None, receiver: str | None = None, status: str = "dead") -> Any:
    """Put deliveries back in the outbox (dead ones by default); audit "replayed" per delivery."""

    def unit(tx: Tx) -> int:
        query = select(deliveries.c.id, deliveries.c.message_id, deliveries.c.receiver).where(
            deliveries.c.status == status
        )
        if message_id:
            query = query.where(deliveries.c.message_id == message_id)
        if receiver:
            query = query.where(deliveries.c.receiver == receiver)
        rows = tx.conn.execute(query).all()
        for r in rows:
            tx.conn.execute(
                update(deliveries)
                .where(deliveries.c.id == r.id)
                .values(status="pending", attempts=0, next_attempt_at=None, updated_at=tx.now)
            )
            tx.conn.execute(
                delete(outbox).where(and_(outbox.c.message_id == r.message_id, outbox.c.receiver == r.receiver))
            )
            tx.conn.execute(
                outbox.insert().values(
                    message_id=r.message_id, receiver=r.receiver, available_at=tx.now, published_at=None
                )
            )
            mtype = tx.conn.execute(select(messages.c.type).where(messages.c.id == r.message_id)).scalar()
            tx.audit(
                AuditEvent(
                    "replayed",
                    actor=actor,
                    message_id=r.message_id,
                    receiver=r.receiver,
                    message_type=mtype,
                    detail={"from": status},
                )
            )
        return len(rows)

    return unit
