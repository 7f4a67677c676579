"""SOAP, MAGDA-style: RegistreerInschrijving and RegistreerUitschrijving on the reference directory.

Request body (the MAGDA Repertorium shape; any namespace on the root)::

    <RegistreerInschrijving><Verzoek>
      <Context><Naam/><Versie/><Bericht><Type>VRAAG</Type><Tijdstip/>
        <Afzender><Identificatie>partner-id</Identificatie><Referte/></Afzender></Bericht></Context>
      <Vragen><Vraag><Referte/><Inhoud>
        <Inschrijving><Identificatie>partner-id</Identificatie><Hoedanigheid>woongemeente</Hoedanigheid>
          <BetrokkenSubject><Type>PERS</Type><Subjecten><Subject><Type>PERS</Type>
            <Sleutel>INSZ</Sleutel></Subject></Subjecten></BetrokkenSubject>
          <Periode><Begin/><Einde/></Periode></Inschrijving>
      </Inhoud></Vraag></Vragen></Verzoek></RegistreerInschrijving>

    <RegistreerUitschrijving> ... <Inhoud><Uitschrijving><Identificatie/><Hoedanigheid/>
      <INSZ/></Uitschrijving></Inhoud> ... </RegistreerUitschrijving>

Answer: ``<rep:RegistreerInschrijvingResponse><Repliek><Context/><Antwoorden><Antwoord>
<Referte/><Inhoud><Resultaat Beschrijving="Wel geslaagd">1</Resultaat></Inhoud>
</Antwoord></Antwoorden></Repliek>``; a question that fails carries
``Antwoord/Uitzonderingen`` (partial answer); when every question fails, or the
request itself is wrong, a SOAP fault with ``Uitzonderingen`` (hub/api/soap.py).
Identifiers: a ``Sleutel`` of 11 digits is an INSZ, of 9 digits a BSN.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from lxml import etree

from hub import xmlsafe
from hub.api.deps import authenticate_request, get_hub, read_body
from hub.api.soap import SOAP_NS, fault
from hub.errors import HubError, InvalidParam, MalformedInput, NotAllowed, NotFound, ValidationFailed
from hub.partners import Partner
from hub.service import Hub

REP_NS = "urn:knooppunt:repertorium:1"
_S = "{%s}" % SOAP_NS

router = APIRouter(tags=["soap"], include_in_schema=False)

# MAGDA's codes where one exists (30002 INSZ geschrapt, 40003 niet ingeschreven)
_MAGDA_CODES = {"insz_cancelled": "30002", "not_found": "40003"}


@dataclass(frozen=True, slots=True)
class _Outcome:
    referte: str
    error: HubError | None = None


def _child(node: etree._Element | None, *path: str) -> etree._Element | None:
    """Descend by local names (MAGDA's inner elements are unqualified, but be lenient)."""
    for step in path:
        if node is None:
            return None
        node = next((c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == step), None)
    return node


def _text(node: etree._Element | None, *path: str) -> str:
    found = _child(node, *path)
    return (found.text or "").strip() if found is not None else ""


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(
            "ongeldige datum", invalid_params=[InvalidParam(name, "verwacht JJJJ-MM-DD", "date")]
        ) from exc


def _subject(key: str) -> tuple[str, str]:
    return ("BSN", key) if len(key) == 9 else ("INSZ", key)


async def _one(hub: Hub, caller: Partner, operation: str, vraag: etree._Element) -> _Outcome:
    referte = _text(vraag, "Referte")
    try:
        if operation == "RegistreerInschrijving":
            item = _child(vraag, "Inhoud", "Inschrijving")
            if item is None:
                raise MalformedInput("Vraag/Inhoud/Inschrijving ontbreekt")
            if _text(item, "Identificatie") not in ("", caller.id):
                raise NotAllowed("een partner schrijft alleen zichzelf in (Inschrijving/Identificatie)")
            subject_type, subject_id = _subject(_text(item, "BetrokkenSubject", "Subjecten", "Subject", "Sleutel"))
            await hub.directory.register(
                caller,
                subject_type=subject_type,
                subject_id=subject_id,
                capacity=_text(item, "Hoedanigheid"),
                valid_from=_day(_text(item, "Periode", "Begin"), "Periode/Begin"),
                valid_until=_day(_text(item, "Periode", "Einde"), "Periode/Einde"),
                channel="soap",
            )
        else:
            item = _child(vraag, "Inhoud", "Uitschrijving")
            if item is None:
                raise MalformedInput("Vraag/Inhoud/Uitschrijving ontbreekt")
            if _text(item, "Identificatie") not in ("", caller.id):
                raise NotAllowed("een partner schrijft alleen zichzelf uit (Uitschrijving/Identificatie)")
            key = _text(item, "INSZ") or _text(item, "BSN")
            subject_type, subject_id = _subject(key)
            await hub.directory.deregister(
                caller,
                subject_type=subject_type,
                subject_id=subject_id,
                capacity=_text(item, "Hoedanigheid") or None,
                valid_until=_day(_text(item, "Einde"), "Uitschrijving/Einde"),
                channel="soap",
            )
    except HubError as exc:
        return _Outcome(referte, exc)
    return _Outcome(referte)


def _uitzonderingen(parent: etree._Element, exc: HubError) -> None:
    holder = etree.SubElement(parent, "Uitzonderingen")
    entries = [(exc.code, exc.detail)] + [(p.code, f"{p.name}: {p.reason}") for p in exc.invalid_params]
    for code, diagnose in entries:
        u = etree.SubElement(holder, "Uitzondering")
        etree.SubElement(u, "Identificatie").text = _MAGDA_CODES.get(code, code)
        etree.SubElement(u, "Oorsprong").text = "knooppunt"
        etree.SubElement(u, "Type").text = "FOUT"
        etree.SubElement(u, "Diagnose").text = diagnose


def _reply(operation: str, version: str, caller: Partner, afzender_referte: str, outcomes: list[_Outcome]) -> bytes:
    now = datetime.now(UTC)
    root = etree.Element(_S + "Envelope", nsmap={"soap": SOAP_NS})
    body = etree.SubElement(root, _S + "Body")
    response = etree.SubElement(body, "{%s}%sResponse" % (REP_NS, operation), nsmap={"rep": REP_NS})
    repliek = etree.SubElement(response, "Repliek")
    context = etree.SubElement(repliek, "Context")
    etree.SubElement(context, "Naam").text = operation
    etree.SubElement(context, "Versie").text = version
    bericht = etree.SubElement(context, "Bericht")
    etree.SubElement(bericht, "Type").text = "ANTWOORD"
    tijdstip = etree.SubElement(bericht, "Tijdstip")
    etree.SubElement(tijdstip, "Datum").text = now.date().isoformat()
    etree.SubElement(tijdstip, "Tijd").text = now.strftime("%H:%M:%S.%f")[:12]
    afzender = etree.SubElement(bericht, "Afzender")
    etree.SubElement(afzender, "Identificatie").text = "knooppunt"
    etree.SubElement(afzender, "Referte").text = str(uuid.uuid4())
    ontvanger = etree.SubElement(bericht, "Ontvanger")
    etree.SubElement(ontvanger, "Identificatie").text = caller.id
    etree.SubElement(ontvanger, "Referte").text = afzender_referte
    antwoorden = etree.SubElement(repliek, "Antwoorden")
    for outcome in outcomes:
        antwoord = etree.SubElement(antwoorden, "Antwoord")
        etree.SubElement(antwoord, "Referte").text = outcome.referte
        inhoud = etree.SubElement(antwoord, "Inhoud")
        resultaat = etree.SubElement(inhoud, "Resultaat")
        if outcome.error is None:
            resultaat.set("Beschrijving", "Wel geslaagd")
            resultaat.text = "1"
        else:
            resultaat.set("Beschrijving", "Niet geslaagd")
            resultaat.text = "0"
            _uitzonderingen(antwoord, outcome.error)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@router.post("/soap/repertorium")
async def repertorium(request: Request) -> Response:
    """RegistreerInschrijving / RegistreerUitschrijving (SOAP 1.1, document/literal)."""
    hub = get_hub(request)
    try:
        caller = await authenticate_request(request)
        body = await read_body(request, hub.settings.max_body_bytes)
        root = xmlsafe.parse(body, max_bytes=hub.settings.max_body_bytes, max_depth=hub.settings.max_xml_depth)
        soap_body = root.find(_S + "Body") if root.tag == _S + "Envelope" else None
        if soap_body is None or len(soap_body) != 1 or not isinstance(soap_body[0].tag, str):
            raise MalformedInput("verwacht een SOAP 1.1-envelop met één element in de Body")
        operation = etree.QName(soap_body[0]).localname
        if operation not in ("RegistreerInschrijving", "RegistreerUitschrijving"):
            raise NotFound(f"onbekende operatie {operation!r}: RegistreerInschrijving of RegistreerUitschrijving")
        verzoek = _child(soap_body[0], "Verzoek")
        holder = _child(verzoek, "Vragen")
        vragen = [
            v
            for v in (holder if holder is not None else ())
            if isinstance(v.tag, str) and etree.QName(v).localname == "Vraag"
        ]
        if not vragen:
            raise MalformedInput("Verzoek/Vragen/Vraag ontbreekt")
        if len(vragen) > 100:
            raise MalformedInput("hoogstens 100 vragen per verzoek")
        afzender = _text(verzoek, "Context", "Bericht", "Afzender", "Identificatie")
        if afzender and afzender != caller.id:
            raise NotAllowed(
                f"afzender {afzender} is niet de aangemelde partner {caller.id}",
                invalid_params=[
                    InvalidParam("Context/Bericht/Afzender/Identificatie", "moet de partner zijn", "sender")
                ],
            )
    except HubError as exc:
        return fault(exc)
    outcomes = [await _one(hub, caller, operation, vraag) for vraag in vragen]
    failed = [o.error for o in outcomes if o.error is not None]
    if len(failed) == len(outcomes):
        first = failed[0]
        if first is not None:
            return fault(first)
    reply = _reply(
        operation,
        _text(verzoek, "Context", "Versie") or "02.01.0000",
        caller,
        _text(verzoek, "Context", "Bericht", "Afzender", "Referte"),
        outcomes,
    )
    return Response(reply, media_type="text/xml; charset=utf-8")
