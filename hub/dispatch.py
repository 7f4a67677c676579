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
  exponential backoff with jitter (or when the partner's own retry window says:
  ``ports.RetryWindow``, e.g. days for Digikoppeling partners), audit "retry_scheduled";
- permanent failure or the last attempt -> ``dead``, audit "failed".

The relay re-publishes outbox rows that are due (retries) or whose lease ran
out (a job lost in a crash). ``replay`` puts dead deliveries back in the
outbox. Every step is idempotent on (message id, receiver): a job for a
delivery that is already delivered is dropped.

Scale mode (PostgreSQL, several worker processes): before calling the
partner a worker *claims* the delivery in one statement::

    UPDATE deliveries SET status='in_flight', claimed_by=<worker>, claimed_until=now+claim
     WHERE (message_id, receiver)=? AND (status='pending'
            OR (status='retrying' AND next_attempt_at<=now)
            OR (status='in_flight' AND claimed_until<now))

Only the worker whose UPDATE matched calls the partner; a second copy of the
job (a broker redelivery, a relay re-publish) finds nothing to claim and is
dropped. The outcome is recorded only while the claim is still the worker's.
A worker that dies leaves its claim to run out (half the lease); the relay
then publishes the job again and another worker takes over. The relay picks
outbox rows with ``FOR UPDATE SKIP LOCKED`` so relays in several processes do
not publish the same rows at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from lxml import etree
from sqlalchemy import and_, bindparam, delete, or_, select, text, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from hub import envelope as env
from hub.audit import AuditEvent
from hub.errors import HubError, NotFound, PartnerRejected, StoreError
from hub.notify import InboxNotifier
from hub.ports import Delivery, RetryWindow
from hub.protocols import minimize
from hub.service import Hub, StoredMessage
from hub.store.database import Tx
from hub.store.tables import deliveries, messages, outbox
from hub.transport import Job

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)  # the default of delivery.lease_seconds
PARTNER_REFRESH_SECONDS = 5.0
# scale mode: the batch sizes up to which a batch lingers for more jobs (delivery.batch_linger_ms)
CLAIM_BATCH = 32
RECORD_BATCH = 64


def _transient(adapter: object, attempt: int, received_at: datetime, error: str) -> Outcome:
    """A failure worth retrying: when, by the partner's own window if it has one."""
    if not isinstance(adapter, RetryWindow):
        return Outcome(False, error=error)
    first = received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    due = adapter.next_attempt(attempt, first, datetime.now(UTC))
    return Outcome(False, error=error, retry_at=due, window_over=due is None)


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
    # a partner with its own retry window (RetryWindow) says when to retry, or that it is over
    retry_at: datetime | None = None
    window_over: bool = False


#: statuses after which a delivery job has nothing left to do
SETTLED = ("delivered", "dead", "in_inbox")


class Dispatcher:
    """Delivery workers and the outbox relay of one process."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._inflight: set[Job] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        # rung by the extra API processes of `knooppunt run --processes N` after they commit
        # messages for this relay (hub.doorbell): poll now rather than at the next poll
        self._rung = asyncio.Event()
        self.delivered = 0
        self.failed = 0
        settings = hub.settings
        self.lease = timedelta(seconds=settings.delivery.lease_seconds)
        # several processes share one database only off SQLite: claim deliveries there
        self.claims = not settings.is_sqlite
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{os.urandom(3).hex()}"
        self._partners_loaded = 0.0
        self.notifier = InboxNotifier(hub.settings.portal, hub.engine, hub.settings.public_url)
        # scale mode: jobs that arrive together are claimed (and their messages loaded) in one
        # transaction, and successful deliveries recorded in one writer unit (see _Batcher); a small
        # batch waits up to delivery.batch_linger_ms for more (records: while deliveries are running)
        linger = settings.delivery.batch_linger_ms / 1000
        self._claims = _Batcher(self._claim_batch, linger=linger, target=CLAIM_BATCH)
        self._claim_conn: Any = None  # touched only by the claim batch in flight (one at a time)
        self._delivering = 0  # jobs claimed here whose outcome is not yet handed to a recorder
        self._records = _Batcher(
            self._record_batch, linger=linger, target=RECORD_BATCH, more=lambda: self._delivering > 0
        )
        # embedded default (SQLite, one dispatcher, no claims): the jobs that come in while a read is
        # under way are read together (their deliveries' state and messages, one query), and the
        # successful deliveries that come back while a record is being written are recorded together
        # (one writer unit: one SAVEPOINT and a few statements for all, not three statements each)
        self._loads = _Batcher(self._load_batch)
        self._oks = _Batcher(self._record_ok_batch)

    async def start(self, *, recover_all: bool) -> None:
        transport = self.hub.transport
        if transport is None:
            raise HubError("de transportlaag is niet gestart")
        transport.ensure_queues(p.id for p in self.hub.partners.all())
        self._partners_loaded = time.monotonic()
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
        for batcher in (self._claims, self._records, self._loads, self._oks):
            await batcher.close()
        log.info(
            "dispatcher_batches",
            claims=self._claims.items,
            claim_batches=self._claims.batches,
            records=self._records.items,
            record_batches=self._records.batches,
            # the embedded default's (no claims): reads, and records of successful deliveries
            reads=self._loads.items,
            read_batches=self._loads.batches,
            successes=self._oks.items,
            success_batches=self._oks.batches,
        )
        if self._claim_conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._claim_conn.invalidate()  # never back to the pool with synchronous_commit off
            self._claim_conn = None

    # -- relay ----------------------------------------------------------------------

    def ring(self) -> None:
        """Another process committed messages for this relay: poll now (see hub.doorbell)."""
        self._rung.set()

    async def _relay_pause(self, seconds: float) -> None:
        """Until the next poll: ``seconds``, a stop, or a ring (one that came during the last
        poll included, so nothing it announced waits for the poll after)."""
        waits = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._rung.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _relay_loop(self) -> None:
        idle_polls = 0
        last_poll = 0.0
        while not self._stopping.is_set():
            wait = relay_wait(self.hub.settings.delivery.poll_seconds, idle_polls, backs_off=self.claims)
            await self._relay_pause(wait)
            if self._stopping.is_set():
                return
            # each poll is a write transaction: under load one poll every RING_POLL_GAP takes all rings
            gap = RING_POLL_GAP_SECONDS - (time.monotonic() - last_poll)
            if gap > 0:
                await asyncio.sleep(gap)
            self._rung.clear()
            last_poll = time.monotonic()
            try:
                self.hub.refresh_partners()  # a partner moved to another plateau: follow its configuration
                self._ensure_queues()
                idle_polls = 0 if await self.relay_once() else idle_polls + 1
            except (HubError, SQLAlchemyError) as exc:
                log.error("relay_failed", error=str(exc))

    def _ensure_queues(self) -> None:
        """Consume the queues of partners added by other processes too (now and then)."""
        if time.monotonic() - self._partners_loaded < PARTNER_REFRESH_SECONDS or self.hub.transport is None:
            return
        self._partners_loaded = time.monotonic()
        self.hub.transport.ensure_queues(p.id for p in self.hub.partners.all())

    async def relay_once(self, *, recover_all: bool = False, limit: int = 500) -> int:
        """Publish due outbox rows: new retries, and leases that ran out (or all, after a restart)."""

        lease = self.lease
        skip_locked = self.claims

        def unit(tx: Tx) -> list[Job]:
            expired = tx.now - lease
            due = and_(
                outbox.c.available_at <= tx.now,
                or_(outbox.c.published_at.is_(None), outbox.c.published_at < expired)
                if not recover_all
                else outbox.c.id > 0,
            )
            if skip_locked and not tx.conn.execute(_RELAY_LOCK).scalar():
                return []  # another worker's relay is at it right now; one relay at a time is enough
            query = select(outbox).where(due).order_by(outbox.c.id).limit(limit)
            if skip_locked:
                query = query.with_for_update(skip_locked=True)
            rows = tx.conn.execute(query).mappings().all()
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
        if self.claims:
            claimed = await self._claims.submit(job)
            if claimed is None:
                return
            self._delivering += 1
            counted = True

            def handed_over() -> None:
                nonlocal counted
                if counted:  # once per job: the recorder need not wait for this one any more
                    counted = False
                    self._delivering -= 1
                    self._records.poke()

            try:
                await self._after_claim(job, claimed[0] + 1, claimed[1], handed_over)
            finally:
                handed_over()
            return
        state = await self._loads.submit(job)
        if state is None:
            await hub.writer.submit(_drop_outbox(job))
            return
        attempts, loaded = state
        await self._after_claim(job, attempts + 1, loaded, lambda: None)

    async def _after_claim(
        self, job: Job, attempt: int, loaded: StoredMessage | NotFound | None, handed_over: Callable[[], None]
    ) -> None:
        """Deliver a claimed job (``loaded``: its message, when the claim read it) and record the outcome;
        ``handed_over`` is called once the outcome is known, before it is recorded."""
        hub = self.hub
        receiver = hub.partners.get(job.receiver)
        if receiver is None:
            hub.reload_partners()
            receiver = hub.partners.get(job.receiver)
        try:
            if isinstance(loaded, NotFound):
                raise loaded
            stored = loaded if loaded is not None else hub.load_message(job.message_id)
        except NotFound as exc:
            handed_over()
            unit = self._record(job, attempt, Outcome(False, permanent=True, error=str(exc)), None)
            await self._submit_record(job, unit)
            return
        envelope = stored.envelope
        started = time.monotonic()
        if receiver is None:
            outcome = Outcome(False, permanent=True, error=f"ontvanger {job.receiver} bestaat niet meer")
        else:
            outcome = await self._deliver(receiver, stored, attempt)
        call_seconds = time.monotonic() - started
        mtype = hub.infomodel.get(envelope.type, envelope.version)
        subject_hash = None
        if stored.payload is not None:
            subject_hash = hub.subject_hash(hub.with_subject_from_payload(mtype, envelope, stored.payload))
        handed_over()
        if self.claims and outcome.ok and not outcome.in_inbox:
            status = await self._records.submit((job, attempt, outcome, (envelope, subject_hash)))
        elif not self.claims and outcome.ok:
            status = await self._oks.submit((job, attempt, outcome, (envelope, subject_hash)))
        else:
            status = await self._submit_record(job, self._record(job, attempt, outcome, (envelope, subject_hash)))
        if status == "in_inbox" and outcome.in_inbox:
            self.notifier.message_waiting(job.receiver)
        metrics = hub.metrics
        metrics.call.labels(job.receiver).observe(call_seconds)
        if status in ("delivered", "in_inbox"):
            metrics.delivered.labels(job.receiver).inc()
            received = stored.received_at if stored.received_at.tzinfo else stored.received_at.replace(tzinfo=UTC)
            metrics.latency.labels(job.receiver).observe((datetime.now(UTC) - received).total_seconds())
        elif status == "dead":
            metrics.failed.labels(job.receiver).inc()
        elif status == "retrying":
            metrics.retried.labels(job.receiver).inc()

    async def _submit_record(self, job: Job, unit: Any) -> str:
        """Record an outcome; with claims, keep trying while the claim lasts (a database outage
        must not make another worker call the partner a second time)."""
        if not self.claims:
            return str(await self.hub.writer.submit(unit))
        return str(await self._submit_many(job, unit))

    async def _submit_many(self, job: Job, unit: Any) -> Any:
        """Submit a recording unit, retrying on store errors while the claim lasts (``job``: for the log)."""
        deadline = time.monotonic() + self.lease.total_seconds() / 2
        pause = 0.1
        while True:
            try:
                return await self.hub.writer.submit(unit)
            except StoreError as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("delivery_record_retried", message_id=job.message_id, partner=job.receiver, error=str(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _claim_batch(self, jobs: list[Job]) -> list[tuple[int, StoredMessage | NotFound] | None]:
        """Claim jobs for this worker in one transaction and load their messages in one query.

        For each job: its attempts so far and its message (or why it cannot be loaded), or None
        when there is nothing to do here (delivered already, or another worker holds it).
        """
        claimed, rows = await asyncio.to_thread(self._claim_many, jobs)
        out: list[tuple[int, StoredMessage | NotFound] | None] = []
        for job in jobs:
            attempts = claimed.get(job)
            if attempts is None:
                out.append(None)
                continue
            out.append((attempts, self._loaded(job, rows.get(job.message_id))))
        return out

    def _loaded(self, job: Job, row: Any | None) -> StoredMessage | NotFound:
        """A job's message from its row (decrypted and parsed), or why it cannot be had."""
        if row is None:
            return NotFound(f"bericht {job.message_id} bestaat niet")
        try:
            return self.hub.stored_from_row(row)
        except NotFound as exc:
            return exc

    def _claim_many(self, jobs: list[Job]) -> tuple[dict[Job, int], dict[str, Any]]:
        """Claim the deliveries of ``jobs`` (attempts so far per claimed job) and fetch their messages.

        One statement (the claiming UPDATE and the message rows it returns), committed on its
        own, on a connection this worker keeps; jobs with nothing to claim are dropped, and a
        settled one also loses its outbox row.
        """
        conn = self._claim_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._claim_conn = self.hub.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # A claim need not wait for the disk: lost in a database crash, it only means another
            # worker may call the partner again (partners deduplicate on the message id).
            conn.exec_driver_sql("SET synchronous_commit = off")
        try:
            return self._claim_on(conn, jobs)
        except SQLAlchemyError:
            self._claim_conn = None
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()  # never back to the pool with synchronous_commit off
            raise

    def _claim_on(self, conn: Any, jobs: list[Job]) -> tuple[dict[Job, int], dict[str, Any]]:
        # one constant statement (prepared by the driver after a few uses, no SQL built per batch)
        now = datetime.now(UTC)
        keys = sorted({(j.message_id, j.receiver) for j in jobs})
        params = {
            "m": [k[0] for k in keys],
            "r": [k[1] for k in keys],
            "worker": self.worker_id,
            "now": now,
            "until": now + self.lease / 2,
        }
        claimed: dict[Job, int] = {}
        rows: dict[str, Any] = {}
        for r in conn.exec_driver_sql(_CLAIM_SQL, params).mappings():
            claimed[Job(r["claimed_message_id"], r["claimed_receiver"])] = int(r["claimed_attempts"])
            if r["id"] is not None:
                rows[str(r["id"])] = r
        self.hub.warm_keys(conn, rows.values())
        rest = [k for k in keys if Job(*k) not in claimed]
        if rest:
            # rare (a second copy of a job): drop the outbox rows of deliveries with nothing left to do
            found = conn.exec_driver_sql(_UNCLAIMED_SQL, {"m": [k[0] for k in rest], "r": [k[1] for k in rest]})
            for r in found:
                log.debug("delivery_not_claimed", message_id=r.message_id, partner=r.receiver, status=r.status)
        return claimed, rows

    async def _record_batch(self, items: list[tuple[Job, int, Outcome, tuple[env.Envelope, str | None]]]) -> list[str]:
        """Record successful deliveries of this worker in one writer unit; the status of each."""
        jobs = [job for job, *_ in items]
        statuses = await self._submit_many(jobs[0], self._record_delivered(items))
        return [statuses[job] for job in jobs]

    def _record_delivered(self, items: list[tuple[Job, int, Outcome, tuple[env.Envelope, str | None]]]) -> Any:
        """The writer unit for :meth:`_record_batch`: the same effect as :meth:`_record` per job, with
        one UPDATE for all (only rows still claimed by this worker), one DELETE and the audit records."""
        worker_id = self.worker_id

        def unit(tx: Tx) -> dict[Job, str]:
            keys = sorted({(job.message_id, job.receiver) for job, *_ in items})
            params = {"m": [k[0] for k in keys], "r": [k[1] for k in keys], "worker": worker_id, "now": tx.now}
            ours: set[tuple[str, str]] = set()
            current: dict[tuple[str, str], str] = {}
            for r in tx.conn.exec_driver_sql(_RECORD_SQL, params):
                if r.ours:
                    ours.add((r.message_id, r.receiver))
                elif r.status is not None:
                    current[(r.message_id, r.receiver)] = str(r.status)
            settled = {k for k, status in current.items() if status in SETTLED}
            statuses: dict[Job, str] = {}
            for job, attempt, outcome, (envelope, subject_hash) in items:
                key = (job.message_id, job.receiver)
                if key in ours:
                    statuses[job] = "delivered"
                    tx.audit(_delivered_event(job, attempt, outcome, envelope, subject_hash))
                elif key in settled:
                    statuses[job] = str(current[key])
                else:
                    log.warning("delivery_claim_lost", message_id=job.message_id, partner=job.receiver)
                    statuses[job] = "claim_lost"

            tx.after_commit(lambda: self._count_all(statuses))
            return statuses

        return unit

    async def _load_batch(self, jobs: list[Job]) -> list[tuple[int, StoredMessage | NotFound] | None]:
        """The embedded default's read for jobs that came in together: per job, its attempts so far
        and its message (or why it cannot be loaded), or None when its delivery is settled or gone.

        One connection and one query for the batch (the deliveries' state with their messages);
        the same answers, job by job, as reading each delivery and its message on its own.
        """
        hub = self.hub
        keys = sorted({(job.message_id, job.receiver) for job in jobs})
        with hub.engine.connect() as conn:
            rows = {
                (r["job_message_id"], r["job_receiver"]): r for r in conn.execute(_LOAD_JOBS, {"keys": keys}).mappings()
            }
            hub.warm_keys(conn, [r for r in rows.values() if r["id"] is not None and r["job_status"] not in SETTLED])
        out: list[tuple[int, StoredMessage | NotFound] | None] = []
        for job in jobs:
            row = rows.get((job.message_id, job.receiver))
            if row is None or row["job_status"] in SETTLED:
                out.append(None)
                continue
            out.append((int(row["job_attempts"]), self._loaded(job, row if row["id"] is not None else None)))
        return out

    async def _record_ok_batch(
        self, items: list[tuple[Job, int, Outcome, tuple[env.Envelope, str | None]]]
    ) -> list[str]:
        """Record successful deliveries (embedded default) in one writer unit; the status of each."""
        statuses = await self.hub.writer.submit(self._record_ok(items))
        return [statuses[job] for job, *_ in items]

    def _record_ok(self, items: list[tuple[Job, int, Outcome, tuple[env.Envelope, str | None]]]) -> Any:
        """The writer unit for :meth:`_record_ok_batch`: per job the effect of :meth:`_record` for a
        success (delivered, or in the portal inbox), with one read of the batch's states and one
        executemany per statement. A delivery settled meanwhile keeps its status and is not audited
        again; its outbox row goes, as every other job's."""

        def unit(tx: Tx) -> dict[Job, str]:
            keys = sorted({(job.message_id, job.receiver) for job, *_ in items})
            current = {(r.message_id, r.receiver): str(r.status) for r in tx.conn.execute(_JOB_STATES, {"keys": keys})}
            statuses: dict[Job, str] = {}
            delivered: list[dict[str, Any]] = []
            in_inbox: list[dict[str, Any]] = []
            for job, attempt, outcome, context in items:
                now_status = current.get((job.message_id, job.receiver))
                if now_status in SETTLED:
                    statuses[job] = str(now_status)
                    continue
                values: dict[str, Any] = {
                    **_key(job),
                    "attempts": attempt,
                    "updated_at": tx.now,
                    "last_error": None,
                }
                if outcome.in_inbox:
                    statuses[job] = "in_inbox"
                    in_inbox.append({**values, "status": "in_inbox"})
                    continue
                statuses[job] = "delivered"
                delivered.append({**values, "status": "delivered", "delivered_at": tx.now})
                tx.audit(_delivered_event(job, attempt, outcome, *context))
            for rows in (delivered, in_inbox):
                if rows:
                    tx.conn.execute(_UPDATE_DELIVERY, rows)
            tx.conn.execute(_DELETE_OUTBOX, [{"key_m": m, "key_r": r} for m, r in keys])

            tx.after_commit(lambda: self._count_all(statuses))
            return statuses

        return unit

    async def _deliver(self, receiver: Any, stored: Any, attempt: int) -> Outcome:
        hub = self.hub
        try:
            adapter = hub.adapter_for(receiver)
        except HubError as exc:
            # a configuration its adapter refuses (a missing key, an unknown tls_profile): retried
            # with backoff like an unreachable partner, so the attempts, the error and finally the
            # dead letter show where the sender and the operator look; the job must not come back
            # at once for ever (RabbitMQ redelivers a job whose handler raised)
            log.error("adapter_not_built", partner=receiver.id, error=exc.detail)
            return Outcome(False, error=f"adapter van {receiver.id} niet te bouwen: {exc.detail}")
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
            # converted only for an adapter that takes JSON (WUS and other SOAP partners send XML)
            payload_json=hub.infomodel.xml_to_json(mtype, payload) if "json" in adapter.capabilities.formats else None,
            attempt=attempt,
        )
        try:
            receipt = await asyncio.wait_for(adapter.deliver(delivery), timeout=hub.settings.delivery.timeout_seconds)
        except TimeoutError:
            return _transient(adapter, attempt, stored.received_at, "de partner antwoordde niet op tijd")
        except PartnerRejected as exc:
            return Outcome(False, permanent=True, error=exc.detail)
        except HubError as exc:
            return _transient(adapter, attempt, stored.received_at, exc.detail)
        return Outcome(True, reference=receipt.partner_reference)

    def _record(self, job: Job, attempt: int, outcome: Outcome, context: tuple[env.Envelope, str | None] | None) -> Any:
        settings = self.hub.settings.delivery

        claims = self.claims
        worker_id = self.worker_id
        released = {"claimed_by": None, "claimed_until": None} if claims else {}

        def unit(tx: Tx) -> str:
            key = _key(job)
            current = tx.conn.execute(_CLAIM_STATE_FOR_UPDATE if claims else _CLAIM_STATE, key).first()
            if current is not None and current.status in SETTLED:
                tx.conn.execute(_DELETE_OUTBOX, key)
                return str(current.status)
            if claims and (current is None or current.status != "in_flight" or current.claimed_by != worker_id):
                log.warning("delivery_claim_lost", message_id=job.message_id, partner=job.receiver)
                return "claim_lost"
            common: dict[str, Any] = {"message_id": job.message_id, "receiver": job.receiver}
            if context is not None:
                common.update(_message_fields(*context))
            # the delivery row's new values: one constant UPDATE sets the columns its parameters name
            values: dict[str, Any] = {**key, "attempts": attempt, "updated_at": tx.now, **released}
            if outcome.ok:
                status = "in_inbox" if outcome.in_inbox else "delivered"
                values["last_error"] = None
                if not outcome.in_inbox:
                    values["delivered_at"] = tx.now
                    tx.audit(
                        AuditEvent("delivered", detail={"attempt": attempt, "reference": outcome.reference}, **common)
                    )
            elif (
                outcome.permanent
                or outcome.window_over
                or (outcome.retry_at is None and attempt >= settings.max_attempts)
            ):
                status = "dead"
                values.update(last_error=outcome.error[:2000], next_attempt_at=None)
                tx.audit(
                    AuditEvent(
                        "failed", status="failed", detail={"attempt": attempt, "error": outcome.error[:500]}, **common
                    )
                )
            else:
                status = "retrying"
                due = outcome.retry_at or tx.now + timedelta(
                    seconds=backoff(attempt, settings.backoff_base_seconds, settings.backoff_max_seconds)
                )
                values.update(last_error=outcome.error[:2000], next_attempt_at=due)
                tx.audit(
                    AuditEvent(
                        "retry_scheduled",
                        status="retrying",
                        detail={"attempt": attempt, "error": outcome.error[:500], "nextAttemptAt": due.isoformat()},
                        **common,
                    )
                )
            tx.conn.execute(_UPDATE_DELIVERY, {**values, "status": status})
            if status == "retrying":
                tx.conn.execute(
                    _UPDATE_OUTBOX, {**key, "available_at": values["next_attempt_at"], "published_at": None}
                )
            else:
                tx.conn.execute(_DELETE_OUTBOX, key)
            return status

        def counted(tx: Tx) -> str:
            status = unit(tx)
            tx.after_commit(lambda: self._count(status, job))
            return status

        return counted

    def _count_all(self, statuses: dict[Job, str]) -> None:
        for job, status in statuses.items():
            self._count(status, job)

    def _count(self, status: str, job: Job) -> None:
        if status == "claim_lost":
            return
        if status in ("delivered", "in_inbox"):
            self.delivered += 1
            log.info("message_delivered", message_id=job.message_id, partner=job.receiver)
        elif status == "dead":
            self.failed += 1
            log.warning("delivery_failed", message_id=job.message_id, partner=job.receiver)
        else:
            log.info("delivery_retry_scheduled", message_id=job.message_id, partner=job.receiver)


def _delivered_event(
    job: Job, attempt: int, outcome: Outcome, envelope: env.Envelope, subject_hash: str | None
) -> AuditEvent:
    """The audit "delivered" of a job the partner took (a batched record's)."""
    return AuditEvent(
        "delivered",
        detail={"attempt": attempt, "reference": outcome.reference},
        message_id=job.message_id,
        receiver=job.receiver,
        **_message_fields(envelope, subject_hash),
    )


def _message_fields(envelope: env.Envelope, subject_hash: str | None) -> dict[str, Any]:
    """The audit fields a delivery record takes from its message."""
    return {
        "trace_id": envelope.trace_id,
        "message_type": envelope.type,
        "sender": envelope.sender,
        "protocol_id": envelope.purpose,
        "subject_type": envelope.subject_type,
        "subject_hash": subject_hash,
    }


# One delivery's statements, built once: SQLAlchemy then finds them in its compiled cache without
# building and hashing a new statement per job. The UPDATEs name no values: the parameters passed
# with them (beside the key) are the columns they set.
_DELIVERY = and_(deliveries.c.message_id == bindparam("key_m"), deliveries.c.receiver == bindparam("key_r"))
_OUTBOX = and_(outbox.c.message_id == bindparam("key_m"), outbox.c.receiver == bindparam("key_r"))
_CLAIM_STATE = select(deliveries.c.status, deliveries.c.claimed_by).where(_DELIVERY)
_CLAIM_STATE_FOR_UPDATE = _CLAIM_STATE.with_for_update()  # the claim must still be ours when the outcome is written
_UPDATE_DELIVERY = update(deliveries).where(_DELIVERY)
# the embedded default's batches (see Dispatcher._load_batch, _record_ok): the keys as one expanding
# list of (message id, receiver) pairs; a job's own columns are labelled apart from the message's
_BATCH_KEYS = tuple_(deliveries.c.message_id, deliveries.c.receiver).in_(bindparam("keys", expanding=True))
_LOAD_JOBS = (
    select(
        deliveries.c.message_id.label("job_message_id"),
        deliveries.c.receiver.label("job_receiver"),
        deliveries.c.status.label("job_status"),
        deliveries.c.attempts.label("job_attempts"),
        messages,
    )
    .select_from(deliveries.outerjoin(messages, messages.c.id == deliveries.c.message_id))
    .where(_BATCH_KEYS)
)
_JOB_STATES = select(deliveries.c.message_id, deliveries.c.receiver, deliveries.c.status).where(_BATCH_KEYS)
_UPDATE_OUTBOX = update(outbox).where(_OUTBOX)
_DELETE_OUTBOX = delete(outbox).where(_OUTBOX)


def _key(job: Job) -> dict[str, str]:
    return {"key_m": job.message_id, "key_r": job.receiver}


# Scale mode (PostgreSQL): the claim and the record of a batch are one constant statement each, with
# the batch's keys as two arrays; the driver prepares them after a few uses, so a batch costs one
# round trip and no SQL built in Python, however few jobs it holds. ('delivered', 'dead', 'in_inbox')
# below is SETTLED.

#: claim the claimable deliveries of the keys for this worker, and return them with their messages
_CLAIM_SQL = """
WITH keys AS (SELECT * FROM unnest(%(m)s::text[], %(r)s::text[]) AS k(message_id, receiver)),
claimed AS (
    UPDATE deliveries d
       SET status = 'in_flight', claimed_by = %(worker)s, claimed_until = %(until)s, updated_at = %(now)s
      FROM keys k
     WHERE d.message_id = k.message_id AND d.receiver = k.receiver
       AND (d.status = 'pending'
            OR (d.status = 'retrying' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s))
            OR (d.status = 'in_flight' AND d.claimed_until < %(now)s))
    RETURNING d.message_id, d.receiver, d.attempts
)
SELECT c.message_id AS claimed_message_id, c.receiver AS claimed_receiver, c.attempts AS claimed_attempts, m.*
  FROM claimed c LEFT JOIN messages m ON m.id = c.message_id
"""

#: keys that could not be claimed: drop the outbox rows of those settled (or gone); their statuses
_UNCLAIMED_SQL = """
WITH keys AS (SELECT * FROM unnest(%(m)s::text[], %(r)s::text[]) AS k(message_id, receiver)),
gone AS (
    DELETE FROM outbox o USING keys k
     WHERE o.message_id = k.message_id AND o.receiver = k.receiver
       AND NOT EXISTS (SELECT 1 FROM deliveries d
                        WHERE d.message_id = k.message_id AND d.receiver = k.receiver
                          AND d.status NOT IN ('delivered', 'dead', 'in_inbox'))
)
SELECT k.message_id, k.receiver, d.status
  FROM keys k LEFT JOIN deliveries d ON d.message_id = k.message_id AND d.receiver = k.receiver
"""

#: record the keys delivered where this worker still holds the claim, drop their outbox rows (and
#: those of deliveries settled meanwhile); per key: whether it was ours, and the status it had
_RECORD_SQL = """
WITH keys AS (SELECT * FROM unnest(%(m)s::text[], %(r)s::text[]) AS k(message_id, receiver)),
ours AS (
    UPDATE deliveries d
       SET status = 'delivered', attempts = d.attempts + 1, delivered_at = %(now)s, updated_at = %(now)s,
           last_error = NULL, claimed_by = NULL, claimed_until = NULL
      FROM keys k
     WHERE d.message_id = k.message_id AND d.receiver = k.receiver
       AND d.status = 'in_flight' AND d.claimed_by = %(worker)s
    RETURNING d.message_id, d.receiver
),
gone AS (
    DELETE FROM outbox o USING keys k
     WHERE o.message_id = k.message_id AND o.receiver = k.receiver
       AND (EXISTS (SELECT 1 FROM ours WHERE ours.message_id = k.message_id AND ours.receiver = k.receiver)
            OR EXISTS (SELECT 1 FROM deliveries d
                        WHERE d.message_id = k.message_id AND d.receiver = k.receiver
                          AND d.status IN ('delivered', 'dead', 'in_inbox')))
)
SELECT k.message_id, k.receiver, ours.message_id IS NOT NULL AS ours, d.status
  FROM keys k
  LEFT JOIN ours ON ours.message_id = k.message_id AND ours.receiver = k.receiver
  LEFT JOIN deliveries d ON d.message_id = k.message_id AND d.receiver = k.receiver
"""


#: the longest an idle relay waits between polls in scale mode (far below a lease's half)
RELAY_IDLE_MAX_SECONDS = 4.0
#: the shortest time between two polls of a relay that other processes ring (hub.doorbell)
RING_POLL_GAP_SECONDS = 0.02


def relay_wait(poll_seconds: float, idle_polls: int, *, backs_off: bool) -> float:
    """Seconds until the relay's next poll.

    In scale mode every worker runs a relay, yet one at a time does the work and the API
    publishes new messages itself: the relay only re-publishes retries that fell due and jobs
    whose lease ran out. A relay that found nothing waits twice as long each time (up to
    ``RELAY_IDLE_MAX_SECONDS``) and is back at ``poll_seconds`` once it publishes again, so idle
    workers stop costing a transaction each every half second. On SQLite the relay also carries
    what other processes accepted (the CLI, extra API processes): it keeps polling at
    ``poll_seconds``.
    """
    if not backs_off:
        return poll_seconds
    backed_off: float = poll_seconds * 2.0 ** min(idle_polls, 16)
    return min(backed_off, max(poll_seconds, RELAY_IDLE_MAX_SECONDS))


#: one relay at a time across the worker processes of one database (a transaction-level lock)
_RELAY_LOCK = text("SELECT pg_try_advisory_xact_lock(4242184710)")


class _Batcher:
    """Coalesces calls made in the same moment into one call of ``run(items)`` (in order).

    One batch runs at a time; what arrives meanwhile waits for the next, so batches grow
    with the load. With ``linger`` (seconds) a batch of fewer than ``target`` items waits up
    to that long for more, while ``more()`` says more are on their way: when the load is
    split over several workers, each one's batches then stay large instead of paying the
    fixed cost of a batch (a transaction, round trips) for one or two items. An exception of
    ``run`` is raised to every caller of that batch.
    """

    def __init__(
        self, run: Any, *, linger: float = 0.0, target: int = 64, more: Callable[[], bool] | None = None
    ) -> None:
        self._run = run
        self._linger = linger
        self._target = target
        self._more = more or (lambda: True)
        self._waiting: list[tuple[Any, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        else:
            self.poke()
        return await future

    def poke(self) -> None:
        """End a linger if the batch is full or nothing more is coming."""
        if self._wakeup is not None and self._full():
            self.wake()

    def wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _full(self) -> bool:
        return len(self._waiting) >= self._target or not self._more()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        self._wakeup = loop.create_future()
        timer = loop.call_later(self._linger, self.wake)
        try:
            await self._wakeup
        finally:
            timer.cancel()
            self._wakeup = None

    async def _drain(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # let the jobs handed over in this loop turn join the batch
            if self._linger > 0 and not self._full():
                await self._fill()
            batch, self._waiting = self._waiting, []
            self.batches += 1
            self.items += len(batch)
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to each caller, whose job is then retried
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def _drop_outbox(job: Job) -> Any:
    def unit(tx: Tx) -> None:
        tx.conn.execute(_DELETE_OUTBOX, _key(job))

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
