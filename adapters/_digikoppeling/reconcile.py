"""Completeness counts: what one side sent or received in a period.

Both sides of a link summarise a period the same way, so a reconcile can
compare them without exchanging content: the number of distinct message ids
and a checksum over them. The period of a message is the UTC month
(``YYYY-MM``) or day (``YYYY-MM-DD``) of its creation time (the envelope's
``createdAt``), which sender and receiver both know; the time it arrived
would differ between them.

The checksum is the SHA-256 (hex) of the message ids, each as the lowercase
hyphenated UUID, sorted, joined by ``"\\n"``. The hub can compute it without
this module; :func:`checksum` is the reference.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.errors import InputError
from hub.ports import JSON

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$")


def check_period(period: str) -> str:
    """Validate ``YYYY-MM`` or ``YYYY-MM-DD``.

    Raises:
        InputError: another shape.
    """
    if not _PERIOD.match(period):
        raise InputError(f"periode {period!r}: verwacht JJJJ-MM of JJJJ-MM-DD")
    return period


def in_period(created_at: datetime, period: str) -> bool:
    """Whether a creation time (UTC) falls in the period."""
    return created_at.astimezone(UTC).date().isoformat().startswith(period)


def checksum(message_ids: Iterable[uuid.UUID | str]) -> str:
    """SHA-256 over the sorted, newline-joined message ids."""
    ids = sorted({str(uuid.UUID(str(m))) for m in message_ids})
    return hashlib.sha256("\n".join(ids).encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class PeriodSummary:
    """One direction (sent or received) of one side in one period."""

    period: str
    count: int
    checksum: str
    message_ids: tuple[str, ...] = ()
    by_type: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, period: str, records: Iterable[tuple[uuid.UUID | str, str]]) -> PeriodSummary:
        """Summarise (message id, type) pairs; duplicates count once."""
        seen: dict[str, str] = {str(uuid.UUID(str(m))): t for m, t in records}
        by_type: dict[str, int] = {}
        for kind in seen.values():
            by_type[kind] = by_type.get(kind, 0) + 1
        return cls(period, len(seen), checksum(seen), tuple(sorted(seen)), dict(sorted(by_type.items())))

    def to_json(self) -> dict[str, JSON]:
        return {
            "period": self.period,
            "count": self.count,
            "checksum": self.checksum,
            "messageIds": list(self.message_ids),
            "byType": dict(self.by_type),
        }

    @classmethod
    def from_json(cls, doc: object) -> PeriodSummary:
        """Read the JSON form (also the body of the simulators' reconcile answers).

        Raises:
            InputError: a field is missing or has the wrong type.
        """
        if not isinstance(doc, dict):
            raise InputError("verwacht een object met period, count, checksum, messageIds")
        ids, by_type = doc.get("messageIds", []), doc.get("byType", {})
        count, total = doc.get("count"), doc.get("checksum")
        if not isinstance(ids, list) or not isinstance(by_type, dict) or not isinstance(count, int):
            raise InputError("messageIds (lijst), byType (object) en count (getal) zijn nodig")
        return cls(
            period=str(doc.get("period", "")),
            count=count,
            checksum=str(total),
            message_ids=tuple(str(i) for i in ids),
            by_type={str(k): int(v) for k, v in by_type.items()},
        )


@dataclass(frozen=True, slots=True)
class Gaps:
    """The difference between what one side sent and the other received."""

    missing_at_receiver: tuple[str, ...]
    unexpected_at_receiver: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing_at_receiver and not self.unexpected_at_receiver


def compare(sent: PeriodSummary, received: PeriodSummary) -> Gaps:
    """Which ids one side sent that the other never received, and the reverse."""
    if sent.checksum == received.checksum:
        return Gaps((), ())
    ours, theirs = set(sent.message_ids), set(received.message_ids)
    return Gaps(tuple(sorted(ours - theirs)), tuple(sorted(theirs - ours)))
