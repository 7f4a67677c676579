"""The reference directory (KSZ's verwijzingsrepertorium) and person-bound routing.

Who follows which person, in which capacity (``hoedanigheid``), for which
period, under which protocol::

    directory_persons        one row per person (a surrogate key, nothing else)
    directory_identifiers    keyed hash of an INSZ / bis number / BSN -> person,
                             the value encrypted, status active|replaced|cancelled
    directory_subscriptions  person, partner, capacity, protocol, valid_from..valid_until

A replaced bis number or a cancelled INSZ keeps pointing at the same person,
so the person's follow-ups and history stay together (identifier history).

Person-bound routing: a message whose routing rule says ``toFollowers: true``
goes to every partner that follows its subject today in a capacity the
message's protocol allows for that partner (``capacities`` in the protocol),
and to nobody else. The sender gets a :class:`Forwarding` at once: to whom,
and how many followers were not served and why (counts, never names: who
follows a person is itself personal data).

A ``persoonsmutatie`` also changes the directory, in the same transaction as
the message:

- VERHUIZING: the warm handover. The municipality owning
  ``nieuweGemeentecode`` becomes the person's ``woongemeente`` (and receives
  this message); the previous ``woongemeente`` follow-up ends the day before.
- NIEUW_INSZ: ``nieuweIdentificatie`` is linked to the same person; the old
  number is marked replaced.
- INSZ_GESCHRAPT: the number is marked cancelled; the person stays.
- OVERLIJDEN: every follow-up ends on the date of death (after this message).

Registrations come from REST (``hub/api/directory.py``), SOAP
(RegistreerInschrijving / RegistreerUitschrijving) and the portal; all call
:meth:`Directory.register` / :meth:`Directory.deregister`, which check the
capacity against a protocol and write an audit record in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from lxml import etree
from sqlalchemy import Connection, Engine, and_, bindparam, insert, or_, select, update

from hub.audit import AuditEvent
from hub.auth import check_scope
from hub.crypto import SubjectHasher, decrypt, encrypt
from hub.errors import Conflict, InvalidParam, NotAllowed, NotFound, ValidationFailed
from hub.identifiers import IdentifierError, parse_subject
from hub.partners import Partner, PartnerDirectory
from hub.protocols import Protocol, ProtocolBook
from hub.routing import field_value
from hub.store.database import HotReads, Tx, Writer
from hub.store.tables import directory_identifiers, directory_persons, directory_subscriptions

if TYPE_CHECKING:
    from hub.service import KeyRing

log = structlog.get_logger(__name__)

# Identifier values are encrypted with one data key of their own (not per
# protocol and month: the directory outlives any one message's retention).
KEY_SCOPE = ("_repertorium", "0000-00")

MUTATION_TYPE = "persoonsmutatie"
HANDOVER_CAPACITY = "woongemeente"

ACTIVE, REPLACED, CANCELLED = "active", "replaced", "cancelled"

_NOT_FORWARDED = {
    "capacity_not_allowed": "volgt de persoon in een hoedanigheid die dit protocol niet toestaat",
    "partner_inactive": "volger is niet (meer) actief op de hub",
    "new_municipality_unknown": "de nieuwe gemeente is niet aangesloten op de hub",
    "handover_not_allowed": "geen protocol laat de nieuwe gemeente de persoon opvolgen als woongemeente",
    "not_following": "genoemde ontvanger volgt deze persoon niet in een hoedanigheid die dit protocol toestaat",
}


class IdentifierCancelled(Conflict):
    """The INSZ was cancelled (MAGDA 30002): register under the person's current number."""

    code = "insz_cancelled"


def _today() -> date:
    return datetime.now(UTC).date()


# -- what the directory answers ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    """One follow-up: a partner follows a person in a capacity, for a period."""

    id: int
    partner_id: str
    capacity: str
    protocol_id: str
    valid_from: date
    valid_until: date | None
    ended: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "inschrijvingId": self.id,
            "partner": self.partner_id,
            "hoedanigheid": self.capacity,
            "protocol": self.protocol_id,
            "begin": self.valid_from.isoformat(),
            "einde": self.valid_until.isoformat() if self.valid_until else None,
            "beeindigd": self.ended,
        }


@dataclass(frozen=True, slots=True)
class Registration:
    """The answer to a registration: the follow-up and whether it is new."""

    subscription: Subscription
    created: bool

    def as_json(self) -> dict[str, Any]:
        return {**self.subscription.as_json(), "nieuw": self.created}


@dataclass(frozen=True, slots=True)
class Handover:
    """A warm handover: ``to_partner`` follows the person as ``capacity`` from now on."""

    to_partner: str
    capacity: str


@dataclass(frozen=True, slots=True)
class _Follow:
    partner_id: str
    capacity: str
    protocol_id: str
    valid_from: date
    reason: str


@dataclass(frozen=True, slots=True)
class _EndFollowing:
    capacity: str | None  # None: every capacity
    keep: str | None  # this partner's follow-up stays
    valid_until: date
    reason: str


@dataclass(frozen=True, slots=True)
class _Relink:
    subject_type: str
    subject_id: str


@dataclass(frozen=True, slots=True)
class _Cancel:
    pass


Effect = _Follow | _EndFollowing | _Relink | _Cancel


@dataclass(frozen=True)
class Forwarding:
    """The "forwarded to N / not forwarded because ..." answer of a person-bound message."""

    receivers: tuple[str, ...]
    not_forwarded: Mapping[str, int] = field(default_factory=dict)
    reason: str | None = None
    handover: Handover | None = None
    effects: tuple[Effect, ...] = ()
    replayed: bool = False
    #: (partner, capacity) of every follower the directory had when it was planned (None on a
    #: replay): the signal notices are worked out from the same read, not a second one
    follows: tuple[tuple[str, str], ...] | None = field(default=None, compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "personBound": True,
            "forwarded": len(self.receivers),
            "receivers": list(self.receivers),
            "notForwarded": [
                {"reason": code, "count": n, "explanation": _NOT_FORWARDED.get(code, code)}
                for code, n in sorted(self.not_forwarded.items())
            ],
            "reason": self.reason,
        }
        if self.handover is not None:
            out["handover"] = {"to": self.handover.to_partner, "capacity": self.handover.capacity}
        if self.replayed:
            out["replayed"] = True
        return out

    def restricted_to(self, named: Iterable[str]) -> Forwarding:
        """Only the receivers the sender named that the directory allows; the rest counted as not following."""
        named = tuple(dict.fromkeys(named))
        skipped = Counter(self.not_forwarded)
        outside = sum(1 for r in named if r not in self.receivers)
        if outside:
            skipped["not_following"] += outside
        receivers = tuple(r for r in self.receivers if r in named)
        reason = self.reason
        if not receivers and reason is None:
            reason = "geen van de genoemde ontvangers volgt deze persoon in een toegestane hoedanigheid"
        return replace(self, receivers=receivers, not_forwarded=dict(skipped), reason=reason)

    @property
    def summary(self) -> dict[str, Any]:
        """What the audit record "routed" keeps of it."""
        out: dict[str, Any] = {"personBound": True, "notForwarded": dict(self.not_forwarded)}
        if self.reason:
            out["reason"] = self.reason
        if self.handover is not None:
            out["handover"] = {"to": self.handover.to_partner, "capacity": self.handover.capacity}
        return out


# -- the directory ------------------------------------------------------------------


FOLLOWERS = (
    select(directory_subscriptions.c.partner_id, directory_subscriptions.c.capacity)
    .select_from(
        directory_identifiers.join(
            directory_subscriptions, directory_subscriptions.c.person_id == directory_identifiers.c.person_id
        )
    )
    .where(
        and_(
            directory_identifiers.c.id_hash == bindparam("id_hash"),
            directory_subscriptions.c.valid_from <= bindparam("at"),
            or_(
                directory_subscriptions.c.valid_until.is_(None),
                directory_subscriptions.c.valid_until >= bindparam("at"),
            ),
        )
    )
)

#: the most identifier hashes one follower read asks for (a turn with more reads in chunks)
FOLLOWERS_CHUNK = 32
_FOLLOWERS_OF: dict[int, Any] = {}


def followers_of(n: int) -> Any:
    """FOLLOWERS for ``n`` identifier hashes at once (binds h0 .. h<n-1> and at), with each row's
    hash, in a fixed order; built once per size (powers of two, so a few statements serve all)."""
    statement = _FOLLOWERS_OF.get(n)
    if statement is None:
        statement = _FOLLOWERS_OF[n] = (
            select(
                directory_identifiers.c.id_hash,
                directory_subscriptions.c.partner_id,
                directory_subscriptions.c.capacity,
            )
            .select_from(
                directory_identifiers.join(
                    directory_subscriptions, directory_subscriptions.c.person_id == directory_identifiers.c.person_id
                )
            )
            .where(
                and_(
                    directory_identifiers.c.id_hash.in_([bindparam(f"h{i}") for i in range(n)]),
                    directory_subscriptions.c.valid_from <= bindparam("at"),
                    or_(
                        directory_subscriptions.c.valid_until.is_(None),
                        directory_subscriptions.c.valid_until >= bindparam("at"),
                    ),
                )
            )
            .order_by(
                directory_identifiers.c.id_hash,
                directory_subscriptions.c.partner_id,
                directory_subscriptions.c.capacity,
            )
        )
    return statement


class FollowerReads:
    """The follower reads of one turn of an event loop, answered by one query.

    Every person-bound message asks who follows its person. The requests that arrived
    together reach that point in the same turn of the server's loop; the first to ask
    schedules one read for all of them at the end of the turn (``call_soon``), so N
    such messages cost one statement and one wait for the database instead of N (on
    PostgreSQL each was a round trip that held the loop). Each caller gets its own
    answer; one that gave up (cancelled) is skipped, and a failed read fails each of
    the turn's callers as its own read would have.
    """

    def __init__(self, reads: HotReads) -> None:
        self.reads = reads
        # per event loop: (id hash, day) -> the futures of the callers asking for it this turn
        self._asked: dict[asyncio.AbstractEventLoop, dict[tuple[str, date], list[asyncio.Future[Any]]]] = {}
        self.statements = 0  # reads run (for tests and diagnostics)

    def now(self, hashes: list[str], at: date) -> dict[str, list[tuple[str, str]]]:
        """id hash -> (partner, capacity) of its followers valid on ``at``, read at once (in chunks)."""
        found: dict[str, list[tuple[str, str]]] = {h: [] for h in hashes}
        for start in range(0, len(hashes), FOLLOWERS_CHUNK):
            chunk = hashes[start : start + FOLLOWERS_CHUNK]
            size = 1 << (len(chunk) - 1).bit_length()  # padded to a power of two with the last hash
            params: dict[str, Any] = {f"h{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}
            params["at"] = at
            self.statements += 1
            for id_hash, partner_id, capacity in self.reads.rows(followers_of(size), params):
                found[str(id_hash)].append((str(partner_id), str(capacity)))
        return found

    async def get(self, id_hash: str, at: date) -> list[tuple[str, str]]:
        """(partner, capacity) of every follower of ``id_hash`` on ``at``, read with the others of this turn."""
        loop = asyncio.get_running_loop()
        asked = self._asked.get(loop)
        if asked is None:
            asked = self._asked[loop] = {}
            loop.call_soon(self._answer, loop)
        future: asyncio.Future[list[tuple[str, str]]] = loop.create_future()
        asked.setdefault((id_hash, at), []).append(future)
        return await future

    def _answer(self, loop: asyncio.AbstractEventLoop) -> None:
        asked = self._asked.pop(loop, {})
        days: dict[date, list[str]] = {}
        for id_hash, at in asked:
            days.setdefault(at, []).append(id_hash)
        for at, hashes in days.items():
            try:
                found = self.now(hashes, at)
            except Exception as exc:  # noqa: BLE001 - each caller fails as its own read would have
                for id_hash in hashes:
                    for future in asked[(id_hash, at)]:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for id_hash in hashes:
                for future in asked[(id_hash, at)]:
                    if not future.done():
                        future.set_result(list(found[id_hash]))


class Directory:
    """Reads and changes the reference directory; routes person-bound messages."""

    def __init__(
        self,
        *,
        engine: Engine,
        writer: Writer,
        hasher: SubjectHasher,
        keys: KeyRing,
        protocols: ProtocolBook,
        partners: PartnerDirectory,
        allow_test_numbers: bool = False,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.hasher = hasher
        self.keys = keys
        self.protocols = protocols
        self.partners = partners
        self.allow_test_numbers = allow_test_numbers
        self.reads = HotReads(engine)  # the follower lookup runs for every person-bound message
        self.follower_reads = FollowerReads(self.reads)

    # -- keys and identifiers ---------------------------------------------------------

    async def key(self) -> tuple[int, bytes]:
        """The (id, key) that encrypts identifier values, created on first use."""
        ref = self.keys.cached(*KEY_SCOPE)
        if ref is None:
            key_id, key = await self.writer.submit(self.keys.ensure_unit(*KEY_SCOPE))
            self.keys.remember(*KEY_SCOPE, key_id, key)
            ref = (key_id, key)
        return ref

    def parse(self, subject_type: str, subject_id: str, name: str = "subject") -> tuple[str, str]:
        """A validated (type, id) pair, or ValidationFailed naming ``name``."""
        try:
            return subject_type, str(
                parse_subject(subject_type, subject_id, allow_test_numbers=self.allow_test_numbers)
            )
        except IdentifierError as exc:
            raise ValidationFailed(
                "ongeldig identificatienummer", invalid_params=[InvalidParam(f"{name}/id", str(exc), "identifier")]
            ) from exc

    def identifier_value(self, conn: Connection, row: Mapping[Any, Any]) -> str:
        """Decrypt the value of an identifier row."""
        key = self.keys.by_id(conn, int(row["data_key_id"]))
        return decrypt(key, row["nonce"], row["ciphertext"], str(row["id_hash"]).encode()).decode()

    @staticmethod
    def person_of(conn: Connection, id_hash: str) -> tuple[int, str] | None:
        """(person id, identifier status) for an identifier hash, or None."""
        row = conn.execute(
            select(directory_identifiers.c.person_id, directory_identifiers.c.status).where(
                directory_identifiers.c.id_hash == id_hash
            )
        ).first()
        return (int(row.person_id), str(row.status)) if row else None

    @staticmethod
    def hashes_of(conn: Connection, person_id: int) -> list[str]:
        """Every identifier hash of a person (current, replaced and cancelled)."""
        rows = conn.execute(
            select(directory_identifiers.c.id_hash).where(directory_identifiers.c.person_id == person_id)
        ).all()
        return [str(r.id_hash) for r in rows]

    def person_hashes(self, subject_type: str, subject_id: str) -> list[str]:
        """All identifier hashes of the person behind this identifier (at least its own hash)."""
        own = self.hasher(subject_type, subject_id)
        with self.engine.connect() as conn:
            found = self.person_of(conn, own)
            if found is None:
                return [own]
            hashes = self.hashes_of(conn, found[0])
        return hashes if own in hashes else [own, *hashes]

    async def read_followers(self, id_hash: str) -> tuple[date, list[tuple[str, str]]]:
        """Today and the followers of ``id_hash`` today, for :meth:`plan`: read together with the
        other person-bound messages of this turn of the loop (see :class:`FollowerReads`)."""
        today = _today()
        return today, await self.follower_reads.get(id_hash, today)

    @staticmethod
    def followers(conn: Connection, id_hash: str, at: date) -> list[tuple[str, str]]:
        """(partner, capacity) of every follow-up of the person behind ``id_hash`` valid on ``at``.

        One indexed join: identifier hash (primary key) -> person -> subscriptions. The
        statement is built once (it runs on the ingest path of every person-bound message).
        """
        rows = conn.execute(FOLLOWERS, {"id_hash": id_hash, "at": at}).all()
        return [(str(r.partner_id), str(r.capacity)) for r in rows]

    # -- registration -------------------------------------------------------------------

    def protocol_for(self, capacity: str, partner: Partner, purpose: str | None = None) -> Protocol:
        """The protocol under which ``partner`` may follow persons as ``capacity``.

        Raises:
            NotAllowed: no (or not the named) protocol allows that capacity for that partner.
        """
        if purpose:
            protocol = self.protocols.get(purpose)
            if protocol is None:
                raise NotAllowed(
                    f"er bestaat geen protocol {purpose!r}",
                    invalid_params=[InvalidParam("purpose", "onbekend protocol", "protocol")],
                )
            if not protocol.allows_capacity(capacity, partner.ref):
                allowed = ", ".join(sorted(protocol.capacities)) or "geen"
                raise NotAllowed(
                    f"protocol {protocol.id} staat niet toe dat {partner.id} personen volgt als {capacity!r}",
                    invalid_params=[InvalidParam("capacity", f"toegestaan onder {protocol.id}: {allowed}", "protocol")],
                )
            return protocol
        for protocol in sorted(self.protocols.all(), key=lambda p: p.id):
            if protocol.allows_capacity(capacity, partner.ref):
                return protocol
        raise NotAllowed(
            f"geen protocol staat toe dat {partner.id} personen volgt als {capacity!r}",
            invalid_params=[
                InvalidParam("capacity", "geen protocol met deze hoedanigheid voor deze partner", "protocol")
            ],
        )

    async def register(
        self,
        caller: Partner,
        *,
        subject_type: str,
        subject_id: str,
        capacity: str,
        purpose: str | None = None,
        valid_from: date | None = None,
        valid_until: date | None = None,
        channel: str = "rest",
    ) -> Registration:
        """Let ``caller`` follow a person (idempotent: an open follow-up is extended, not doubled).

        The service function behind REST, SOAP and the portal.

        Raises:
            ValidationFailed: a bad identifier or period.
            NotAllowed: no protocol allows the capacity for this partner.
            IdentifierCancelled: the number was cancelled.
        """
        subject_type, subject_id = self.parse(subject_type, subject_id)
        protocol = self.protocol_for(capacity, caller, purpose)
        check_scope(caller, protocol.id)  # an OAuth2 token names the protocols it may follow under
        start = valid_from or _today()
        if valid_until is not None and valid_until < start:
            raise ValidationFailed(
                "het einde van de periode ligt voor het begin",
                invalid_params=[InvalidParam("period/end", "moet op of na begin liggen", "period")],
            )
        key_id, key = await self.key()
        id_hash = self.hasher(subject_type, subject_id)

        def unit(tx: Tx) -> Registration:
            person_id, status = self._ensure_person(tx, subject_type, subject_id, id_hash, key_id, key)
            if status == CANCELLED:
                raise IdentifierCancelled("dit INSZ is geschrapt; schrijf in op het huidige nummer van de persoon")
            s = directory_subscriptions
            open_row = (
                tx.conn.execute(
                    select(s).where(
                        and_(
                            s.c.person_id == person_id,
                            s.c.partner_id == caller.id,
                            s.c.capacity == capacity,
                            s.c.ended_at.is_(None),
                        )
                    )
                )
                .mappings()
                .first()
            )
            if open_row is not None:
                created = False
                sub_id = int(open_row["id"])
                begin = min(open_row["valid_from"], start)
                tx.conn.execute(update(s).where(s.c.id == sub_id).values(valid_from=begin, valid_until=valid_until))
            else:
                created = True
                begin = start
                result = tx.conn.execute(
                    insert(s).values(
                        person_id=person_id,
                        partner_id=caller.id,
                        capacity=capacity,
                        protocol_id=protocol.id,
                        valid_from=begin,
                        valid_until=valid_until,
                        created_at=tx.now,
                    )
                )
                sub_id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
            tx.audit(
                AuditEvent(
                    "subscribed",
                    sender=caller.id,
                    actor=caller.id,
                    protocol_id=protocol.id,
                    subject_type=subject_type,
                    subject_hash=id_hash,
                    detail={
                        "capacity": capacity,
                        "validFrom": begin.isoformat(),
                        "validUntil": valid_until.isoformat() if valid_until else None,
                        "channel": channel,
                        "new": created,
                    },
                )
            )
            return Registration(
                Subscription(sub_id, caller.id, capacity, protocol.id, begin, valid_until),
                created,
            )

        registration = await self.writer.submit(unit)
        log.info("person_subscribed", partner=caller.id, capacity=capacity, protocol=protocol.id, channel=channel)
        return registration

    async def deregister(
        self,
        caller: Partner,
        *,
        subject_type: str,
        subject_id: str,
        capacity: str | None = None,
        valid_until: date | None = None,
        channel: str = "rest",
    ) -> list[Subscription]:
        """End the caller's follow-ups of a person (one capacity or all); returns what ended.

        Raises:
            NotFound: the caller does not follow this person (MAGDA 40003).
        """
        subject_type, subject_id = self.parse(subject_type, subject_id)
        id_hash = self.hasher(subject_type, subject_id)
        # followed until and including valid_until; "now" means: no event from today on
        until = valid_until or (_today() - timedelta(days=1))

        def unit(tx: Tx) -> list[Subscription]:
            found = self.person_of(tx.conn, id_hash)
            ended = (
                self._end(tx, found[0], capacity, None, until, "uitschrijving", only_partner=caller.id) if found else []
            )
            if not ended:
                raise NotFound("deze partner volgt deze persoon niet (in deze hoedanigheid)")
            for sub in ended:
                tx.audit(
                    AuditEvent(
                        "unsubscribed",
                        sender=caller.id,
                        actor=caller.id,
                        protocol_id=sub.protocol_id,
                        subject_type=subject_type,
                        subject_hash=id_hash,
                        detail={
                            "capacity": sub.capacity,
                            "validUntil": until.isoformat(),
                            "channel": channel,
                            "reason": "uitschrijving",
                        },
                    )
                )
            return ended

        ended = await self.writer.submit(unit)
        log.info("person_unsubscribed", partner=caller.id, count=len(ended), channel=channel)
        return ended

    def subscriptions(
        self, subject_type: str, subject_id: str, *, partner_id: str | None = None, include_ended: bool = False
    ) -> list[Subscription]:
        """The follow-ups of a person (of one partner if given), oldest first."""
        subject_type, subject_id = self.parse(subject_type, subject_id)
        with self.engine.connect() as conn:
            found = self.person_of(conn, self.hasher(subject_type, subject_id))
            if found is None:
                return []
            return self.subscriptions_of(conn, found[0], partner_id=partner_id, include_ended=include_ended)

    @staticmethod
    def subscriptions_of(
        conn: Connection, person_id: int, *, partner_id: str | None = None, include_ended: bool = False
    ) -> list[Subscription]:
        s = directory_subscriptions
        query = select(s).where(s.c.person_id == person_id)
        if partner_id is not None:
            query = query.where(s.c.partner_id == partner_id)
        if not include_ended:
            query = query.where(s.c.ended_at.is_(None))
        rows = conn.execute(query.order_by(s.c.valid_from, s.c.id)).mappings().all()
        return [_subscription(r) for r in rows]

    # -- person-bound routing ----------------------------------------------------------

    def plan(
        self,
        *,
        protocol: Protocol,
        sender: Partner,
        message_type: str,
        subject_type: str,
        subject_id: str,
        payload: etree._Element,
        fixed: Iterable[str],
        code_owner: Callable[[str], str | None],
        id_hash: str | None = None,
        read: tuple[date, list[tuple[str, str]]] | None = None,
    ) -> Forwarding:
        """Who receives a person-bound message, who does not and why, and what it changes.

        ``id_hash`` is the subject's keyed hash when the caller has it already (ingest does);
        ``read`` the day and followers :meth:`read_followers` gave (ingest reads them with the
        other messages of its turn), else they are read here.
        """
        if read is None:
            today = _today()
            if id_hash is None:
                id_hash = self.hasher(subject_type, subject_id)
            follows = self.follower_reads.now([id_hash], today)[id_hash]
        else:
            today, follows = read
        receivers = [r for r in fixed if r != sender.id]
        skipped: Counter[str] = Counter()
        for partner_id, capacity in follows:
            partner = self.partners.get(partner_id)
            if partner is None or not partner.active:
                skipped["partner_inactive"] += 1
            elif partner.id == sender.id:
                continue  # the sender knows what it sent
            elif not protocol.allows_capacity(capacity, partner.ref):
                skipped["capacity_not_allowed"] += 1
            else:
                receivers.append(partner.id)
        effects: list[Effect] = []
        handover = None
        if message_type == MUTATION_TYPE:
            handover = self._mutation(protocol, payload, follows, receivers, effects, skipped, code_owner, today)
        unique = tuple(dict.fromkeys(r for r in receivers if r != sender.id))
        reason = None
        if not unique:
            reason = (
                "niemand volgt deze persoon in het verwijzingsrepertorium"
                if not follows
                else f"geen enkele volger heeft een hoedanigheid die protocol {protocol.id} toestaat"
            )
        return Forwarding(unique, dict(skipped), reason, handover, tuple(effects), follows=tuple(follows))

    def _mutation(
        self,
        protocol: Protocol,
        payload: etree._Element,
        follows: list[tuple[str, str]],
        receivers: list[str],
        effects: list[Effect],
        skipped: Counter[str],
        code_owner: Callable[[str], str | None],
        today: date,
    ) -> Handover | None:
        soort = field_value(payload, "soort")
        on = _date(field_value(payload, "datum")) or today
        if soort == "VERHUIZING":
            code = field_value(payload, "nieuweGemeentecode")
            owner = code_owner(code) if code else None
            new = self.partners.get(owner) if owner else None
            if new is None or not new.active:
                if code:
                    skipped["new_municipality_unknown"] += 1
                return None
            try:
                registered_under = self.protocol_for(HANDOVER_CAPACITY, new)
            except NotAllowed:
                skipped["handover_not_allowed"] += 1
                return None
            start = min(on, today)
            effects.append(_EndFollowing(HANDOVER_CAPACITY, new.id, start - timedelta(days=1), "verhuizing"))
            effects.append(_Follow(new.id, HANDOVER_CAPACITY, registered_under.id, start, "verhuizing"))
            if protocol.allows_receiver(new.ref):
                receivers.append(new.id)
            return Handover(new.id, HANDOVER_CAPACITY)
        if soort == "NIEUW_INSZ":
            holder = next(
                (c for c in payload if isinstance(c.tag, str) and etree.QName(c).localname == "nieuweIdentificatie"),
                None,
            )
            child = next((c for c in holder if isinstance(c.tag, str)), None) if holder is not None else None
            if child is not None:
                kind = "INSZ" if etree.QName(child).localname == "insz" else "BSN"
                effects.append(_Relink(*self.parse(kind, (child.text or "").strip(), "nieuweIdentificatie")))
        elif soort == "INSZ_GESCHRAPT":
            effects.append(_Cancel())
        elif soort == "OVERLIJDEN" and follows:
            # this message is the last one anybody receives about the person
            effects.append(_EndFollowing(None, None, min(on, today) - timedelta(days=1), "overlijden"))
        return None

    def effects_unit(
        self,
        forwarding: Forwarding,
        subject_type: str,
        subject_id: str,
        key_ref: tuple[int, bytes],
        id_hash: str | None = None,
    ) -> Callable[[Tx, Mapping[str, Any]], None]:
        """The directory changes of a message, run inside its ingest transaction (``id_hash``: as in plan)."""
        key_id, key = key_ref
        if id_hash is None:
            id_hash = self.hasher(subject_type, subject_id)

        def apply(tx: Tx, common: Mapping[str, Any]) -> None:
            person_id, _ = self._ensure_person(tx, subject_type, subject_id, id_hash, key_id, key)
            base = {k: v for k, v in common.items() if k not in ("sender",)}
            for effect in forwarding.effects:
                if isinstance(effect, _EndFollowing):
                    for sub in self._end(
                        tx, person_id, effect.capacity, effect.keep, effect.valid_until, effect.reason
                    ):
                        tx.audit(
                            AuditEvent(
                                "unsubscribed",
                                actor="knooppunt",
                                receiver=sub.partner_id,
                                **{**base, "protocol_id": sub.protocol_id},
                                detail={
                                    "capacity": sub.capacity,
                                    "reason": effect.reason,
                                    "validUntil": effect.valid_until.isoformat(),
                                },
                            )
                        )
                elif isinstance(effect, _Follow):
                    self._follow(tx, person_id, effect)
                    tx.audit(
                        AuditEvent(
                            "subscribed",
                            actor="knooppunt",
                            receiver=effect.partner_id,
                            **{**base, "protocol_id": effect.protocol_id},
                            detail={
                                "capacity": effect.capacity,
                                "reason": effect.reason,
                                "validFrom": effect.valid_from.isoformat(),
                            },
                        )
                    )
                elif isinstance(effect, _Relink):
                    new_hash = self.hasher(effect.subject_type, effect.subject_id)
                    self._relink(tx, person_id, id_hash, effect, new_hash, key_id, key)
                    tx.audit(
                        AuditEvent(
                            "relinked",
                            actor="knooppunt",
                            **base,
                            detail={
                                "reason": "NIEUW_INSZ",
                                "newSubjectHash": new_hash,
                                "newSubjectType": effect.subject_type,
                            },
                        )
                    )
                else:
                    tx.conn.execute(
                        update(directory_identifiers)
                        .where(directory_identifiers.c.id_hash == id_hash)
                        .values(status=CANCELLED, changed_at=tx.now)
                    )
                    tx.audit(AuditEvent("relinked", actor="knooppunt", **base, detail={"reason": "INSZ_GESCHRAPT"}))

        return apply

    # -- writes inside a unit of work ------------------------------------------------------

    def _ensure_person(
        self, tx: Tx, subject_type: str, subject_id: str, id_hash: str, key_id: int, key: bytes
    ) -> tuple[int, str]:
        found = self.person_of(tx.conn, id_hash)
        if found is not None:
            return found
        result = tx.conn.execute(insert(directory_persons).values(created_at=tx.now))
        person_id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
        self._add_identifier(tx, person_id, subject_type, subject_id, id_hash, key_id, key)
        return person_id, ACTIVE

    @staticmethod
    def _add_identifier(
        tx: Tx, person_id: int, subject_type: str, subject_id: str, id_hash: str, key_id: int, key: bytes
    ) -> None:
        nonce, ciphertext = encrypt(key, subject_id.encode(), id_hash.encode())
        tx.conn.execute(
            insert(directory_identifiers).values(
                id_hash=id_hash,
                person_id=person_id,
                id_type=subject_type,
                data_key_id=key_id,
                nonce=nonce,
                ciphertext=ciphertext,
                status=ACTIVE,
                created_at=tx.now,
            )
        )

    @staticmethod
    def _end(
        tx: Tx,
        person_id: int,
        capacity: str | None,
        keep: str | None,
        until: date,
        reason: str,
        *,
        only_partner: str | None = None,
    ) -> list[Subscription]:
        s = directory_subscriptions
        conditions = [s.c.person_id == person_id, s.c.ended_at.is_(None)]
        if capacity is not None:
            conditions.append(s.c.capacity == capacity)
        if keep is not None:
            conditions.append(s.c.partner_id != keep)
        if only_partner is not None:
            conditions.append(s.c.partner_id == only_partner)
        rows = tx.conn.execute(select(s).where(and_(*conditions))).mappings().all()
        ended = []
        for r in rows:
            last = until if r["valid_until"] is None else min(until, r["valid_until"])
            tx.conn.execute(
                update(s).where(s.c.id == r["id"]).values(valid_until=last, ended_at=tx.now, end_reason=reason)
            )
            ended.append(_subscription({**r, "valid_until": last, "ended_at": tx.now}))
        return ended

    @staticmethod
    def _follow(tx: Tx, person_id: int, effect: _Follow) -> None:
        s = directory_subscriptions
        exists = tx.conn.execute(
            select(s.c.id).where(
                and_(
                    s.c.person_id == person_id,
                    s.c.partner_id == effect.partner_id,
                    s.c.capacity == effect.capacity,
                    s.c.ended_at.is_(None),
                )
            )
        ).first()
        if exists is None:
            tx.conn.execute(
                insert(s).values(
                    person_id=person_id,
                    partner_id=effect.partner_id,
                    capacity=effect.capacity,
                    protocol_id=effect.protocol_id,
                    valid_from=effect.valid_from,
                    created_at=tx.now,
                )
            )

    def _relink(
        self, tx: Tx, person_id: int, old_hash: str, effect: _Relink, new_hash: str, key_id: int, key: bytes
    ) -> None:
        found = self.person_of(tx.conn, new_hash)
        if found is None:
            self._add_identifier(tx, person_id, effect.subject_type, effect.subject_id, new_hash, key_id, key)
        elif found[0] != person_id:
            # the new number already had a file of its own: one person, one file
            other = found[0]
            tx.conn.execute(
                update(directory_subscriptions)
                .where(directory_subscriptions.c.person_id == other)
                .values(person_id=person_id)
            )
            tx.conn.execute(
                update(directory_identifiers)
                .where(directory_identifiers.c.person_id == other)
                .values(person_id=person_id, changed_at=tx.now)
            )
        tx.conn.execute(
            update(directory_identifiers)
            .where(directory_identifiers.c.id_hash == old_hash)
            .values(status=REPLACED, replaced_by=new_hash, changed_at=tx.now)
        )


def _subscription(row: Mapping[Any, Any]) -> Subscription:
    return Subscription(
        id=int(row["id"]),
        partner_id=str(row["partner_id"]),
        capacity=str(row["capacity"]),
        protocol_id=str(row["protocol_id"]),
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        ended=row["ended_at"] is not None,
    )


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
