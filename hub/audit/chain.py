"""The audit chain: append-only, hash-chained records.

Every record carries what the Logboek Dataverwerkingen and the MAGDA audit
register ask for (trace/span ids, event, time, status, sender, receiver,
actor, protocol, message type, subject type and a keyed hash of the subject
id; never the id). Records are appended inside the same transaction as the
exchange they describe: if the record cannot be written, the exchange does
not happen.

Each record's ``hash`` is ``SHA-256(prev_hash_hex || canonical(record))``
where ``canonical`` is the record's fields as compact JSON with sorted keys,
UTF-8, no floats in exponent form (:func:`canonical`). The same bytes come
out of ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``, so a third party can recompute a hash with the
standard library (``tools/verify_audit_export.py`` does).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, TableClause, Text, bindparam, column, insert, select, table, update

from hub.ports import JSON
from hub.store.tables import audit_events, audit_head

GENESIS = "0" * 64
# Trace and span ids must be unique, not secret: a seeded PRNG avoids a syscall per record.
_IDS = random.Random(os.urandom(32))  # noqa: S311
_INSERT_AUDIT = insert(audit_events)
# On SQLite, detail is stored as its canonical JSON text (sorted keys, no spaces),
# so verify can splice the stored text into the record's canonical bytes as is.
# A lightweight table() with detail as Text keeps SQLAlchemy from re-serialising it.
_AUDIT_TEXT = table("audit_events", *(column(c.name, Text() if c.name == "detail" else c.type) for c in audit_events.c))
_INSERT_AUDIT_TEXT = insert(_AUDIT_TEXT)
# Read and moved once per batch: built once, so SQLAlchemy does not rebuild them and their cache keys.
_READ_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_MOVE_HEAD = (
    update(audit_head).where(audit_head.c.id == 1).values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)


# How the writer inserts many rows at once (hub.store.database.insert_rows), when it passes one.
RowInserter = Callable[[Connection, TableClause, list[dict[str, Any]]], None]

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

#: The fields a record hash covers (everything but ``prev_hash`` and ``hash``).
HASHED_FIELDS = (
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

_INT_LIMIT = 2**63


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


def utc(value: datetime) -> datetime:
    """The same instant in UTC (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def ts_text(value: datetime) -> str:
    """The canonical timestamp: ``2026-11-24T01:18:16.123456+00:00``."""
    return utc(value).isoformat(timespec="microseconds")


def _check_json(value: object, path: str = "detail") -> None:
    """Refuse detail values whose JSON text differs between serialisers (exponent floats, huge ints)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ValueError(f"{path}: integer out of the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value) or "e" in repr(value):
            raise ValueError(f"{path}: float {value!r} has no canonical JSON form; store it as a string")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be strings")
            _check_json(item, f"{path}/{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{path}/{i}")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not JSON")


def json_text(value: object) -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 characters as they are."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def canonical(row: Mapping[str, Any]) -> bytes:
    """The bytes a record hash covers; ``occurred_at`` may be a datetime or canonical text."""
    body = {k: row.get(k) for k in HASHED_FIELDS}
    when = body["occurred_at"]
    if isinstance(when, datetime):
        body["occurred_at"] = ts_text(when)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def record_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """SHA-256(prev_hash || canonical JSON of the record's fields), as hex."""
    return hashlib.sha256(prev_hash.encode() + canonical(row)).hexdigest()


class ChainWriter:
    """Appends records to the chain inside the writer's transaction.

    Records are collected during the batch and chained at :meth:`flush`, at the
    end of the transaction: only then is the head (last seq and hash) read
    under a lock (``FOR UPDATE`` on PostgreSQL; SQLite's writer lock is
    already held), each record hashed onto it, inserted, and the head moved.
    Several processes can append to one chain; each holds the head only from
    its flush to its COMMIT, not while its batch runs, and a batch without
    audit records never takes it.
    """

    def __init__(self, conn: Connection, insert_rows: RowInserter | None = None) -> None:
        self.conn = conn
        self._insert_rows = insert_rows  # the writer's faster executemany, when it has one
        self.seq = self._start = 0
        self.hash = GENESIS
        self._pending: list[dict[str, Any]] = []
        self._detail_as_text = conn.dialect.name == "sqlite"

    def mark(self) -> int:
        """Where the batch stands, to :meth:`reset` to if a unit fails."""
        return len(self._pending)

    def reset(self, mark: int) -> None:
        """Forget what a failed unit appended (its savepoint was rolled back)."""
        del self._pending[mark:]

    def append(self, event: AuditEvent, now: datetime | None = None) -> int:
        """Add one record to this batch; it is chained and written at :meth:`flush`, in the same transaction.

        Returns:
            How many records this batch holds so far (the seq is given at :meth:`flush`).

        Raises:
            ValueError: an unknown event, or a detail without a canonical JSON form.
        """
        if event.event not in EVENTS:
            raise ValueError(f"unknown audit event {event.event!r}")
        _check_json(event.detail)
        # Stored in UTC: SQLite keeps the wall-clock fields and drops the zone.
        when = utc(now or datetime.now(UTC))
        self._pending.append(
            {
                "seq": 0,
                "event": event.event,
                "occurred_at": when,
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
        )
        return len(self._pending)

    def lock_head(self) -> None:
        """Read the head under its lock, held until COMMIT: serialises this transaction with every
        other writer of the chain (the checkpoint job takes it before reading the log's size)."""
        row = self.conn.execute(_READ_HEAD).first()
        if row is None:
            self.conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))
            self.seq, self.hash = 0, GENESIS
        else:
            self.seq, self.hash = int(row.seq), str(row.hash)
        self._start = self.seq

    def flush(self) -> None:
        """Chain and write the records of this batch (once per batch, at the end of its transaction)."""
        if not self._pending:
            return
        self.lock_head()
        for row in self._pending:
            row["seq"] = self.seq + 1
            row["prev_hash"] = self.hash
            row["hash"] = record_hash(self.hash, row)
            self.seq += 1
            self.hash = row["hash"]
        if self._detail_as_text:
            rows = [{**row, "detail": json_text(row["detail"])} for row in self._pending]
            if self._insert_rows is not None:
                self._insert_rows(self.conn, _AUDIT_TEXT, rows)
            else:
                self.conn.execute(_INSERT_AUDIT_TEXT, rows)
        elif self._insert_rows is not None:
            self._insert_rows(self.conn, audit_events, self._pending)
        else:
            self.conn.execute(_INSERT_AUDIT, self._pending)
        self._pending.clear()

    def write_head(self) -> None:
        """Move the head once per batch, at the end of the transaction."""
        if self.seq != self._start:
            self.conn.execute(_MOVE_HEAD, {"head_seq": self.seq, "head_hash": self.hash})
            self._start = self.seq
