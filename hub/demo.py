"""Demo data and the demo set-up shared by `knooppunt run --demo`, `knooppunt demo` and the tests:
valid (fictitious) persons, the demo partners, and sample messages for each flow."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from hub.partners import Partner


def make_bsn(rng: random.Random) -> str:
    """A random nine-digit number that passes the 11-proef."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(8)]
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        last = total % 11
        if last <= 9 and digits[0] != 0:
            return "".join(map(str, digits)) + str(last)


def make_insz(rng: random.Random, *, born: date | None = None, bis: bool = False) -> str:
    """A random INSZ with a correct mod-97 check (the 2000+ rule included)."""
    born = born or date(rng.randint(1960, 2006), rng.randint(1, 12), rng.randint(1, 28))
    month = born.month + (40 if bis else 0)
    serial = rng.randint(1, 997)
    body = f"{born.year % 100:02d}{month:02d}{born.day:02d}{serial:03d}"
    base = int(("2" if born.year >= 2000 else "") + body)
    return f"{body}{97 - base % 97:02d}"


@dataclass(frozen=True)
class DemoPartner:
    partner: Partner
    simulator: str | None


def load_partners(path: Path) -> list[DemoPartner]:
    spec: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for p in spec["partners"]:
        out.append(
            DemoPartner(
                Partner(
                    id=p["id"],
                    name=p["name"],
                    role=p["role"],
                    plateau=int(p.get("plateau", 2)),
                    adapter=p.get("adapter"),
                    adapter_config=dict(p.get("config") or {}),
                    codes=tuple(p.get("codes") or ()),
                    oin=p.get("oin"),
                    kbo=p.get("kbo"),
                ),
                simulator=p.get("simulator"),
            )
        )
    return out


def _person(identificatie: dict[str, str], rng: random.Random) -> dict[str, Any]:
    voornamen = rng.choice(["Amina", "Yusuf", "Olena", "Tesfay", "Farah", "Dmytro", "Noor", "Samir"])
    achternaam = rng.choice(["Haddad", "Kovalenko", "Tesfamariam", "Ahmadi", "Okafor", "Rahimi", "Bakr"])
    return {
        "identificatie": identificatie,
        "voornamen": voornamen,
        "achternaam": achternaam,
        "geboortedatum": f"{rng.randint(1970, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "geslacht": rng.choice(["M", "V"]),
        "nationaliteit": [rng.choice(["SY", "ER", "UA", "AF", "TR"])],
    }


def message(
    mtype: str,
    *,
    purpose: str,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any],
    receivers: list[str] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "messageId": str(uuid.uuid4()),
        "type": mtype,
        "version": "1.0",
        "subject": {"type": subject_type, "id": subject_id},
        "purpose": purpose,
        "conversationId": str(uuid.uuid4()),
        "createdAt": datetime.now(UTC).isoformat(),
        "payload": payload,
    }
    if receivers:
        doc["receivers"] = receivers
    return doc


def inburgeringsplicht(rng: random.Random, gemeentecode: str = "0344") -> dict[str, Any]:
    bsn = make_bsn(rng)
    today = date.today()
    return message(
        "inburgeringsplicht",
        purpose="nl-inburgeringsplicht",
        subject_type="BSN",
        subject_id=bsn,
        payload={
            "persoon": _person({"bsn": bsn}, rng),
            "gemeentecode": gemeentecode,
            "plichtig": True,
            "vastgesteldOp": today.isoformat(),
            "termijnEinde": (today + timedelta(days=3 * 365)).isoformat(),
        },
    )


def klantprofiel(rng: random.Random, gemeentecode: str = "0344") -> dict[str, Any]:
    bsn = make_bsn(rng)
    return message(
        "klantprofiel",
        purpose="nl-voorinburgering",
        subject_type="BSN",
        subject_id=bsn,
        payload={
            "persoon": _person({"bsn": bsn}, rng),
            "gemeentecode": gemeentecode,
            "koppeldatum": date.today().isoformat(),
            "ambitie": "Werken als verpleegkundige",
            "taalniveau": "A1",
            "opleiding": [{"omschrijving": "Verpleegkunde (bachelor)", "land": "SY", "jaren": 4}],
        },
    )


def pip(rng: random.Random, gemeentecode: str = "0344") -> dict[str, Any]:
    bsn = make_bsn(rng)
    person = _person({"bsn": bsn}, rng)
    return message(
        "pip",
        purpose="nl-pip",
        subject_type="BSN",
        subject_id=bsn,
        payload={
            "persoon": {"identificatie": person["identificatie"], "achternaam": person["achternaam"]},
            "gemeentecode": gemeentecode,
            "vastgesteldOp": date.today().isoformat(),
            "leerroute": rng.choice(["B1", "ONDERWIJS", "Z"]),
            "financieleOntzorging": True,
        },
    )


def aanmelding(rng: random.Random, nis_code: str = "44021") -> dict[str, Any]:
    insz = make_insz(rng)
    return message(
        "aanmelding",
        purpose="be-aanmelding",
        subject_type="INSZ",
        subject_id=insz,
        payload={
            "persoon": _person({"insz": insz}, rng),
            "adres": {
                "belgischAdres": {
                    "straatnaam": "Korenmarkt",
                    "huisnummer": "1",
                    "postcode": "9000",
                    "gemeente": "Gent",
                    "nisCode": nis_code,
                },
            },
            "nisCode": nis_code,
            "aanmeldingsdatum": date.today().isoformat(),
            "doelgroep": "VERPLICHT",
            "taalniveau": "A0",
        },
    )


def klantprofiel_ontvangst(klantprofiel_doc: dict[str, Any], contactpersoon: str = "Fatima de Vries") -> dict[str, Any]:
    """The municipality confirms receipt of a klantprofiel (same conversation, so COA can match it)."""
    persoon = klantprofiel_doc["payload"]["persoon"]
    doc = message(
        "klantprofiel-ontvangst",
        purpose="nl-voorinburgering-ontvangst",
        subject_type=klantprofiel_doc["subject"]["type"],
        subject_id=klantprofiel_doc["subject"]["id"],
        payload={
            "persoon": {"identificatie": persoon["identificatie"], "achternaam": persoon["achternaam"]},
            "gemeentecode": klantprofiel_doc["payload"]["gemeentecode"],
            "klantprofielBericht": klantprofiel_doc["messageId"],
            "ontvangenOp": date.today().isoformat(),
            "contactpersoon": contactpersoon,
        },
    )
    doc["conversationId"] = klantprofiel_doc.get("conversationId") or klantprofiel_doc["messageId"]
    return doc


def pip_wijziging(pip_doc: dict[str, Any], leerroute: str = "Z") -> dict[str, Any]:
    """A change of leerroute to an established PIP, naming that PIP."""
    payload = pip_doc["payload"]
    doc = message(
        "pip-wijziging",
        purpose="nl-pip-wijziging",
        subject_type=pip_doc["subject"]["type"],
        subject_id=pip_doc["subject"]["id"],
        payload={
            "persoon": payload["persoon"],
            "gemeentecode": payload["gemeentecode"],
            "vervangtBericht": pip_doc["messageId"],
            "gewijzigdOp": date.today().isoformat(),
            "onderdeel": ["LEERROUTE"],
            "leerroute": leerroute,
            "reden": "Uit de voortgang blijkt dat een andere leerroute beter past",
        },
    )
    doc["conversationId"] = pip_doc.get("conversationId") or pip_doc["messageId"]
    return doc
