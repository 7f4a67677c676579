"""The organisation's inbox: what was addressed to it, read back, rendered, exported.

Only deliveries whose receiver is the user's own organisation are ever read
here; every function takes the partner id and filters on it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from lxml import etree
from sqlalchemy import Engine, and_, func, select

from hub import envelope as env
from hub.errors import NotFound
from hub.partners import Partner
from hub.protocols import minimize
from hub.service import Hub
from hub.store.tables import deliveries, messages, portal_handled, portal_uploads

VISIBLE = ("in_inbox", "delivered")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP: prefix an apostrophe)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(header: list[str], rows: list[list[Any]], *, delimiter: str = ";") -> bytes:
    """UTF-8 with BOM (so Excel reads the accents), every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class InboxEntry:
    delivery_id: int
    message_id: str
    type: str
    version: str
    sender: str
    received_at: datetime
    status: str
    handled_at: datetime | None

    @property
    def new(self) -> bool:
        return self.status == "in_inbox"


def list_inbox(
    engine: Engine,
    partner_id: str,
    *,
    message_type: str | None = None,
    day_from: date | None = None,
    day_to: date | None = None,
    limit: int = 100,
    ids: list[int] | None = None,
) -> list[InboxEntry]:
    """Newest first."""
    query = (
        select(
            deliveries.c.id,
            deliveries.c.status,
            messages.c.id.label("mid"),
            messages.c.type,
            messages.c.version,
            messages.c.sender,
            messages.c.received_at,
            portal_handled.c.handled_at,
        )
        .join(messages, messages.c.id == deliveries.c.message_id)
        .outerjoin(portal_handled, portal_handled.c.delivery_id == deliveries.c.id)
        .where(and_(deliveries.c.receiver == partner_id, deliveries.c.status.in_(VISIBLE)))
        .order_by(messages.c.received_at.desc(), deliveries.c.id.desc())
        .limit(limit)
    )
    if message_type:
        query = query.where(messages.c.type == message_type)
    if ids is not None:
        query = query.where(deliveries.c.id.in_(ids))
    if day_from:
        query = query.where(messages.c.received_at >= datetime.combine(day_from, time.min, UTC))
    if day_to:
        query = query.where(messages.c.received_at < datetime.combine(day_to + timedelta(days=1), time.min, UTC))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        InboxEntry(
            delivery_id=int(r["id"]),
            message_id=r["mid"],
            type=r["type"],
            version=r["version"],
            sender=r["sender"],
            received_at=_utc(r["received_at"]) or datetime.now(UTC),
            status=r["status"],
            handled_at=_utc(r["handled_at"]),
        )
        for r in rows
    ]


def counts(engine: Engine, partner_id: str) -> dict[str, int]:
    """New (unopened) and unhandled inbox messages, uploads with refused rows."""
    with engine.connect() as conn:
        new = conn.execute(
            select(func.count())
            .select_from(deliveries)
            .where(and_(deliveries.c.receiver == partner_id, deliveries.c.status == "in_inbox"))
        ).scalar_one()
        unhandled = conn.execute(
            select(func.count())
            .select_from(deliveries.outerjoin(portal_handled, portal_handled.c.delivery_id == deliveries.c.id))
            .where(
                and_(
                    deliveries.c.receiver == partner_id,
                    deliveries.c.status.in_(VISIBLE),
                    portal_handled.c.delivery_id.is_(None),
                )
            )
        ).scalar_one()
        with_errors = conn.execute(
            select(func.count())
            .select_from(portal_uploads)
            .where(and_(portal_uploads.c.partner_id == partner_id, portal_uploads.c.rows_failed > 0))
        ).scalar_one()
        uploads = conn.execute(
            select(func.count()).select_from(portal_uploads).where(portal_uploads.c.partner_id == partner_id)
        ).scalar_one()
    return {
        "new": int(new),
        "unhandled": int(unhandled),
        "uploads_with_errors": int(with_errors),
        "uploads": int(uploads),
    }


def entries_by_ids(engine: Engine, partner_id: str, delivery_ids: list[int]) -> list[InboxEntry]:
    """The entries among ``delivery_ids`` that belong to this partner (others are silently absent)."""
    if not delivery_ids:
        return []
    return list_inbox(engine, partner_id, ids=delivery_ids[:1000], limit=1000)


def entry(engine: Engine, partner_id: str, delivery_id: int) -> InboxEntry:
    found = entries_by_ids(engine, partner_id, [delivery_id])
    if not found:
        # the same answer whether it does not exist or belongs to someone else
        raise NotFound("dit bericht bestaat niet in uw inbox")
    return found[0]


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The JSON form of a payload as (dotted path, text) pairs, in document order."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key.startswith("@"):
                continue
            out.extend(flatten(child, f"{prefix}.{key}" if prefix else key))
    elif isinstance(value, list):
        for i, child in enumerate(value, start=1):
            out.extend(flatten(child, f"{prefix}.{i}"))
    elif isinstance(value, bool):
        out.append((prefix, "ja" if value else "nee"))
    elif value is not None:
        out.append((prefix, str(value)))
    return out


def label(path: str) -> str:
    """'persoon.identificatie.bsn' -> 'Persoon › identificatie › bsn'."""
    parts = path.split(".")
    return " › ".join(p if i else p[:1].upper() + p[1:] for i, p in enumerate(parts))


def rendered(hub: Hub, partner: Partner, e: InboxEntry) -> dict[str, Any]:
    """What the receiver may see of one message (minimised to its protocol), as JSON."""
    return hub.render_for(partner, hub.load_message(e.message_id))


def as_xml(hub: Hub, partner: Partner, entries: list[InboxEntry]) -> bytes:
    """One envelope, or a batch of envelopes, minimised to the receiver's protocol."""
    docs = []
    for e in entries:
        stored = hub.load_message(e.message_id)
        if stored.payload is None:
            continue
        protocol = hub.protocols.get(stored.protocol_id)
        payload = minimize(stored.payload, protocol.fields_for(partner.ref) if protocol else ())
        mtype = hub.infomodel.get(stored.envelope.type, stored.envelope.version)
        envelope = hub.with_subject_from_payload(mtype, stored.envelope, stored.payload)
        docs.append(env.to_xml(envelope, payload))
    if len(docs) == 1:
        return docs[0]
    batch = etree.Element("{urn:knooppunt:portaal:1}berichten", nsmap={None: "urn:knooppunt:portaal:1"})  # type: ignore[dict-item]
    for doc in docs:
        batch.append(etree.fromstring(doc))
    return bytes(etree.tostring(batch, xml_declaration=True, encoding="UTF-8"))


def as_csv(hub: Hub, partner: Partner, entries: list[InboxEntry]) -> bytes:
    """One row per message: header fields, then every payload field as a dotted column."""
    header = ["berichtId", "type", "versie", "afzender", "ontvangenOp", "protocol"]
    records = []
    fields: list[str] = []
    for e in entries:
        doc = rendered(hub, partner, e)
        flat = dict(flatten(doc.get("payload") or {}))
        for key in flat:
            if key not in fields:
                fields.append(key)
        records.append(([e.message_id, e.type, e.version, e.sender, e.received_at.isoformat(), doc["purpose"]], flat))
    rows = [head + [flat.get(f, "") for f in fields] for head, flat in records]
    return write_csv(header + fields, rows)
