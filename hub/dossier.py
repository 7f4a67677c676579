"""The inburgeraar's own dossier: his trajectory across partners, who follows him,
and every exchange and consultation about him (who, what, when, why).

Built from three sources, all keyed by the hashes of the person's identifiers
(the reference directory links a bis number to the national number that
replaced it, so the dossier spans both):

- ``messages`` (decrypted here, only for the person himself): the trajectory;
- ``directory_subscriptions``: which partner follows him, in which capacity;
- ``audit_events``: what happened to his data, with the protocol as the "why".

Everything is in plain Dutch: the page is for the citizen, not for us.
Reading the dossier is itself audited ("self_viewed").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hub.audit import AuditEvent
from hub.errors import HubError
from hub.store.database import Tx
from hub.store.tables import audit_events, messages

if TYPE_CHECKING:
    from hub.service import Hub

# What a message type means to the person it is about.
_TYPE_TEXT = {
    "aanmelding": "U werd aangemeld voor inburgering",
    "inburgeringsplicht": "DUO stelde vast of u inburgeringsplichtig bent",
    "klantprofiel": "Het COA gaf uw klantprofiel door aan uw gemeente",
    "pip": "Uw persoonlijk plan inburgering en participatie (PIP) werd vastgesteld",
}
_SOORT_TEXT = {
    "INSCHRIJVING": "U schreef zich in",
    "CONTRACT": "U ondertekende uw inburgeringscontract",
    "PIP": "Uw persoonlijk plan werd vastgesteld",
    "CURSUS_START": "U begon aan een cursus",
    "CURSUS_EINDE": "U rondde een cursus af",
    "ATTEST": "U behaalde uw inburgeringsattest",
    "VERHUIZING": "Het rijksregister meldde uw verhuizing",
    "NIEUW_INSZ": "U kreeg een nieuw identificatienummer",
    "INSZ_GESCHRAPT": "Een oud identificatienummer van u werd geschrapt",
    "OVERLIJDEN": "Overlijden gemeld",
}
_CAPACITY_TEXT = {
    "woongemeente": "uw gemeente",
    "trajectbegeleiding": "uw trajectbegeleider",
    "taalaanbieder": "uw taalschool",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the trajectory."""

    when: datetime
    what: str
    detail: str
    by: str

    def as_json(self) -> dict[str, Any]:
        return {"wanneer": self.when.isoformat(), "wat": self.what, "details": self.detail, "door": self.by}


@dataclass(frozen=True, slots=True)
class Follower:
    """A partner that follows the person."""

    who: str
    as_what: str
    since: str
    until: str | None
    ended: bool

    def as_json(self) -> dict[str, Any]:
        return {"wie": self.who, "als": self.as_what, "sinds": self.since, "tot": self.until, "beeindigd": self.ended}


@dataclass(frozen=True, slots=True)
class Exchange:
    """One line of the log of what happened to the person's data."""

    when: datetime
    who: str
    what: str
    why: str
    legal_basis: str
    event: str

    def as_json(self) -> dict[str, Any]:
        return {
            "wanneer": self.when.isoformat(),
            "wie": self.who,
            "wat": self.what,
            "waarom": self.why,
            "wettelijkeBasis": self.legal_basis,
            "soort": self.event,
        }


@dataclass(frozen=True)
class Dossier:
    """What the person sees."""

    steps: list[Step]
    followers: list[Follower]
    exchanges: list[Exchange]

    def as_json(self) -> dict[str, Any]:
        return {
            "traject": [s.as_json() for s in self.steps],
            "volgers": [f.as_json() for f in self.followers],
            "uitwisselingen": [e.as_json() for e in self.exchanges],
        }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class DossierService:
    """Builds a person's dossier; knows nothing of HTTP."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def _name(self, partner_id: str | None) -> str:
        if not partner_id:
            return "de knooppunt"
        partner = self.hub.partners.get(partner_id)
        return partner.name if partner else partner_id

    def hashes(self, subject_hash: str) -> list[str]:
        """Every identifier hash of the person behind ``subject_hash`` (bis and national number alike)."""
        directory = self.hub.directory
        with self.hub.engine.connect() as conn:
            found = directory.person_of(conn, subject_hash)
            if found is None:
                return [subject_hash]
            hashes = directory.hashes_of(conn, found[0])
        return hashes if subject_hash in hashes else [subject_hash, *hashes]

    def build(self, subject_hash: str) -> Dossier:
        hashes = self.hashes(subject_hash)
        return Dossier(self._steps(hashes), self._followers(subject_hash), self._exchanges(hashes))

    def _steps(self, hashes: list[str]) -> list[Step]:
        with self.hub.engine.connect() as conn:
            rows = conn.execute(
                select(messages.c.id, messages.c.type, messages.c.sender, messages.c.received_at)
                .where(messages.c.subject_hash.in_(hashes))
                .order_by(messages.c.received_at)
            ).all()
        steps = []
        for r in rows:
            what, detail = _TYPE_TEXT.get(r.type, ""), ""
            try:
                stored = self.hub.load_message(r.id)
                if stored.payload is not None:
                    mtype = self.hub.infomodel.get(stored.envelope.type, stored.envelope.version)
                    what = what or mtype.title
                    what, detail = _describe(what, self.hub.infomodel.xml_to_json(mtype, stored.payload))
            except HubError:
                # the content was destroyed after its retention period; the fact stays
                what = what or r.type
                detail = "de inhoud is na de bewaartermijn vernietigd"
            steps.append(Step(_utc(r.received_at), what, detail, self._name(r.sender)))
        return steps

    def _followers(self, subject_hash: str) -> list[Follower]:
        directory = self.hub.directory
        with self.hub.engine.connect() as conn:
            found = directory.person_of(conn, subject_hash)
            subs = directory.subscriptions_of(conn, found[0], include_ended=True) if found else []
        return [
            Follower(
                who=self._name(s.partner_id),
                as_what=_CAPACITY_TEXT.get(s.capacity, s.capacity),
                since=s.valid_from.isoformat(),
                # a follow-up ended on the day it began reads "until that day", not the day before
                until=max(s.valid_until, s.valid_from).isoformat() if s.valid_until else None,
                ended=s.ended,
            )
            for s in subs
        ]

    def _exchanges(self, hashes: list[str]) -> list[Exchange]:
        with self.hub.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(audit_events)
                    .where(audit_events.c.subject_hash.in_(hashes))
                    .order_by(audit_events.c.seq.desc())
                    .limit(1000)
                )
                .mappings()
                .all()
            )
        out = []
        for r in rows:
            line = self._line(r)
            if line is None:
                continue
            who, what = line
            protocol = self.hub.protocols.get(r["protocol_id"] or "")
            out.append(
                Exchange(
                    when=_utc(r["occurred_at"]),
                    who=who,
                    what=what,
                    why=protocol.purpose if protocol else "",
                    legal_basis=protocol.legal_basis if protocol else "",
                    event=r["event"],
                )
            )
        return out

    def _line(self, r: Mapping[Any, Any]) -> tuple[str, str] | None:
        """(who, what) in plain Dutch, or None for the hub's internal bookkeeping."""
        event, detail = r["event"], r["detail"] or {}
        kind = self._type_title(r["message_type"])
        if event == "received":
            return self._name(r["sender"]), f"stuurde een bericht over u: {kind}"
        if event == "delivered":
            return self._name(r["receiver"]), f"ontving een bericht over u van {self._name(r['sender'])}: {kind}"
        if event == "consulted":
            return self._name(r["sender"] or r["actor"]), f"raadpleegde uw gegevens: {kind}"
        if event == "refused":
            return self._name(r["sender"]), "stuurde een bericht over u dat de knooppunt weigerde (niet doorgegeven)"
        if event == "failed":
            return self._name(r["receiver"]), "kon een bericht over u niet ontvangen"
        if event == "subscribed":
            partner = r["receiver"] or r["sender"]
            capacity = _CAPACITY_TEXT.get(str(detail.get("capacity")), str(detail.get("capacity")))
            return self._name(partner), f"volgt uw dossier op als {capacity}"
        if event == "unsubscribed":
            partner = r["receiver"] or r["sender"]
            capacity = _CAPACITY_TEXT.get(str(detail.get("capacity")), str(detail.get("capacity")))
            return self._name(partner), f"volgt uw dossier niet langer op als {capacity}"
        if event == "relinked":
            return "de knooppunt", "koppelde uw nieuwe of geschrapte identificatienummer aan uw dossier"
        if event == "self_viewed":
            return "u", "bekeek uw eigen dossier"
        return None  # routed, retry_scheduled, purged...: how the hub works, not what happened to you

    def _type_title(self, name: str | None) -> str:
        if not name:
            return "bericht"
        for mtype in self.hub.infomodel.types():
            if mtype.name == name:
                return mtype.title[:1].lower() + mtype.title[1:]
        return name

    def viewed_unit(self, subject_type: str, subject_hash: str, method: str) -> Any:
        """A unit of work: audit that the person looked at his own dossier."""

        def unit(tx: Tx) -> None:
            tx.audit(
                AuditEvent(
                    "self_viewed",
                    actor="burger",
                    subject_type=subject_type,
                    subject_hash=subject_hash,
                    detail={"method": method},
                )
            )

        return unit


def _describe(what: str, payload: Any) -> tuple[str, str]:
    if not isinstance(payload, dict):
        return what, ""
    soort = payload.get("soort")
    if isinstance(soort, str) and soort in _SOORT_TEXT:
        what = _SOORT_TEXT[soort]
    parts = []
    for key, label in (
        ("omschrijving", ""),
        ("aanbieder", "bij "),
        ("resultaat", "resultaat: "),
        ("leerroute", "leerroute "),
        ("doelgroep", "doelgroep: "),
        ("termijnEinde", "termijn tot "),
    ):
        value = payload.get(key)
        if isinstance(value, str | int) and value != "":
            parts.append(f"{label}{value}")
    if payload.get("plichtig") is True:
        parts.append("u bent inburgeringsplichtig")
    elif payload.get("plichtig") is False:
        parts.append("u bent niet inburgeringsplichtig")
    return what, "; ".join(parts)
