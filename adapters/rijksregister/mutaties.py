"""Person mutation notifications (GeefPersoonMutatiesNotificaties 02.00) -> canonical events.

The shared contracts hold only this service's error replies (30014 invalid
receipt reference, 30016 no further data) and no XSD. The content below is our
reading of the service, built on the generic envelope and on GeefPersoon's
``Persoon``; the simulator serves exactly this shape::

    Antwoord/Inhoud/
      OntvangstReferte                    acknowledge this batch by sending it with the next request
      Notificaties/Notificatie*/{
        Referte, Type (ADRESWIJZIGING | OVERLIJDEN | INSZWIJZIGING), Datum,
        INSZ (the person's INSZ before the mutation),
        NieuwINSZ?                         (INSZWIJZIGING)
        Persoon?                           (the person after the mutation, GeefPersoon shape:
                                            Adressen for ADRESWIJZIGING, Overlijden for OVERLIJDEN)}

Canonical event JSON (``PersoonMutatie.to_json``)::

    {"type": "verhuisd"|"overleden"|"insz_gewijzigd", "insz", "datum", "referte",
     "nieuwInsz"?, "nieuwAdres"?}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from adapters._magda import services
from adapters._magda.persoon import adres, text
from adapters._magda.reply import Reply
from hub.ports import JSON

MutatieType = Literal["verhuisd", "overleden", "insz_gewijzigd"]
TYPES: dict[str, MutatieType] = {
    "ADRESWIJZIGING": "verhuisd",
    "OVERLIJDEN": "overleden",
    "INSZWIJZIGING": "insz_gewijzigd",
}


@dataclass(frozen=True, slots=True)
class PersoonMutatie:
    """A person moved, died, or got a new INSZ: an event the hub routes to the person's followers."""

    type: MutatieType
    insz: str
    datum: str | None
    referte: str
    nieuw_insz: str | None = None
    nieuw_adres: Mapping[str, JSON] | None = None

    def to_json(self) -> dict[str, JSON]:
        """The canonical JSON form (camelCase keys)."""
        data: dict[str, JSON] = {"type": self.type, "insz": self.insz, "datum": self.datum, "referte": self.referte}
        if self.nieuw_insz is not None:
            data["nieuwInsz"] = self.nieuw_insz
        if self.nieuw_adres is not None:
            data["nieuwAdres"] = dict(self.nieuw_adres)
        return data


@dataclass(frozen=True, slots=True)
class MutatieBatch:
    """One fetched batch: the events, the receipt reference to acknowledge it, and notices."""

    mutaties: tuple[PersoonMutatie, ...]
    ontvangst_referte: str | None
    warnings: tuple[str, ...] = ()

    @property
    def exhausted(self) -> bool:
        """True when the partner said there is nothing more (30016) or sent nothing."""
        return not self.mutaties


def has_notifications(reply: Reply) -> bool:
    """Data for :func:`adapters._magda.reply.assess`: notifications, or 30016 (an empty, valid answer)."""
    if reply.inhoud is not None and reply.inhoud.find("Notificaties") is not None:
        return True
    return services.NO_MORE_NOTIFICATIONS in {u.identificatie for u in reply.antwoord_uitzonderingen}


def read_mutaties(reply: Reply, warnings: tuple[str, ...] = ()) -> MutatieBatch:
    """Read the notifications of an assessed reply; unusable ones become warnings, not failures."""
    notes = list(warnings)
    events: list[PersoonMutatie] = []
    inhoud = reply.inhoud
    for i, n in enumerate([] if inhoud is None else inhoud.findall("Notificaties/Notificatie"), start=1):
        soort = TYPES.get((text(n, "Type") or "").upper())
        insz = text(n, "INSZ")
        if soort is None or insz is None:
            notes.append(f"notificatie {i} overgeslagen: onbekend type of geen INSZ")
            continue
        persoon = n.find("Persoon")
        nieuw_adres = None
        if soort == "verhuisd":
            nieuw_adres = adres(None if persoon is None else persoon.find("Adressen"))
        nieuw_insz = text(n, "NieuwINSZ") if soort == "insz_gewijzigd" else None
        if soort == "insz_gewijzigd" and nieuw_insz is None:
            notes.append(f"notificatie {i} overgeslagen: INSZ-wijziging zonder nieuw INSZ")
            continue
        datum = text(n, "Datum") or (text(persoon, "Overlijden/Datum") if soort == "overleden" else None)
        events.append(
            PersoonMutatie(
                type=soort,
                insz=insz,
                datum=datum,
                referte=text(n, "Referte") or "",
                nieuw_insz=nieuw_insz,
                nieuw_adres=nieuw_adres,
            )
        )
    return MutatieBatch(tuple(events), text(inhoud, "OntvangstReferte"), tuple(notes))
