"""Canonical mappings for shapes the shared samples do not cover (abroad, internaat, unknown)."""

from __future__ import annotations

from lxml import etree

from adapters._magda.onderwijs import inschrijving
from adapters._magda.persoon import adres, persoon


def xml(text: str) -> etree._Element:
    return etree.fromstring(text.encode())


def test_residence_abroad_keeps_country_and_lines() -> None:
    el = xml(
        "<Adressen><VerblijfplaatsBuitenland><Land><ISOCode>UKR</ISOCode><Naam>Oekraïne</Naam></Land>"
        "<Teksten><Tekst>vul. Khreshchatyk 1</Tekst><Tekst> Kyiv </Tekst><Tekst/></Teksten>"
        "</VerblijfplaatsBuitenland></Adressen>"
    )
    assert adres(el) == {
        "type": "buitenland",
        "land": "Oekraïne",
        "landIso": "UKR",
        "regels": ["vul. Khreshchatyk 1", "Kyiv"],
    }


def test_missing_address_is_unknown_not_absent() -> None:
    assert adres(None) == {"type": "onbekend"}
    assert adres(xml("<Adressen/>")) == {"type": "onbekend"}
    assert persoon(xml("<Persoon><INSZ>85073003328</INSZ></Persoon>")) == {
        "insz": "85073003328",
        "voornamen": [],
        "achternaam": None,
        "geboortedatum": None,
        "geslacht": None,
        "adres": {"type": "onbekend"},
        "bron": None,
    }


def test_non_standardised_street_and_municipality_are_used() -> None:
    el = xml(
        "<Adressen><Hoofdverblijfplaats DatumBegin='2020-01-01'>"
        "<NietGestandaardiseerdeStraatnaam><String>Rue X</String></NietGestandaardiseerdeStraatnaam>"
        "<Huisnummer>3</Huisnummer><Postcode>1000</Postcode>"
        "<NietGestandaardiseerdeGemeentenaam><String>Brussel</String></NietGestandaardiseerdeGemeentenaam>"
        "</Hoofdverblijfplaats></Adressen>"
    )
    mapped = adres(el)
    assert (mapped["straat"], mapped["gemeente"], mapped["sinds"]) == ("Rue X", "Brussel", "2020-01-01")


def test_internaat_enrolment() -> None:
    el = xml(
        "<Inschrijving><Bron>INT</Bron><Referte>r</Referte><Instelling><Instellingsnummer>1</Instellingsnummer>"
        "<OfficieleNaam>Internaat</OfficieleNaam></Instelling><Internaat><Schooljaar>2021</Schooljaar>"
        "<Periode><Begin>2021-09-01</Begin><Einde>2022-06-30</Einde></Periode></Internaat></Inschrijving>"
    )
    item = inschrijving(el)
    assert item["soort"] == "internaat"
    assert item["periode"] == {"begin": "2021-09-01", "einde": "2022-06-30"}
    assert item["schooljaar"] == "2021"
    assert item["nt2"] is False


def test_enrolment_without_domain_part_keeps_the_common_fields() -> None:
    item = inschrijving(xml("<Inschrijving><Bron>LP</Bron><Referte>r</Referte><Instelling/></Inschrijving>"))
    assert item["soort"] is None
    assert item["bron"] == "LP"
    assert item["locatie"] is None
