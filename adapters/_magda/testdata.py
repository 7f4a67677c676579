"""Generated test persons for the MAGDA-family simulators (never copies of real or sample persons).

Persons are drawn from a seeded random generator, so a seed always gives the
same people; each has a valid INSZ (mod 97, with the '2' prefix for births from
2000), an address in a Flemish municipality and, for some, enrolments (NT2 in
adult education among them). A few fixed personas cover the special paths:
a replaced INSZ (30004), a cancelled INSZ (30002), a partial answer (data plus
a warning), and an INSZ that is valid but unknown (30001).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

_VOORNAMEN_M = ["Ahmad", "Milan", "Yusuf", "Arne", "Oleksandr", "Samir", "Tomas", "Bilal", "Jonas", "Dawit"]
_VOORNAMEN_V = ["Amina", "Lotte", "Olena", "Fatima", "Sanne", "Meron", "Ines", "Zainab", "Eline", "Nadia"]
_ACHTERNAMEN = [
    "Peeters",
    "El Idrissi",
    "Kovalenko",
    "Janssens",
    "Haile",
    "De Smet",
    "Rahimi",
    "Maes",
    "Osei",
    "Wouters",
]
_GEMEENTEN = [
    ("Gent", "9000", "44021", ["Sleepstraat", "Dampoortstraat", "Wondelgemstraat"]),
    ("Antwerpen", "2060", "11002", ["Kerkstraat", "Diepestraat", "Offerandestraat"]),
    ("Leuven", "3000", "24062", ["Diestsestraat", "Tiensestraat"]),
    ("Mechelen", "2800", "12025", ["Bruul", "Hoogstraat"]),
    ("Brugge", "8000", "31005", ["Langestraat", "Ezelstraat"]),
]
_NATIONALITEITEN = [("150", "Belg"), ("256", "Afghaan"), ("135", "Oekraïner"), ("221", "Eritreeër"), ("211", "Syriër")]


def insz_for(birth: date, serial: int) -> str:
    """A valid national number for a birth date and serial (odd: man, even: woman)."""
    first9 = f"{birth:%y%m%d}{serial:03d}"
    base = int(("2" if birth.year >= 2000 else "") + first9)
    return f"{first9}{97 - base % 97:02d}"


@dataclass
class Enrolment:
    """One education enrolment of a simulated person (fields as the canonical mapping reads them)."""

    bron: str
    instelling_nummer: str
    instelling_naam: str
    gemeente: str
    postcode: str
    begin: date
    einde: date | None
    opleiding_code: str
    opleiding_naam: str
    module_naam: str | None = None
    resultaat: str | None = None
    anderstalige_nieuwkomer: bool = False


@dataclass
class TestPerson:
    """A simulated person as the national register would hold them."""

    insz: str
    voornamen: list[str]
    achternaam: str
    geboortedatum: date
    geslacht: str
    nationaliteit: tuple[str, str]
    straat: str
    huisnummer: str
    postcode: str
    gemeente: str
    nis: str
    enrolments: list[Enrolment] = field(default_factory=list)
    overlijdensdatum: date | None = None
    insz_status: str | None = None
    nieuw_insz: str | None = None
    waarschuwing: str | None = None


@dataclass
class Personas:
    """The INSZs of the personas tests and demos rely on."""

    regular: str
    nt2: str
    replaced: str
    replacement: str
    cancelled: str
    partial: str
    unknown: str
    no_enrolments: str


def _enrolments(rng: random.Random, birth: date, gemeente: tuple[str, str, str, list[str]]) -> list[Enrolment]:
    start = date(max(birth.year + 18, 2018), 9, 1) + timedelta(days=rng.randint(0, 500))
    naam, postcode = gemeente[0], gemeente[1]
    return [
        Enrolment(
            bron="VWO",
            instelling_nummer=f"{rng.randint(100000, 130000)}",
            instelling_naam=f"Centrum voor Volwassenenonderwijs {naam}",
            gemeente=naam,
            postcode=postcode,
            begin=start,
            einde=start + timedelta(days=120),
            opleiding_code="601",
            opleiding_naam="Nederlands tweede taal richtgraad 1",
            module_naam="NT2 Breakthrough 1",
            resultaat=rng.choice(["GESLAAGD", "NIET_GESLAAGD"]),
        )
    ]


def generate(seed: int = 20251124, count: int = 12) -> tuple[dict[str, TestPerson], Personas]:
    """``count`` seeded persons plus the personas; returns (persons by INSZ, personas)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    persons: dict[str, TestPerson] = {}
    used: set[str] = set()

    def make(sex: str | None = None, with_enrolments: bool = False) -> TestPerson:
        while True:
            birth = date(1960, 1, 1) + timedelta(days=rng.randint(0, 365 * 44))
            geslacht = sex or rng.choice(["1", "2"])
            serial = rng.randrange(1 if geslacht == "1" else 2, 997, 2)
            insz = insz_for(birth, serial)
            if insz not in used:
                used.add(insz)
                break
        gemeente = rng.choice(_GEMEENTEN)
        voornamen = rng.sample(_VOORNAMEN_M if geslacht == "1" else _VOORNAMEN_V, rng.choice([1, 1, 2]))
        person = TestPerson(
            insz=insz,
            voornamen=voornamen,
            achternaam=rng.choice(_ACHTERNAMEN),
            geboortedatum=birth,
            geslacht=geslacht,
            nationaliteit=rng.choice(_NATIONALITEITEN),
            straat=rng.choice(gemeente[3]),
            huisnummer=str(rng.randint(1, 220)),
            postcode=gemeente[1],
            gemeente=gemeente[0],
            nis=gemeente[2],
        )
        if with_enrolments:
            person.enrolments = _enrolments(rng, birth, gemeente)
        persons[insz] = person
        return person

    for i in range(count):
        make(with_enrolments=i % 2 == 0)
    regular = make(with_enrolments=True)
    regular.enrolments.append(
        Enrolment(
            bron="LP",
            instelling_nummer="47381",
            instelling_naam="Atheneum Onthaalklas",
            gemeente=regular.gemeente,
            postcode=regular.postcode,
            begin=regular.enrolments[0].begin - timedelta(days=400),
            einde=regular.enrolments[0].begin - timedelta(days=40),
            opleiding_code="30321",
            opleiding_naam="Onthaalklas anderstalige nieuwkomers",
            anderstalige_nieuwkomer=True,
        )
    )
    nt2 = make(with_enrolments=True)
    replacement = make()
    replaced = make()
    replaced.insz_status, replaced.nieuw_insz = "vervangen", replacement.insz
    cancelled = make()
    cancelled.insz_status = "geannuleerd"
    partial = make(with_enrolments=True)
    partial.waarschuwing = "Meerdere voorkomens aanwezig bij de bron, slechts 1 voorkomen in het antwoord"
    no_enrolments = make()
    unknown = make()
    del persons[unknown.insz]
    return persons, Personas(
        regular=regular.insz,
        nt2=nt2.insz,
        replaced=replaced.insz,
        replacement=replacement.insz,
        cancelled=cancelled.insz,
        partial=partial.insz,
        unknown=unknown.insz,
        no_enrolments=no_enrolments.insz,
    )
