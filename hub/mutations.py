"""Person mutations from an authentic source (the Rijksregister through MAGDA) become hub events.

``poll_mutations`` fetches the next batch from the source partner's adapter
(``fetch_mutaties``), turns every mutation (moved, died, new INSZ) into a
``persoonsmutatie`` message from that partner, and accepts it like any other
message: validated, allowed by the ``persoonsmutaties`` protocol, routed to
every partner that follows the person in the reference directory, audited.
Message ids are derived from the source's reference, so polling the same batch
again stores and delivers nothing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hub import envelope as env
from hub.errors import HubError, PartnerError
from hub.identifiers import INSZ
from hub.ports import LookupRequest
from hub.service import Accepted, Hub

PROTOCOL = "persoonsmutaties"
_SOORT = {"verhuisd": "VERHUIZING", "overleden": "OVERLIJDEN", "insz_gewijzigd": "NIEUW_INSZ"}
_NAMESPACE = uuid.UUID("6f1d7c1e-2b7a-4c38-9f3e-6b7f0b7a9a11")


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did: the accepted events, and the receipt to acknowledge the batch with."""

    accepted: list[Accepted]
    receipt: str | None
    skipped: list[str]


async def poll_mutations(hub: Hub, partner_id: str = "rijksregister", receipt: str | None = None) -> PollResult:
    """Fetch one batch of mutations from ``partner_id`` and accept each as a persoonsmutatie.

    Raises:
        HubError: the partner has no adapter that delivers mutation notifications.
        PartnerError: the source could not be reached or answered badly.
    """
    partner = hub.partners.get(partner_id)
    adapter = hub.adapter_for(partner) if partner is not None else None
    fetch = getattr(adapter, "fetch_mutaties", None)
    if partner is None or adapter is None or not callable(fetch):
        raise HubError(f"{partner_id} levert geen mutaties (geen adapter met fetch_mutaties)")
    batch = await fetch(receipt)
    mtype = hub.infomodel.get("persoonsmutatie", "1.0")
    accepted, skipped = [], []
    for mutation in batch.mutaties:
        event: dict[str, Any] = mutation.to_json()
        soort = _SOORT.get(str(event.get("type")))
        if soort is None:
            skipped.append(f"{event.get('referte')}: onbekende soort {event.get('type')}")
            continue
        insz = str(event["insz"])
        person = await _person(adapter, partner_id, insz, str(event.get("nieuwInsz") or ""))
        payload: dict[str, Any] = {"persoon": person, "soort": soort, "datum": str(event["datum"])}
        address = event.get("nieuwAdres") or {}
        if soort == "VERHUIZING":
            if address.get("nisGemeente"):
                payload["nieuweGemeentecode"] = str(address["nisGemeente"])
            if address.get("postcode"):
                payload["postcode"] = str(address["postcode"])
        if soort == "NIEUW_INSZ" and event.get("nieuwInsz"):
            payload["nieuweIdentificatie"] = {"insz": str(event["nieuwInsz"])}
        envelope = env.Envelope(
            message_id=uuid.uuid5(_NAMESPACE, f"{partner_id}|{event.get('referte')}|{insz}|{soort}"),
            type=mtype.name,
            version=mtype.version,
            sender=partner_id,
            subject=INSZ(insz),
            purpose=PROTOCOL,
        )
        message = env.Message(envelope, hub.infomodel.json_to_xml(mtype, payload))
        accepted.append(await hub.accept(partner, message, channel="poll"))
    return PollResult(accepted, batch.ontvangst_referte, skipped)


async def _person(adapter: Any, partner_id: str, insz: str, new_insz: str) -> dict[str, Any]:
    """The person's name from the source itself (the envelope of a mutation carries only numbers)."""
    person: dict[str, Any] = {"identificatie": {"insz": insz}}
    for number in filter(None, (insz, new_insz)):
        try:
            answer = await adapter.lookup(
                LookupRequest(kind="persoon", subject=INSZ(number), purpose=PROTOCOL, requester=partner_id)
            )
        except PartnerError:
            continue
        if answer.found and answer.data.get("achternaam"):
            person["achternaam"] = str(answer.data["achternaam"])
            voornamen = answer.data.get("voornamen")
            if isinstance(voornamen, list) and voornamen:
                person["voornamen"] = " ".join(str(v) for v in voornamen)
            return person
    person["achternaam"] = "(onbekend)"
    return person
