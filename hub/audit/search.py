"""DPO queries over the audit log: search, the data-subject report, CSV and JSON export.

Pure functions over a SQLAlchemy ``Connection``; the API layer hashes the
INSZ/BSN a DPO typed (``SubjectHasher``) before calling them, so a national
number never reaches this module or the database. Results are pages in
``seq`` order with an opaque cursor (keyset pagination: stable while the log
grows, O(page) per page).
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import orjson
from sqlalchemy import ColumnElement, Connection, Select, and_, or_, select, union_all

from hub.audit.chain import EVENTS, AuditEvent, utc
from hub.errors import InputError
from hub.store.tables import audit_events

#: Events that mean personal data left one party for another (the report shows these).
EXCHANGE_EVENTS = ("received", "delivered", "consulted", "replayed")
MAX_LIMIT = 1000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit record as the DPO sees it (never a national number: only its keyed hash)."""

    seq: int
    event: str
    occurred_at: datetime
    status: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    message_id: str | None
    message_type: str | None
    sender: str | None
    receiver: str | None
    actor: str | None
    protocol_id: str | None
    subject_type: str | None
    subject_hash: str | None
    detail: Mapping[str, Any]
    hash: str

    def as_json(self) -> dict[str, Any]:
        """camelCase keys, as the API answers."""
        return {
            "seq": self.seq,
            "event": self.event,
            "occurredAt": utc(self.occurred_at).isoformat(timespec="microseconds"),
            "status": self.status,
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentSpanId": self.parent_span_id,
            "messageId": self.message_id,
            "messageType": self.message_type,
            "sender": self.sender,
            "receiver": self.receiver,
            "actor": self.actor,
            "protocolId": self.protocol_id,
            "subjectType": self.subject_type,
            "subjectHash": self.subject_hash,
            "detail": dict(self.detail),
            "hash": self.hash,
        }


CSV_COLUMNS = (
    "seq", "event", "occurredAt", "status", "sender", "receiver", "actor", "protocolId", "messageType",
    "messageId", "subjectType", "subjectHash", "traceId", "spanId", "parentSpanId", "detail", "hash",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What a DPO searches for; every given field narrows the result (AND)."""

    subject_hash: str | None = None
    partner: str | None = None
    sender: str | None = None
    receiver: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    protocol_id: str | None = None
    message_type: str | None = None
    events: tuple[str, ...] = ()
    status: str | None = None
    message_id: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records and the cursor for the next (None at the end)."""

    records: list[AuditRecord]
    next_cursor: str | None

    def as_json(self) -> dict[str, Any]:
        return {"records": [r.as_json() for r in self.records], "nextCursor": self.next_cursor}


def subject_hash_of(hasher: Callable[[str, str], str], subject_type: str, subject_id: str) -> str:
    """The keyed hash a DPO searches by, spelled as the hub writes it (``"INSZ:<digits>"``).

    ``hasher`` is the hub's ``SubjectHasher``; ``subject_id`` the validated
    number (``str(INSZ(...))`` or ``str(BSN(...))``) from the POST body.
    """
    return hasher(subject_type.strip().upper(), subject_id.strip())


def encode_cursor(seq: int, newest_first: bool) -> str:
    return base64.urlsafe_b64encode(f"{'d' if newest_first else 'a'}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, newest_first: bool) -> int:
    """The seq a cursor continues after. Raises InputError for a foreign or mangled cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw[0] != ("d" if newest_first else "a"):
            raise ValueError("direction")
        return int(raw[1:])
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputError("invalid cursor (it belongs to another query or order)") from exc


def _row(r: Any) -> AuditRecord:
    detail = r["detail"]
    if isinstance(detail, str | bytes):
        detail = orjson.loads(detail)
    return AuditRecord(
        seq=int(r["seq"]),
        event=r["event"],
        occurred_at=utc(r["occurred_at"]),
        status=r["status"],
        trace_id=r["trace_id"],
        span_id=r["span_id"],
        parent_span_id=r["parent_span_id"],
        message_id=r["message_id"],
        message_type=r["message_type"],
        sender=r["sender"],
        receiver=r["receiver"],
        actor=r["actor"],
        protocol_id=r["protocol_id"],
        subject_type=r["subject_type"],
        subject_hash=r["subject_hash"],
        detail=detail or {},
        hash=r["hash"],
    )


_SELECTED = [c for c in audit_events.c if c.name != "prev_hash"]


def _conditions(q: AuditQuery) -> list[ColumnElement[bool]]:
    c = audit_events.c
    where: list[ColumnElement[bool]] = []
    unknown = [e for e in q.events if e not in EVENTS]
    if unknown:
        raise InputError(f"unknown audit events: {', '.join(sorted(unknown))}")
    if q.subject_hash is not None:
        where.append(c.subject_hash == q.subject_hash)
    if q.sender is not None:
        where.append(c.sender == q.sender)
    if q.receiver is not None:
        where.append(c.receiver == q.receiver)
    if q.since is not None:
        where.append(c.occurred_at >= utc(q.since))
    if q.until is not None:
        where.append(c.occurred_at < utc(q.until))
    if q.protocol_id is not None:
        where.append(c.protocol_id == q.protocol_id)
    if q.message_type is not None:
        where.append(c.message_type == q.message_type)
    if q.events:
        where.append(c.event.in_(q.events))
    if q.status is not None:
        where.append(c.status == q.status)
    if q.message_id is not None:
        where.append(c.message_id == q.message_id)
    if q.trace_id is not None:
        where.append(c.trace_id == q.trace_id)
    return where


def _statement(q: AuditQuery, after: int | None, limit: int, newest_first: bool) -> Select[Any]:
    c = audit_events.c
    where = _conditions(q)
    if after is not None:
        where.append(c.seq < after if newest_first else c.seq > after)
    order = c.seq.desc() if newest_first else c.seq.asc()
    if q.partner is None:
        return select(*_SELECTED).where(*where).order_by(order).limit(limit)
    # Sender OR receiver as a UNION of two index range scans: an OR would make
    # SQLite walk the whole table in seq order for a rare partner.
    as_sender = select(*_SELECTED).where(*where, c.sender == q.partner).order_by(order).limit(limit)
    as_receiver = (
        select(*_SELECTED)
        .where(*where, c.receiver == q.partner, or_(c.sender.is_(None), c.sender != q.partner))
        .order_by(order)
        .limit(limit)
    )
    both = union_all(as_sender.subquery().select(), as_receiver.subquery().select()).subquery()
    return select(*both.c).order_by(both.c.seq.desc() if newest_first else both.c.seq.asc()).limit(limit)


def search(
    conn: Connection,
    query: AuditQuery,
    *,
    limit: int = 100,
    cursor: str | None = None,
    newest_first: bool = True,
) -> Page:
    """One page of the records matching ``query``; pass ``next_cursor`` back for the next page.

    Raises:
        InputError: a bad cursor, limit or event name.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}")
    after = decode_cursor(cursor, newest_first) if cursor else None
    rows = conn.execute(_statement(query, after, limit + 1, newest_first)).mappings().all()
    records = [_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(records, encode_cursor(records[-1].seq, newest_first) if more and records else None)


def iter_search(
    conn: Connection, query: AuditQuery, *, page_size: int = 1000, newest_first: bool = False
) -> Iterable[AuditRecord]:
    """Every matching record, page by page (for exports)."""
    cursor: str | None = None
    while True:
        page = search(conn, query, limit=page_size, cursor=cursor, newest_first=newest_first)
        yield from page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One line of the data-subject report: who, what, when, why."""

    occurred_at: datetime
    event: str
    sender: str | None
    receiver: str | None
    actor: str | None
    message_type: str | None
    category: str
    protocol_id: str | None
    purpose: str
    status: str
    seq: int

    def as_json(self) -> dict[str, Any]:
        return {
            "occurredAt": utc(self.occurred_at).isoformat(timespec="seconds"),
            "event": self.event,
            "sender": self.sender,
            "receiver": self.receiver,
            "actor": self.actor,
            "messageType": self.message_type,
            "category": self.category,
            "protocolId": self.protocol_id,
            "purpose": self.purpose,
            "status": self.status,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class SubjectReport:
    """All exchanges and consultations about one person in a period ("who consulted my data")."""

    subject_hash: str
    since: datetime
    until: datetime
    entries: list[ReportEntry]
    by_partner: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "subjectHash": self.subject_hash,
            "since": utc(self.since).isoformat(timespec="seconds"),
            "until": utc(self.until).isoformat(timespec="seconds"),
            "count": len(self.entries),
            "byPartner": self.by_partner,
            "entries": [e.as_json() for e in self.entries],
        }


def subject_report(
    conn: Connection,
    subject_hash: str,
    *,
    now: datetime | None = None,
    months: int = 12,
    events: Sequence[str] = EXCHANGE_EVENTS,
    categories: Mapping[str, str] | None = None,
    purposes: Mapping[str, str] | None = None,
) -> SubjectReport:
    """The last ``months`` (30.5 days each) of exchanges about one person, newest first.

    Args:
        categories: message type -> data category shown to the person (defaults to the type).
        purposes: protocol id -> purpose text (e.g. from ``ProtocolBook``; defaults to the id).
    """
    until = utc(now or datetime.now(UTC))
    since = until - timedelta(days=round(30.5 * months))
    c = audit_events.c
    rows = conn.execute(
        select(c.seq, c.occurred_at, c.event, c.sender, c.receiver, c.actor, c.message_type, c.protocol_id, c.status)
        .where(and_(c.subject_hash == subject_hash, c.occurred_at >= since, c.occurred_at < until, c.event.in_(events)))
        .order_by(c.occurred_at.desc(), c.seq.desc())
    ).all()
    categories = categories or {}
    purposes = purposes or {}
    entries = [
        ReportEntry(
            occurred_at=utc(r.occurred_at),
            event=r.event,
            sender=r.sender,
            receiver=r.receiver,
            actor=r.actor,
            message_type=r.message_type,
            category=categories.get(r.message_type or "", r.message_type or ""),
            protocol_id=r.protocol_id,
            purpose=purposes.get(r.protocol_id or "", r.protocol_id or ""),
            status=r.status,
            seq=int(r.seq),
        )
        for r in rows
    ]
    partners: Counter[str] = Counter()
    for e in entries:
        for p in {e.sender, e.receiver} - {None}:
            partners[str(p)] += 1
    return SubjectReport(subject_hash, since, until, entries, dict(partners.most_common()))


def csv_safe(value: object) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading apostrophe.

    Also catches what defusedcsv lets through: the trigger after leading
    spaces or other whitespace, and full-width variants (＝ ＋ － ＠).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    stripped = text.lstrip(" \n\x0b\x0c\u00a0")
    if stripped and (stripped[0] in _FORMULA_START or stripped[0] in "\uff1d\uff0b\uff0d\uff20"):
        return "'" + text
    return text


def to_csv(records: Iterable[AuditRecord], out: TextIO | None = None) -> str:
    """Write records as CSV (header row, RFC 4180 quoting, formula-safe cells).

    Returns the text when ``out`` is None, else writes to ``out`` and returns "".
    """
    buffer = out if out is not None else io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        d = r.as_json()
        d["detail"] = orjson.dumps(d["detail"], option=orjson.OPT_SORT_KEYS).decode()
        writer.writerow([csv_safe(d[k]) for k in CSV_COLUMNS])
    return buffer.getvalue() if out is None and isinstance(buffer, io.StringIO) else ""


def to_json(records: Iterable[AuditRecord], *, query: AuditQuery | None = None) -> bytes:
    """Records as one JSON document ``{"records": [...], "count": n}``."""
    items = [r.as_json() for r in records]
    doc: dict[str, Any] = {"count": len(items), "records": items}
    if query is not None:
        doc["query"] = {k: v for k, v in _query_json(query).items() if v not in (None, [])}
    return orjson.dumps(doc)


def _query_json(q: AuditQuery) -> dict[str, Any]:
    return {
        "subjectHash": q.subject_hash,
        "partner": q.partner,
        "sender": q.sender,
        "receiver": q.receiver,
        "since": utc(q.since).isoformat() if q.since else None,
        "until": utc(q.until).isoformat() if q.until else None,
        "protocolId": q.protocol_id,
        "messageType": q.message_type,
        "events": list(q.events),
        "status": q.status,
        "messageId": q.message_id,
        "traceId": q.trace_id,
    }


def dpo_query_event(
    actor: str,
    kind: str,
    *,
    query: AuditQuery | None = None,
    subject_type: str | None = None,
    subject_hash: str | None = None,
    results: int | None = None,
    trace_id: str = "",
) -> AuditEvent:
    """The ``consulted`` record that audits a DPO query (append it with ``tx.audit``).

    A query about a person carries that person's subject hash, so their own
    report shows that a DPO looked; the filters are kept without the hash.

    Args:
        actor: ``dpo:<id>`` of the DPO who asked.
        kind: ``search``, ``report``, ``export`` or ``verify``.
    """
    filters: dict[str, Any] = {}
    if query is not None:
        filters = {k: v for k, v in _query_json(query).items() if v not in (None, []) and k != "subjectHash"}
        subject_hash = subject_hash or query.subject_hash
    detail: dict[str, Any] = {"dpoQuery": kind, "filters": filters}
    if results is not None:
        detail["results"] = results
    return AuditEvent(
        "consulted",
        trace_id=trace_id,
        actor=actor,
        subject_type=subject_type if subject_hash else None,
        subject_hash=subject_hash,
        detail=detail,
    )


_EVENT_LABELS = {
    "received": "ontving van",
    "delivered": "leverde aan",
    "consulted": "raadpleegde",
    "replayed": "leverde opnieuw aan",
}


def subject_report_html(
    report: SubjectReport, *, title: str = "Wie heeft uw gegevens uitgewisseld of geraadpleegd?"
) -> str:
    """The report as a printable, self-contained HTML page (every value escaped)."""
    esc = html.escape
    rows = []
    for e in report.entries:
        who = e.actor or e.sender or ""
        whom = e.receiver or ""
        rows.append(
            "<tr>"
            f"<td>{esc(e.occurred_at.strftime('%d-%m-%Y %H:%M'))}</td>"
            f"<td>{esc(who)}</td>"
            f"<td>{esc(_EVENT_LABELS.get(e.event, e.event))}</td>"
            f"<td>{esc(whom)}</td>"
            f"<td>{esc(e.category)}</td>"
            f"<td>{esc(e.purpose)}</td>"
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="6">Geen uitwisselingen in deze periode.</td></tr>'
    return f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;width:100%}}
th,td{{border:1px solid #999;padding:.3em .5em;text-align:left;vertical-align:top}}
@media print{{body{{margin:0}}}}
</style></head><body>
<h1>{esc(title)}</h1>
<p>Periode: {esc(report.since.strftime("%d-%m-%Y"))} tot {esc(report.until.strftime("%d-%m-%Y"))}.
{len(report.entries)} uitwisseling(en). Referentie (gesleutelde hash): <code>{esc(report.subject_hash[:16])}…</code></p>
<table><thead><tr><th>Wanneer</th><th>Wie</th><th>Wat</th><th>Aan wie</th>
<th>Welke gegevens</th><th>Waarom</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""
