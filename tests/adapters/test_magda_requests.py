"""Every request the MAGDA library builds validates against the shared MAGDA XSDs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from adapters._magda import request as rq
from adapters._magda.services import SOAP_ENV

AFZENDER = rq.Afzender("knooppunt.vlaanderen.be/knooppunt", "1300", gebruiker="85073003328")
INSZ = "85073003328"

BUILDERS: dict[str, tuple[str, Callable[[], rq.BuiltRequest]]] = {
    "GeefPersoon": ("GeefPersoonDienst-02.02/WebService/GeefPersoon.xsd", lambda: rq.geef_persoon(AFZENDER, INSZ)),
    "GeefHistoriekInschrijving": (
        "GeefHistoriekInschrijvingDienst-02.01/WebService/GeefHistoriekInschrijving.xsd",
        lambda: rq.geef_historiek_inschrijving(AFZENDER, INSZ, van=date(2015, 1, 1), tot=date(2016, 6, 30)),
    ),
    "GeefHistoriekInschrijving-VWO": (
        "GeefHistoriekInschrijvingDienst-02.01/WebService/GeefHistoriekInschrijving.xsd",
        lambda: rq.geef_historiek_inschrijving(
            AFZENDER, INSZ, van=date(2020, 2, 29), tot=date(2024, 12, 31), bronnen=("VWO",)
        ),
    ),
    "RegistreerInschrijving": (
        "RegistreerInschrijvingDienst-02.01/WebService/RegistreerInschrijving.xsd",
        lambda: rq.registreer_inschrijving(AFZENDER, INSZ, begin=date(2025, 1, 1), einde=date(2026, 1, 1)),
    ),
    "RegistreerInschrijving-open": (
        "RegistreerInschrijvingDienst-02.01/WebService/RegistreerInschrijving.xsd",
        lambda: rq.registreer_inschrijving(AFZENDER, INSZ, begin=date(2025, 1, 1)),
    ),
    "RegistreerUitschrijving": (
        "RegistreerUitschrijvingDienst-02.00/WebService/RegistreerUitschrijving.xsd",
        lambda: rq.registreer_uitschrijving(AFZENDER, INSZ),
    ),
}


@cache
def _schema(path: Path) -> etree.XMLSchema:
    # The XSDs are trusted files from the shared contracts; they include each other by relative path.
    return etree.XMLSchema(etree.parse(str(path)))


def _service_element(body: bytes) -> etree._Element:
    envelope = etree.fromstring(body)
    assert envelope.tag == "{%s}Envelope" % SOAP_ENV
    soap_body = envelope.find("{%s}Body" % SOAP_ENV)
    assert soap_body is not None
    return soap_body[0]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_request_validates_against_shared_xsd(name: str, magda_contracts: Path) -> None:
    xsd, build = BUILDERS[name]
    schema = _schema(magda_contracts / "xsd" / xsd)
    element = _service_element(build().body)
    assert schema.validate(element), schema.error_log


def test_validation_catches_a_broken_request(magda_contracts: Path) -> None:
    """The check above can fail: a request without Vraag/Referte is refused by the XSD."""
    xsd, build = BUILDERS["GeefPersoon"]
    element = _service_element(build().body)
    vraag = element.find("Verzoek/Vragen/Vraag")
    assert vraag is not None
    vraag.remove(vraag.find("Referte"))
    assert not _schema(magda_contracts / "xsd" / xsd).validate(element)


def test_shared_templates_validate_too(magda_contracts: Path) -> None:
    """Our reading of the XSDs agrees with MAGDA's own request templates."""
    pairs = {
        "GeefPersoon/02.02.0000": BUILDERS["GeefPersoon"][0],
        "Onderwijs.GeefHistoriekInschrijving/02.01.0000": BUILDERS["GeefHistoriekInschrijving"][0],
        "RegistreerInschrijving/02.01.0000": BUILDERS["RegistreerInschrijving"][0],
        "RegistreerUitschrijving/02.00.0000": BUILDERS["RegistreerUitschrijving"][0],
    }
    for template, xsd in pairs.items():
        body = (magda_contracts / "requests" / template / "template.xml").read_bytes()
        schema = _schema(magda_contracts / "xsd" / xsd)
        assert schema.validate(_service_element(body)), (template, schema.error_log)


def test_request_carries_context_and_fresh_references() -> None:
    now = datetime(2025, 3, 4, 5, 6, 7, 890000)
    first = rq.geef_persoon(AFZENDER, INSZ, now=now)
    second = rq.geef_persoon(AFZENDER, INSZ, now=now)
    element = _service_element(first.body)
    context = element.find("Verzoek/Context")
    assert context is not None
    assert context.findtext("Naam") == "GeefPersoon"
    assert context.findtext("Versie") == "02.02.0000"
    assert context.findtext("Bericht/Type") == "VRAAG"
    assert context.findtext("Bericht/Tijdstip/Datum") == "2025-03-04"
    assert context.findtext("Bericht/Tijdstip/Tijd") == "05:06:07.890"
    assert context.findtext("Bericht/Afzender/Identificatie") == AFZENDER.identificatie
    assert context.findtext("Bericht/Afzender/Hoedanigheid") == "1300"
    assert context.findtext("Bericht/Afzender/Gebruiker") == AFZENDER.gebruiker
    assert context.findtext("Bericht/Afzender/Referte") == first.bericht_referte
    assert element.findtext("Verzoek/Vragen/Vraag/Referte") == first.vraag_referte
    assert first.bericht_referte != second.bericht_referte
    assert first.vraag_referte != second.vraag_referte


def test_request_matches_the_expected_shape_after_c14n() -> None:
    """The whole GeefPersoon body, compared after exclusive C14N with the references fixed."""
    built = rq.geef_persoon(AFZENDER, INSZ, now=datetime(2025, 1, 1, 12, 0, 0))
    element = _service_element(built.body)
    expected = f"""<web:GeefPersoon xmlns:web="http://magda.vlaanderen.be/persoon/soap/geefpersoon/v02_02">
      <Verzoek><Context><Naam>GeefPersoon</Naam><Versie>02.02.0000</Versie><Bericht><Type>VRAAG</Type>
      <Tijdstip><Datum>2025-01-01</Datum><Tijd>12:00:00.000</Tijd></Tijdstip><Afzender>
      <Identificatie>knooppunt.vlaanderen.be/knooppunt</Identificatie><Referte>{built.bericht_referte}</Referte>
      <Hoedanigheid>1300</Hoedanigheid><Gebruiker>85073003328</Gebruiker></Afzender></Bericht></Context>
      <Vragen><Vraag><Referte>{built.vraag_referte}</Referte><Inhoud><Criteria><INSZ>85073003328</INSZ>
      <OpvragingenKSZ><BasisPersoonsgegevens>1</BasisPersoonsgegevens></OpvragingenKSZ></Criteria>
      <Bron>RR</Bron><Taal>nl</Taal></Inhoud></Vraag></Vragen></Verzoek></web:GeefPersoon>"""
    parser = etree.XMLParser(remove_blank_text=True)
    want = etree.fromstring(expected.encode(), parser)
    got = etree.fromstring(etree.tostring(element), parser)
    assert etree.tostring(got, method="c14n", exclusive=True) == etree.tostring(want, method="c14n", exclusive=True)
