"""Building MAGDA requests, wrapped in SOAP 1.1.

The shape (every service, from the shared XSDs)::

    soapenv:Envelope/soapenv:Body/
      <Dienst xmlns=service-namespace>/Verzoek        (children unqualified)
        Context/{Naam, Versie, Bericht/{Type=VRAAG, Tijdstip/{Datum, Tijd},
                 Afzender/{Identificatie, Referte, Hoedanigheid, Gebruiker?}}}
        Vragen/Vraag/{Referte, Inhoud/...}

``Inhoud`` per service:

- GeefPersoon 02.02: ``Criteria/{INSZ, OpvragingenKSZ?}, Bron, Taal``
- GeefHistoriekInschrijving 02.01: ``Criteria/{INSZ, Periode/{Begin, Einde}, Bronnen/Bron*}``
- RegistreerInschrijving 02.01: ``Inschrijving/{Identificatie, Hoedanigheid,
  BetrokkenSubject/{Type=PERS, Subjecten/Subject/{Type=PERS, Sleutel}}, Periode/{Begin, Einde?}}``
- RegistreerUitschrijving 02.00: ``Uitschrijving/{Identificatie, Hoedanigheid, INSZ, Periode?}``
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

from adapters._magda import services
from adapters._magda.services import SOAP_ENV, Service

ENRICHMENT_SOURCES = ("LP", "HO", "VWO", "INT")


@dataclass(frozen=True, slots=True)
class Afzender:
    """Who asks: the consumer's application URI, its capacity (Hoedanigheid), optionally the user."""

    identificatie: str
    hoedanigheid: str
    gebruiker: str | None = None


@dataclass(frozen=True, slots=True)
class BuiltRequest:
    """A request ready to send, with the references MAGDA echoes back."""

    service: Service
    body: bytes
    bericht_referte: str
    vraag_referte: str


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _envelope(
    service: Service, afzender: Afzender, now: datetime, referte: str, vraag_referte: str
) -> tuple[etree._Element, etree._Element]:
    """The SOAP envelope with Context and an empty ``Vraag/Inhoud``; returns (envelope, inhoud)."""
    envelope = etree.Element("{%s}Envelope" % SOAP_ENV, nsmap={"soapenv": SOAP_ENV})
    _sub(envelope, "{%s}Header" % SOAP_ENV)
    body = _sub(envelope, "{%s}Body" % SOAP_ENV)
    dienst = etree.SubElement(body, service.request_tag, nsmap={"web": service.namespace})
    verzoek = _sub(dienst, "Verzoek")
    context = _sub(verzoek, "Context")
    _sub(context, "Naam", service.name)
    _sub(context, "Versie", service.version)
    bericht = _sub(context, "Bericht")
    _sub(bericht, "Type", "VRAAG")
    tijdstip = _sub(bericht, "Tijdstip")
    _sub(tijdstip, "Datum", now.strftime("%Y-%m-%d"))
    _sub(tijdstip, "Tijd", now.strftime("%H:%M:%S.") + f"{now.microsecond // 1000:03d}")
    afz = _sub(bericht, "Afzender")
    _sub(afz, "Identificatie", afzender.identificatie)
    _sub(afz, "Referte", referte)
    _sub(afz, "Hoedanigheid", afzender.hoedanigheid)
    if afzender.gebruiker:
        _sub(afz, "Gebruiker", afzender.gebruiker)
    vraag = _sub(_sub(verzoek, "Vragen"), "Vraag")
    _sub(vraag, "Referte", vraag_referte)
    return envelope, _sub(vraag, "Inhoud")


def _build(
    service: Service, afzender: Afzender, now: datetime | None, fill: Callable[[etree._Element], None]
) -> BuiltRequest:
    referte = str(uuid.uuid4())
    vraag_referte = str(uuid.uuid4())
    envelope, inhoud = _envelope(service, afzender, now or datetime.now(), referte, vraag_referte)
    fill(inhoud)
    body = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return BuiltRequest(service, body, referte, vraag_referte)


class _GeefPersoon:
    def __init__(self, insz: str, bron: str, taal: str) -> None:
        self.insz, self.bron, self.taal = insz, bron, taal

    def __call__(self, inhoud: etree._Element) -> None:
        criteria = _sub(inhoud, "Criteria")
        _sub(criteria, "INSZ", self.insz)
        _sub(_sub(criteria, "OpvragingenKSZ"), "BasisPersoonsgegevens", "1")
        _sub(inhoud, "Bron", self.bron)
        _sub(inhoud, "Taal", self.taal)


class _GeefHistoriekInschrijving:
    def __init__(self, insz: str, van: date, tot: date, bronnen: Sequence[str]) -> None:
        self.insz, self.van, self.tot, self.bronnen = insz, van, tot, bronnen

    def __call__(self, inhoud: etree._Element) -> None:
        criteria = _sub(inhoud, "Criteria")
        _sub(criteria, "INSZ", self.insz)
        periode = _sub(criteria, "Periode")
        _sub(periode, "Begin", self.van.isoformat())
        _sub(periode, "Einde", self.tot.isoformat())
        if self.bronnen:
            lijst = _sub(criteria, "Bronnen")
            for bron in self.bronnen:
                _sub(lijst, "Bron", bron)


class _RegistreerInschrijving:
    def __init__(self, afzender: Afzender, insz: str, begin: date, einde: date | None) -> None:
        self.afzender, self.insz, self.begin, self.einde = afzender, insz, begin, einde

    def __call__(self, inhoud: etree._Element) -> None:
        inschrijving = _sub(inhoud, "Inschrijving")
        _sub(inschrijving, "Identificatie", self.afzender.identificatie)
        _sub(inschrijving, "Hoedanigheid", self.afzender.hoedanigheid)
        betrokken = _sub(inschrijving, "BetrokkenSubject")
        _sub(betrokken, "Type", "PERS")
        subject = _sub(_sub(betrokken, "Subjecten"), "Subject")
        _sub(subject, "Type", "PERS")
        _sub(subject, "Sleutel", self.insz)
        periode = _sub(inschrijving, "Periode")
        _sub(periode, "Begin", self.begin.isoformat())
        if self.einde is not None:
            _sub(periode, "Einde", self.einde.isoformat())


class _RegistreerUitschrijving:
    def __init__(self, afzender: Afzender, insz: str) -> None:
        self.afzender, self.insz = afzender, insz

    def __call__(self, inhoud: etree._Element) -> None:
        uitschrijving = _sub(inhoud, "Uitschrijving")
        _sub(uitschrijving, "Identificatie", self.afzender.identificatie)
        _sub(uitschrijving, "Hoedanigheid", self.afzender.hoedanigheid)
        _sub(uitschrijving, "INSZ", self.insz)


class _GeefMutaties:
    def __init__(self, ontvangst_referte: str | None) -> None:
        self.ontvangst_referte = ontvangst_referte

    def __call__(self, inhoud: etree._Element) -> None:
        criteria = _sub(inhoud, "Criteria")
        if self.ontvangst_referte:
            _sub(criteria, "OntvangstReferte", self.ontvangst_referte)


def geef_persoon(
    afzender: Afzender, insz: str, *, bron: str = "RR", taal: str = "nl", now: datetime | None = None
) -> BuiltRequest:
    """GeefPersoon 02.02: the national-register data of one person."""
    return _build(services.GEEF_PERSOON, afzender, now, _GeefPersoon(insz, bron, taal))


def geef_historiek_inschrijving(
    afzender: Afzender,
    insz: str,
    *,
    van: date,
    tot: date,
    bronnen: Sequence[str] = ENRICHMENT_SOURCES,
    now: datetime | None = None,
) -> BuiltRequest:
    """GeefHistoriekInschrijving 02.01: education enrolments in a period, from the given sources."""
    return _build(
        services.GEEF_HISTORIEK_INSCHRIJVING, afzender, now, _GeefHistoriekInschrijving(insz, van, tot, bronnen)
    )


def registreer_inschrijving(
    afzender: Afzender, insz: str, *, begin: date, einde: date | None = None, now: datetime | None = None
) -> BuiltRequest:
    """RegistreerInschrijving 02.01: declare our interest in a person (required before consulting)."""
    return _build(
        services.REGISTREER_INSCHRIJVING, afzender, now, _RegistreerInschrijving(afzender, insz, begin, einde)
    )


def registreer_uitschrijving(afzender: Afzender, insz: str, *, now: datetime | None = None) -> BuiltRequest:
    """RegistreerUitschrijving 02.00: withdraw our interest in a person."""
    return _build(services.REGISTREER_UITSCHRIJVING, afzender, now, _RegistreerUitschrijving(afzender, insz))


def geef_persoon_mutaties(
    afzender: Afzender, *, ontvangst_referte: str | None = None, now: datetime | None = None
) -> BuiltRequest:
    """GeefPersoonMutatiesNotificaties 02.00: the next batch of mutation notifications."""
    return _build(services.GEEF_PERSOON_MUTATIES_NOTIFICATIES, afzender, now, _GeefMutaties(ontvangst_referte))


def empty_envelope() -> bytes:
    """A SOAP 1.1 envelope with an empty Body: a harmless probe that names no service and no person."""
    envelope = etree.Element("{%s}Envelope" % SOAP_ENV, nsmap={"soapenv": SOAP_ENV})
    _sub(envelope, "{%s}Header" % SOAP_ENV)
    _sub(envelope, "{%s}Body" % SOAP_ENV)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
