"""GeefHistoriekInschrijving 02.01 ``Inschrijvingen`` -> canonical enrolments.

Element shape read (unqualified)::

    Inhoud/Inschrijvingen/Inschrijving*/{Bron (LP|HO|VWO|INT), Referte,
      Instelling/{Instellingsnummer, OfficieleNaam, Instantie, Adres/Gemeente/{PostCode, Naam}},
      OnderwijsLocatie/{Nummer, Omschrijving, Adres/Gemeente/{PostCode, Naam}}?,
      LeerplichtOnderwijs/{SoortProgramma, DatumInschrijving, DatumEersteLes, Schooljaar,
          InschrijvingAdministratieveGroep*/{Periode/{Begin, Einde}, AdministratieveGroep/{Nummer, Naam},
          AnderstaligeNieuwkomer?, Uitschrijving/Aanleiding}}
      | HogerOnderwijs/{Academiejaar, Status, DatumInschrijving, DatumUitschrijving?,
          Opleiding/{Code, VolledigeNaam}, Studiepunten/{Opgenomen, Verworven}}
      | Volwassenenonderwijs/{Status, DatumInschrijving, DatumUitschrijving?, Opleiding/{Code, Naam},
          Module/{Code, Naam}, Resultaat/EvaluatieResultaat/{Code, Omschrijving}}
      | Internaat/{...}}

Canonical enrolment (JSON)::

    {"bron", "referte", "soort": "leerplichtonderwijs"|"hogeronderwijs"|"volwassenenonderwijs"|"internaat"|null,
     "instelling": {"nummer", "naam", "instantie", "gemeente", "postcode"},
     "locatie": {"nummer", "omschrijving", "gemeente", "postcode"} | null,
     "datumInschrijving", "datumUitschrijving", "periode": {"begin", "einde"},
     "schooljaar", "opleiding": {"code", "naam"}, "module": {"code", "naam"} | null,
     "status": {"code", "omschrijving"} | null, "resultaat": {"code", "omschrijving"} | null,
     "nt2": bool, "anderstaligeNieuwkomer": bool}

``nt2`` marks Dutch-as-a-second-language courses (adult education, the
inburgering language track): a course or module named "Nederlands tweede taal"
or "NT2".
"""

from __future__ import annotations

import re

from lxml import etree

from adapters._magda.persoon import text
from hub.ports import JSON

_NT2 = re.compile(r"\b(NT2|Nederlands tweede taal)\b", re.IGNORECASE)
_SOORT = {
    "LeerplichtOnderwijs": "leerplichtonderwijs",
    "HogerOnderwijs": "hogeronderwijs",
    "Volwassenenonderwijs": "volwassenenonderwijs",
    "Internaat": "internaat",
}


def _code(el: etree._Element | None, path: str, naam: str = "Omschrijving") -> dict[str, JSON] | None:
    if el is None or el.find(path) is None:
        return None
    return {"code": text(el, f"{path}/Code"), "omschrijving": text(el, f"{path}/{naam}")}


def _plaats(el: etree._Element | None, nummer: str) -> dict[str, JSON] | None:
    if el is None:
        return None
    return {
        "nummer": text(el, nummer),
        "gemeente": text(el, "Adres/Gemeente/Naam"),
        "postcode": text(el, "Adres/Gemeente/PostCode"),
    }


def inschrijving(el: etree._Element) -> dict[str, JSON]:
    """Map one ``Inschrijving`` element to a canonical enrolment."""
    instelling = _plaats(el.find("Instelling"), "Instellingsnummer") or {}
    instelling["naam"] = text(el, "Instelling/OfficieleNaam")
    instelling["instantie"] = text(el, "Instelling/Instantie")
    locatie = _plaats(el.find("OnderwijsLocatie"), "Nummer")
    if locatie is not None:
        locatie["omschrijving"] = text(el, "OnderwijsLocatie/Omschrijving")
    data: dict[str, JSON] = {
        "bron": text(el, "Bron"),
        "referte": text(el, "Referte"),
        "soort": None,
        "instelling": instelling,
        "locatie": locatie,
        "datumInschrijving": None,
        "datumUitschrijving": None,
        "periode": None,
        "schooljaar": None,
        "opleiding": None,
        "module": None,
        "status": None,
        "resultaat": None,
        "nt2": False,
        "anderstaligeNieuwkomer": False,
    }
    for tag, soort in _SOORT.items():
        domein = el.find(tag)
        if domein is not None:
            data["soort"] = soort
            data["datumInschrijving"] = text(domein, "DatumInschrijving")
            data["datumUitschrijving"] = text(domein, "DatumUitschrijving")
            data["status"] = _code(domein, "Status")
            _DOMAIN[tag](domein, data)
            break
    return data


def _leerplicht(domein: etree._Element, data: dict[str, JSON]) -> None:
    groepen = domein.findall("InschrijvingAdministratieveGroep")
    begins = sorted(b for b in (text(g, "Periode/Begin") for g in groepen) if b)
    eindes = sorted(e for e in (text(g, "Periode/Einde") for g in groepen) if e)
    data["schooljaar"] = text(domein, "Schooljaar")
    data["periode"] = {
        "begin": begins[0] if begins else text(domein, "DatumEersteLes"),
        "einde": eindes[-1] if eindes else None,
    }
    if groepen:
        laatste = groepen[-1]
        data["opleiding"] = {
            "code": text(laatste, "AdministratieveGroep/Nummer"),
            "naam": text(laatste, "AdministratieveGroep/Naam"),
        }
    data["anderstaligeNieuwkomer"] = any(
        (text(g, "AnderstaligeNieuwkomer") or "").lower() in {"1", "true", "j"} for g in groepen
    )


def _hoger(domein: etree._Element, data: dict[str, JSON]) -> None:
    data["schooljaar"] = text(domein, "Academiejaar")
    data["opleiding"] = {"code": text(domein, "Opleiding/Code"), "naam": text(domein, "Opleiding/VolledigeNaam")}
    data["periode"] = {"begin": data["datumInschrijving"], "einde": data["datumUitschrijving"]}
    if domein.find("Studiepunten") is not None:
        data["studiepunten"] = {
            "opgenomen": text(domein, "Studiepunten/Opgenomen"),
            "verworven": text(domein, "Studiepunten/Verworven"),
        }


def _volwassenen(domein: etree._Element, data: dict[str, JSON]) -> None:
    opleiding: dict[str, JSON] = {"code": text(domein, "Opleiding/Code"), "naam": text(domein, "Opleiding/Naam")}
    module: dict[str, JSON] | None = (
        None
        if domein.find("Module") is None
        else {"code": text(domein, "Module/Code"), "naam": text(domein, "Module/Naam")}
    )
    data["opleiding"] = opleiding
    data["module"] = module
    data["periode"] = {"begin": data["datumInschrijving"], "einde": data["datumUitschrijving"]}
    data["resultaat"] = _code(domein, "Resultaat/EvaluatieResultaat")
    names = [str(opleiding["naam"] or ""), "" if module is None else str(module["naam"] or "")]
    data["nt2"] = any(_NT2.search(n) for n in names)


def _internaat(domein: etree._Element, data: dict[str, JSON]) -> None:
    data["schooljaar"] = text(domein, "Schooljaar")
    data["periode"] = {"begin": text(domein, "Periode/Begin"), "einde": text(domein, "Periode/Einde")}


_DOMAIN = {
    "LeerplichtOnderwijs": _leerplicht,
    "HogerOnderwijs": _hoger,
    "Volwassenenonderwijs": _volwassenen,
    "Internaat": _internaat,
}


def inschrijvingen(inhoud: etree._Element | None) -> list[JSON]:
    """All enrolments in an ``Inhoud``, in the partner's order."""
    if inhoud is None:
        return []
    return [inschrijving(el) for el in inhoud.findall("Inschrijvingen/Inschrijving")]
