"""GeefPersoon 02.02 ``Persoon`` -> the canonical person.

Element shape read (all unqualified; other children are ignored)::

    Persoon[@Bron]/{INSZ, Naam/{Achternamen/Achternaam*, Voornamen/Voornaam*},
      Geslacht/{Code, Omschrijving}, Nationaliteiten/Nationaliteit*/{Code, Omschrijving},
      Geboorte/{Datum, Plaats/{Gemeente/Naam, Land/{ISOCode, Naam}}},
      Overlijden/{Datum}, Statussen/Status*/{Code, Omschrijving},
      Adressen/{Hoofdverblijfplaats/{Straatnaam/String | NietGestandaardiseerdeStraatnaam/String,
                Huisnummer, Busnummer, Postcode, Gemeentenaam/String |
                NietGestandaardiseerdeGemeentenaam/String, NISCodeGemeente, Land/String, ISOCodeLand}
              | VerblijfplaatsBuitenland/{Land/{ISOCode, Naam}, Teksten/Tekst*}}}

Canonical person (JSON)::

    {"insz", "voornamen": [str], "achternaam", "geboortedatum" (MAGDA's own
     YYYY-MM-DD, 00 where unknown), "geslacht": "M"|"V"|null, "adres": {...},
     "nationaliteit": {"code", "omschrijving"}?, "geboorteplaats"?, "overlijdensdatum"?,
     "bron"}
"""

from __future__ import annotations

import re

from lxml import etree

from hub.ports import JSON

_WS = re.compile(r"\s+")
_SEX = {"1": "M", "2": "V"}


def text(el: etree._Element | None, path: str) -> str | None:
    """The trimmed text at ``path`` below ``el``, or None when absent or empty."""
    if el is None:
        return None
    found = el.find(path)
    if found is None or found.text is None:
        return None
    value = _WS.sub(" ", found.text).strip()
    return value or None


def _first(el: etree._Element, *paths: str) -> str | None:
    for path in paths:
        value = text(el, path)
        if value is not None:
            return value
    return None


def adres(adressen: etree._Element | None) -> dict[str, JSON]:
    """The person's main residence (or residence abroad) as a flat canonical address."""
    if adressen is None:
        return {"type": "onbekend"}
    hoofd = adressen.find("Hoofdverblijfplaats")
    if hoofd is not None:
        result: dict[str, JSON] = {
            "type": "hoofdverblijfplaats",
            "straat": _first(hoofd, "Straatnaam/String", "NietGestandaardiseerdeStraatnaam/String"),
            "huisnummer": text(hoofd, "Huisnummer"),
            "busnummer": text(hoofd, "Busnummer"),
            "postcode": text(hoofd, "Postcode"),
            "gemeente": _first(hoofd, "Gemeentenaam/String", "NietGestandaardiseerdeGemeentenaam/String"),
            "nisGemeente": text(hoofd, "NISCodeGemeente"),
            "land": text(hoofd, "Land/String"),
            "landIso": text(hoofd, "ISOCodeLand"),
        }
        if hoofd.get("DatumBegin"):
            result["sinds"] = hoofd.get("DatumBegin")
        return result
    buitenland = adressen.find("VerblijfplaatsBuitenland")
    if buitenland is not None:
        return {
            "type": "buitenland",
            "land": text(buitenland, "Land/Naam"),
            "landIso": text(buitenland, "Land/ISOCode"),
            "regels": [
                t for t in (_WS.sub(" ", x.text or "").strip() for x in buitenland.findall("Teksten/Tekst")) if t
            ],
        }
    return {"type": "onbekend"}


def persoon(el: etree._Element) -> dict[str, JSON]:
    """Map one ``Persoon`` element to the canonical person."""
    naam = el.find("Naam")
    voornamen: list[JSON] = []
    achternamen: list[str] = []
    if naam is not None:
        voornamen = [v for v in (text(x, ".") for x in naam.findall("Voornamen/Voornaam")) if v]
        achternamen = [a for a in (text(x, ".") for x in naam.findall("Achternamen/Achternaam")) if a]
    data: dict[str, JSON] = {
        "insz": text(el, "INSZ"),
        "voornamen": voornamen,
        "achternaam": " ".join(achternamen) or None,
        "geboortedatum": text(el, "Geboorte/Datum"),
        "geslacht": _SEX.get(text(el, "Geslacht/Code") or ""),
        "adres": adres(el.find("Adressen")),
        "bron": el.get("Bron"),
    }
    nationaliteit = el.find("Nationaliteiten/Nationaliteit")
    if nationaliteit is not None:
        data["nationaliteit"] = {
            "code": text(nationaliteit, "Code"),
            "omschrijving": text(nationaliteit, "Omschrijving"),
        }
    plaats = _first(el, "Geboorte/Plaats/Gemeente/Naam")
    if plaats is not None:
        data["geboorteplaats"] = {"gemeente": plaats, "landIso": text(el, "Geboorte/Plaats/Land/ISOCode")}
    overlijden = text(el, "Overlijden/Datum")
    if overlijden is not None:
        data["overlijdensdatum"] = overlijden
    return data
