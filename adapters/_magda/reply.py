"""Reading MAGDA replies and their Uitzonderingen (three levels).

The shape (the shared samples hold the body element; on the wire it sits in a
SOAP 1.1 envelope)::

    soapenv:Envelope/soapenv:Body/
      soapenv:Fault/{faultcode, faultstring, detail//Uitzondering*}      level 1
      | <Dienst>Response (service namespace)/Repliek                     (children unqualified)
          Context/{Naam, Versie, Bericht/...}
          Uitzonderingen/Uitzondering*                                   level 2: the whole request
          Antwoorden/Antwoord/{Referte, Inhoud?, Uitzonderingen/Uitzondering*}   level 3: this answer

    Uitzondering = {Identificatie (code), Oorsprong, Type (FOUT|WAARSCHUWING|INFORMATIE),
                    Tijdstip?, Diagnose, Annotaties/Annotatie/{Naam, Waarde}*}

A partial answer (data plus Uitzonderingen from some sources) is data plus
warnings, never a failure: :func:`assess` decides.

Errors never quote the reply: only codes, element names we expected, and the
partner's own Diagnose (trimmed), which is meant for consumers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from adapters._magda import services
from adapters._magda.services import SOAP_ENV, Service
from hub import xmlsafe
from hub.errors import MalformedInput, PartnerError, PartnerRejected, PartnerUnavailable, PayloadTooLarge

Level = Literal["soap", "repliek", "antwoord"]
TRANSIENT = frozenset({services.SOURCE_UNAVAILABLE, "60006"})
_WS = re.compile(r"\s+")
_MAX_DIAGNOSE = 240


class NotRegistered(PartnerRejected):
    """MAGDA answered 40003: the consumer has not registered (RegistreerInschrijving) this person."""

    code = "partner_not_registered"


def _text(el: etree._Element | None, path: str) -> str:
    if el is None:
        return ""
    found = el.find(path)
    if found is None or found.text is None:
        return ""
    return _WS.sub(" ", found.text).strip()


@dataclass(frozen=True, slots=True)
class Uitzondering:
    """One MAGDA exception: a code, who raised it, how severe, and why."""

    identificatie: str
    oorsprong: str
    type: str
    diagnose: str
    niveau: Level
    annotaties: tuple[tuple[str, str], ...] = ()

    @property
    def is_fout(self) -> bool:
        return self.type == "FOUT"

    def annotatie(self, naam: str) -> str | None:
        """The value of the first annotation with this name (case-insensitive), if any."""
        for key, value in self.annotaties:
            if key.lower() == naam.lower():
                return value
        return None

    def describe(self) -> str:
        """A one-line notice for a caller: code, origin, type and the (trimmed) diagnosis."""
        diagnose = self.diagnose[:_MAX_DIAGNOSE]
        return f"{self.identificatie} ({self.oorsprong}, {self.type}): {diagnose}"


def _uitzondering(u: etree._Element, niveau: Level) -> Uitzondering:
    annotaties = tuple(
        (_text(a, "Naam"), _text(a, "Waarde")) for a in u.findall("Annotaties/Annotatie") if _text(a, "Naam")
    )
    return Uitzondering(
        identificatie=_text(u, "Identificatie"),
        oorsprong=_text(u, "Oorsprong"),
        type=_text(u, "Type").upper(),
        diagnose=_text(u, "Diagnose"),
        niveau=niveau,
        annotaties=annotaties,
    )


def read_uitzonderingen(container: etree._Element | None, niveau: Level) -> tuple[Uitzondering, ...]:
    """Read ``Uitzonderingen/Uitzondering*`` directly below ``container``."""
    if container is None:
        return ()
    return tuple(_uitzondering(u, niveau) for u in container.findall("Uitzonderingen/Uitzondering"))


@dataclass(frozen=True, slots=True)
class Reply:
    """One MAGDA reply, read: the first Antwoord's Inhoud and the Uitzonderingen of levels 2 and 3."""

    service: Service
    inhoud: etree._Element | None
    antwoord_referte: str
    repliek_uitzonderingen: tuple[Uitzondering, ...]
    antwoord_uitzonderingen: tuple[Uitzondering, ...]

    @property
    def uitzonderingen(self) -> tuple[Uitzondering, ...]:
        return self.repliek_uitzonderingen + self.antwoord_uitzonderingen

    def codes(self) -> frozenset[str]:
        return frozenset(u.identificatie for u in self.uitzonderingen)


@dataclass(frozen=True, slots=True)
class Assessment:
    """What a reply means for the caller: is there an answer, and which notices go with it."""

    found: bool
    warnings: tuple[str, ...]


def parse_envelope(body: bytes, service: Service, *, max_bytes: int, partner: str = "MAGDA") -> Reply:
    """Parse a SOAP reply from the wire into a :class:`Reply`.

    Raises:
        PartnerError: unreadable, hostile (DOCTYPE/entities), too large, not SOAP 1.1,
            or not the expected response element.
        PartnerUnavailable: a SOAP Server fault, or a fault carrying 99996.
        PartnerRejected: a SOAP Client fault.
    """
    try:
        root = xmlsafe.parse(body, max_bytes=max_bytes)
    except PayloadTooLarge as exc:
        raise PartnerError(f"{partner}: antwoord groter dan {max_bytes} bytes geweigerd") from exc
    except MalformedInput as exc:
        raise PartnerError(
            f"{partner}: {service.name}-antwoord onleesbaar (geen welgevormde XML, of met een verboden DTD)"
        ) from exc
    if root.tag != "{%s}Envelope" % SOAP_ENV:
        raise PartnerError(f"{partner}: {service.name}-antwoord is geen SOAP 1.1-envelop")
    soap_body = root.find("{%s}Body" % SOAP_ENV)
    children = [] if soap_body is None else [c for c in soap_body if isinstance(c.tag, str)]
    if not children:
        raise PartnerError(f"{partner}: {service.name}-antwoord heeft een lege SOAP Body")
    first = children[0]
    if first.tag == "{%s}Fault" % SOAP_ENV:
        raise fault_error(first, service, partner)
    return read_response(first, service, partner=partner)


def fault_error(fault: etree._Element, service: Service, partner: str = "MAGDA") -> PartnerError:
    """Level 1: map a SOAP fault to a transient or permanent partner error."""
    faultcode = _text(fault, "faultcode")
    faultstring = _text(fault, "faultstring")[:_MAX_DIAGNOSE]
    detail = fault.find("detail")
    inner = () if detail is None else tuple(_uitzondering(u, "soap") for u in detail.iter("Uitzondering"))
    codes = {u.identificatie for u in inner}
    notice = "; ".join(u.describe() for u in inner) or faultstring or "zonder omschrijving"
    local = faultcode.rpartition(":")[2]
    if codes & TRANSIENT or local == "Server":
        return PartnerUnavailable(f"{partner}: SOAP-fout bij {service.name} ({local or 'onbekend'}): {notice}")
    return PartnerRejected(f"{partner}: SOAP-fout bij {service.name} ({local or 'onbekend'}): {notice}")


def read_response(element: etree._Element, service: Service, *, partner: str = "MAGDA") -> Reply:
    """Read ``<Dienst>Response/Repliek`` (the body element) into a :class:`Reply`.

    Raises:
        PartnerError: the element is not the expected response (wrong name or namespace)
            or has no Repliek.
    """
    if element.tag != service.response_tag:
        raise PartnerError(
            f"{partner}: verwacht {service.name}Response in namespace {service.namespace}, kreeg een ander element"
        )
    repliek = element.find("Repliek")
    if repliek is None:
        raise PartnerError(f"{partner}: {service.name}-antwoord zonder Repliek")
    naam = _text(repliek, "Context/Naam")
    if naam and naam != service.name:
        raise PartnerError(f"{partner}: antwoord hoort bij een andere dienst dan {service.name}")
    antwoord = repliek.find("Antwoorden/Antwoord")
    return Reply(
        service=service,
        inhoud=None if antwoord is None else antwoord.find("Inhoud"),
        antwoord_referte=_text(antwoord, "Referte"),
        repliek_uitzonderingen=read_uitzonderingen(repliek, "repliek"),
        antwoord_uitzonderingen=read_uitzonderingen(antwoord, "antwoord"),
    )


def assess(reply: Reply, *, has_data: bool, partner: str = "MAGDA") -> Assessment:
    """Decide what a reply means; raise for the Uitzonderingen that are failures.

    Level 2 (Repliek) FOUT is always a failure. Level 3 (Antwoord) FOUT is a failure
    only when no data came with it; with data it is a warning (partial answer).
    30001/30101 without data mean "no data" (``found=False``); 30002/30004 are left
    to the caller, which surfaces the new INSZ.

    Raises:
        NotRegistered: 40003 - the caller registers the person and asks again, once.
        PartnerUnavailable: 99996 or 60006 (the source is unavailable) without data.
        PartnerRejected: any other FOUT that leaves no answer.
    """
    fatal = [u for u in reply.repliek_uitzonderingen if u.is_fout]
    if not has_data:
        fatal += [u for u in reply.antwoord_uitzonderingen if u.is_fout]
    codes = {u.identificatie for u in fatal}
    what = reply.service.name
    if services.NOT_REGISTERED in codes:
        raise NotRegistered(f"{partner}: persoon niet geregistreerd voor {what} (40003)")
    transient = [u for u in fatal if u.identificatie in TRANSIENT]
    if transient:
        raise PartnerUnavailable(f"{partner}: bron niet beschikbaar bij {what}: {transient[0].describe()}")
    handled = services.NO_DATA | {services.INSZ_CANCELLED, services.INSZ_REPLACED}
    refused = [u for u in fatal if u.identificatie not in handled or u.niveau == "repliek"]
    if refused:
        raise PartnerRejected(f"{partner}: {what} geweigerd: " + "; ".join(u.describe() for u in refused))
    warnings = tuple(u.describe() for u in reply.uitzonderingen)
    return Assessment(found=has_data, warnings=warnings)


def registration_succeeded(reply: Reply, partner: str = "MAGDA") -> None:
    """Check a RegistreerInschrijving/RegistreerUitschrijving answer: ``Inhoud/Resultaat`` = 1.

    Raises:
        PartnerUnavailable: 99996 (retry later).
        PartnerRejected: ``Resultaat`` 0 ("Niet geslaagd") or a FOUT.
    """
    assess(reply, has_data=reply.inhoud is not None)
    resultaat = reply.inhoud.find("Resultaat") if reply.inhoud is not None else None
    if resultaat is None or (resultaat.text or "").strip() != "1":
        beschrijving = "" if resultaat is None else resultaat.get("Beschrijving", "")[:_MAX_DIAGNOSE]
        raise PartnerRejected(
            f"{partner}: {reply.service.name} niet geslaagd{': ' + beschrijving if beschrijving else ''}"
        )
