"""The audit log: data, not logging. An append-only, hash-chained table.

Every record carries what the Logboek Dataverwerkingen and the MAGDA audit
register ask for (trace/span ids, event, time, status, sender, receiver,
actor, protocol, message type, subject type and a keyed hash of the subject
id; never the id). Each record's ``hash`` is SHA-256 over the previous hash
and the record's canonical JSON, so changing, deleting, inserting or
reordering a record breaks the chain at that point. Records are appended
inside the same transaction as the exchange they describe: if the record
cannot be written, the exchange does not happen.

The event catalogue is in ``docs/audit-events.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hub.ports import JSON
from hub.store.tables import audit_events, audit_head

GENESIS = "0" * 64
# Trace and span ids must be unique, not secret: a seeded PRNG avoids a syscall per record.
_IDS = random.Random(os.urandom(32))  # noqa: S311
_INSERT_AUDIT = insert(audit_events)

EVENTS = frozenset(
    {
        "received",
        "refused",
        "routed",
        "delivered",
        "retry_scheduled",
        "failed",
        "consulted",
        "replayed",
        "purged",
        "admin_changed",
        # reference directory (hub/directory.py) and the inburgeraar's own view
        "subscribed",
        "unsubscribed",
        "relinked",
        "self_viewed",
    }
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened to a message or a person's data."""

    event: str
    status: str = "ok"
    trace_id: str = ""
    parent_span_id: str | None = None
    message_id: str | None = None
    message_type: str | None = None
    sender: str | None = None
    receiver: str | None = None
    actor: str | None = None
    protocol_id: str | None = None
    subject_type: str | None = None
    subject_hash: str | None = None
    detail: Mapping[str, JSON] = field(default_factory=dict)


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


_HASHED = (
    "seq",
    "event",
    "occurred_at",
    "status",
    "trace_id",
    "span_id",
    "parent_span_id",
    "message_id",
    "message_type",
    "sender",
    "receiver",
    "actor",
    "protocol_id",
    "subject_type",
    "subject_hash",
    "detail",
)


def record_hash(prev_hash: str, row: Mapping[Any, Any]) -> str:
    """SHA-256(prev_hash || canonical JSON of the record's fields)."""
    body = {k: row.get(k) for k in _HASHED}
    body["occurred_at"] = _ts(row["occurred_at"])
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash.encode() + canonical.encode()).hexdigest()


class ChainWriter:
    """Appends records to the chain inside the writer's transaction.

    The head (last seq and hash) is read under a lock at the start of each
    batch (``FOR UPDATE`` on PostgreSQL; SQLite's writer lock is already held),
    so several processes can append to one chain.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        row = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
        ).first()
        if row is None:
            conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))
            self.seq, self.hash = 0, GENESIS
        else:
            self.seq, self.hash = int(row.seq), str(row.hash)
        self._start = self.seq
        self._pending: list[dict[str, Any]] = []

    def mark(self) -> tuple[int, str, int]:
        return self.seq, self.hash, len(self._pending)

    def reset(self, mark: tuple[int, str, int]) -> None:
        """Forget what a failed unit chained (its savepoint was rolled back)."""
        self.seq, self.hash, n = mark
        del self._pending[n:]

    def append(self, event: AuditEvent, now: datetime | None = None) -> int:
        """Chain one record; it is written at :meth:`flush`, in the same transaction."""
        if event.event not in EVENTS:
            raise ValueError(f"unknown audit event {event.event!r}")
        self.seq += 1
        row: dict[str, Any] = {
            "seq": self.seq,
            "event": event.event,
            "occurred_at": now or datetime.now(UTC),
            "status": event.status,
            "trace_id": event.trace_id or f"{_IDS.getrandbits(128):032x}",
            "span_id": f"{_IDS.getrandbits(64):016x}",
            "parent_span_id": event.parent_span_id,
            "message_id": event.message_id,
            "message_type": event.message_type,
            "sender": event.sender,
            "receiver": event.receiver,
            "actor": event.actor,
            "protocol_id": event.protocol_id,
            "subject_type": event.subject_type,
            "subject_hash": event.subject_hash,
            "detail": dict(event.detail),
        }
        row["prev_hash"] = self.hash
        row["hash"] = record_hash(self.hash, row)
        self.hash = row["hash"]
        self._pending.append(row)
        return self.seq

    def flush(self) -> None:
        """Write the records chained so far (once per batch, in the batch's transaction)."""
        if self._pending:
            self.conn.execute(_INSERT_AUDIT, self._pending)
            self._pending.clear()

    def write_head(self) -> None:
        """Move the head once per batch, at the end of the transaction."""
        if self.seq != self._start:
            self.conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=self.seq, hash=self.hash))
            self._start = self.seq


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of walking the chain."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def iter_records(conn: Connection, batch: int = 5000) -> Iterator[Mapping[Any, Any]]:
    last = 0
    while True:
        rows = (
            conn.execute(
                select(audit_events).where(audit_events.c.seq > last).order_by(audit_events.c.seq).limit(batch)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = int(rows[-1]["seq"])


def verify(conn: Connection) -> VerifyResult:
    """Walk the whole chain; name the first record that does not fit."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    for row in iter_records(conn):
        seq = int(row["seq"])
        if seq != expected_seq:
            return VerifyResult(False, checked, expected_seq, f"record {expected_seq} missing (next is {seq})")
        if row["prev_hash"] != prev_hash:
            return VerifyResult(False, checked, seq, "prev_hash does not match the previous record")
        if record_hash(prev_hash, row) != row["hash"]:
            return VerifyResult(False, checked, seq, "record content does not match its hash")
        prev_hash, expected_seq, checked = row["hash"], seq + 1, checked + 1
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    if head is not None and (int(head.seq) != checked or head.hash != prev_hash):
        return VerifyResult(False, checked, checked + 1, f"chain ends at {checked} but the head says {head.seq}")
    return VerifyResult(True, checked)
