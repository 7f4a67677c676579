"""Retention by crypto-shredding: drop the data key, keep the audit chain.

Payloads are encrypted with one data key per (protocol, month)
(:mod:`hub.crypto`). When a protocol's retention period has passed for the
*whole* month (from the first day of the next month), the key is destroyed
(``wrapped_key`` set to NULL, ``destroyed_at`` set), the ciphertexts are
nulled as well, and one audit record ``purged`` is appended per key. All of
it happens in one unit of the writer, so the purge and its audit record
commit together and the chain stays valid (audit records hold no payload,
so nothing in the chain is touched).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection, and_, func, select, update

from hub.audit.chain import AuditEvent, utc
from hub.errors import ConfigurationError
from hub.store.tables import data_keys, messages

if TYPE_CHECKING:
    from hub.store.database import Tx

RETENTION_ACTOR = "system:retention"


class HasRetention(Protocol):
    """Anything with a protocol id and a retention in days (``hub.protocols.Protocol`` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def retention_days(self) -> int: ...


def retention_of(protocols: Iterable[HasRetention]) -> dict[str, int]:
    """Protocol id -> retention in days, from the loaded protocols."""
    return {p.id: p.retention_days for p in protocols}


@dataclass(frozen=True, slots=True)
class PurgeItem:
    """One data key that is (or would be) destroyed."""

    data_key_id: int
    protocol_id: str
    period: str
    expired_on: datetime
    messages: int

    def as_json(self) -> dict[str, str | int]:
        return {
            "dataKeyId": self.data_key_id,
            "protocolId": self.protocol_id,
            "period": self.period,
            "expiredOn": self.expired_on.date().isoformat(),
            "messages": self.messages,
        }


def month_end(period: str) -> datetime:
    """The first instant after the month ``YYYY-MM`` (UTC)."""
    try:
        year, month = (int(x) for x in period.split("-"))
        datetime(year, month, 1, tzinfo=UTC)  # refuses month 13
    except ValueError as exc:
        raise ConfigurationError(f"data key period {period!r} is not YYYY-MM") from exc
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def plan_purge(conn: Connection, retention_days: Mapping[str, int], *, now: datetime | None = None) -> list[PurgeItem]:
    """The live data keys whose whole month is past its protocol's retention (a dry run).

    Keys of protocols not in ``retention_days`` are kept: an unknown protocol
    never loses data by accident.
    """
    now = utc(now or datetime.now(UTC))
    rows = conn.execute(
        select(data_keys.c.id, data_keys.c.protocol_id, data_keys.c.period)
        .where(data_keys.c.destroyed_at.is_(None))
        .order_by(data_keys.c.period, data_keys.c.protocol_id)
    ).all()
    due: list[tuple[int, str, str, datetime]] = []
    for key_id, protocol_id, period in rows:
        days = retention_days.get(protocol_id)
        if days is None:
            continue
        expires = month_end(period) + timedelta(days=days)
        if expires <= now:
            due.append((int(key_id), protocol_id, period, expires))
    if not due:
        return []
    counts: dict[int, int] = dict(
        conn.execute(
            select(messages.c.data_key_id, func.count())
            .where(and_(messages.c.data_key_id.in_([d[0] for d in due]), messages.c.ciphertext.is_not(None)))
            .group_by(messages.c.data_key_id)
        ).all()
    )
    return [PurgeItem(k, p, per, exp, int(counts.get(k, 0))) for k, p, per, exp in due]


def purge(tx: Tx, retention_days: Mapping[str, int], *, actor: str = RETENTION_ACTOR) -> list[PurgeItem]:
    """Destroy every expired data key and its ciphertexts, auditing each as ``purged``.

    Call inside a writer unit: ``writer.run_sync(purge_unit(retention_of(book)))``.
    """
    items = plan_purge(tx.conn, retention_days, now=tx.now)
    if not items:
        return []
    ids = [i.data_key_id for i in items]
    tx.conn.execute(
        update(data_keys)
        .where(data_keys.c.id.in_(ids), data_keys.c.destroyed_at.is_(None))
        .values(wrapped_key=None, destroyed_at=tx.now)
    )
    tx.conn.execute(update(messages).where(messages.c.data_key_id.in_(ids)).values(ciphertext=None))
    for item in items:
        tx.audit(
            AuditEvent(
                "purged",
                actor=actor,
                protocol_id=item.protocol_id,
                detail={
                    "dataKeyId": item.data_key_id,
                    "period": item.period,
                    "messages": item.messages,
                    "retentionDays": retention_days[item.protocol_id],
                },
            )
        )
    return items


def purge_unit(retention_days: Mapping[str, int], *, actor: str = RETENTION_ACTOR) -> Callable[[Tx], list[PurgeItem]]:
    """:func:`purge` as a unit for ``Writer.run_sync`` / ``Writer.submit``."""

    def unit(tx: Tx) -> list[PurgeItem]:
        return purge(tx, retention_days, actor=actor)

    return unit
