"""The simulator engine behind the MAGDA, Discimus and Rijksregister simulators.

It serves MAGDA's SOAP contract on one URL (``POST /api/Magda-02.00/soap/WebService``,
as Digitaal Vlaanderen's MAGDA Mock) with generated test persons
(:mod:`adapters._magda.testdata`), and lets tests and demos steer it:

- latency: ``POST /_control/latency {"seconds": 0.2}``;
- faults, per INSZ or for every request (``insz`` omitted), optionally only
  ``times`` times and only for one ``service``:
  ``POST /_control/faults {"fault": "99996", "insz": "...", "times": 1, "service": "GeefPersoon"}``;
  ``DELETE /_control/faults``. Kinds: see :data:`FAULT_KINDS`;
- ``GET /_control/state`` (personas, faults, counters), ``POST /_control/reset``.

GeefPersoon refuses a person the consumer did not register first (40003), so
the adapters' register-then-ask path runs for real. Partner simulators choose
which services they serve and may add handlers (:class:`Handler`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import uvicorn
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters._magda import services
from adapters._magda.services import SOAP_ENV, Service
from adapters._magda.testdata import Enrolment, Personas, TestPerson, generate
from hub import xmlsafe
from hub.errors import HubError

SOAP_PATH = "/api/Magda-02.00/soap/WebService"
MAX_REQUEST_BYTES = 256 * 1024
FAULT_KINDS = (
    "99996",  # Repliek-level Uitzondering: source unavailable (transient)
    "bron_99996",  # Antwoord-level 99996 without data (transient)
    "repliek_fout",  # Repliek-level FOUT 40001 (permanent)
    "40003",  # Antwoord-level 40003, even after registration
    "soap_fault",  # SOAP Server fault, HTTP 500 (transient)
    "soap_client_fault",  # SOAP Client fault, HTTP 500 (permanent)
    "http_503",  # plain-text 503
    "timeout",  # answers after ``timeout_seconds``
    "malformed",  # not well-formed XML
    "truncated",  # the first half of a valid reply
    "xxe",  # a DOCTYPE with an external entity
    "huge",  # a streamed reply of ``huge_bytes``
    "wrong_namespace",  # a valid reply whose response element is in another namespace
)


@dataclass
class Fault:
    """An injected failure; ``remaining`` None means every time."""

    kind: str
    remaining: int | None = None
    service: str | None = None


@dataclass
class Call:
    """What the simulator read from one request."""

    service: Service
    afzender: str
    hoedanigheid: str
    referte: str
    vraag_referte: str
    insz: str | None
    inhoud: etree._Element


@dataclass
class Answer:
    """What a handler answers: Antwoord/Inhoud content plus Uitzonderingen per level."""

    inhoud: list[etree._Element] = field(default_factory=list)
    antwoord_uitzonderingen: list[tuple[str, str, str, str, dict[str, str]]] = field(default_factory=list)
    repliek_uitzonderingen: list[tuple[str, str, str, str, dict[str, str]]] = field(default_factory=list)


Handler = Callable[["SimState", Call], Answer]


@dataclass
class SimState:
    """Everything the simulator knows; tests may read it, control endpoints change it."""

    persons: dict[str, TestPerson]
    personas: Personas
    served: frozenset[str]
    require_registration: frozenset[str]
    latency: float = 0.0
    timeout_seconds: float = 5.0
    huge_bytes: int = 8 * 1024 * 1024
    faults: dict[str, Fault] = field(default_factory=dict)
    registrations: set[tuple[str, str]] = field(default_factory=set)
    requests: dict[str, int] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    def take_fault(self, insz: str | None, service: str) -> str | None:
        """The fault for this INSZ (or the global one) and service, counting down limited faults."""
        for key in (insz or "", "*"):
            fault = self.faults.get(key)
            if fault is None or (fault.service is not None and fault.service != service):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.faults[key]
            return fault.kind
        return None


def sub(parent: etree._Element, tag: str, value: str | None = None) -> etree._Element:
    """Append an unqualified child with optional text."""
    child = etree.SubElement(parent, tag)
    if value is not None:
        child.text = value
    return child


def uitzondering(
    code: str, oorsprong: str, soort: str, diagnose: str, annotaties: dict[str, str] | None = None
) -> tuple[str, str, str, str, dict[str, str]]:
    """An Uitzondering as a handler returns it."""
    return (code, oorsprong, soort, diagnose, annotaties or {})


def _uitzonderingen(parent: etree._Element, items: Iterable[tuple[str, str, str, str, dict[str, str]]]) -> None:
    items = list(items)
    if not items:
        return
    container = sub(parent, "Uitzonderingen")
    now = datetime.now()
    for code, oorsprong, soort, diagnose, annotaties in items:
        u = sub(container, "Uitzondering")
        sub(u, "Identificatie", code)
        sub(u, "Oorsprong", oorsprong)
        sub(u, "Type", soort)
        tijdstip = sub(u, "Tijdstip")
        sub(tijdstip, "Datum", now.strftime("%Y-%m-%d"))
        sub(tijdstip, "Tijd", now.strftime("%H:%M:%S.000"))
        sub(u, "Diagnose", diagnose)
        if annotaties:
            lijst = sub(u, "Annotaties")
            for naam, waarde in annotaties.items():
                a = sub(lijst, "Annotatie")
                sub(a, "Naam", naam)
                sub(a, "Waarde", waarde)


def response_element(call: Call, answer: Answer, namespace: str | None = None) -> etree._Element:
    """``<Dienst>Response/Repliek`` for a call (the body element)."""
    ns = namespace or call.service.namespace
    root = etree.Element("{%s}%sResponse" % (ns, call.service.name), nsmap={"web": ns})
    repliek = sub(root, "Repliek")
    context = sub(repliek, "Context")
    sub(context, "Naam", call.service.name)
    sub(context, "Versie", call.service.version)
    bericht = sub(context, "Bericht")
    sub(bericht, "Type", "ANTWOORD")
    now = datetime.now()
    tijdstip = sub(bericht, "Tijdstip")
    sub(tijdstip, "Datum", now.strftime("%Y-%m-%d"))
    sub(tijdstip, "Tijd", now.strftime("%H:%M:%S.000"))
    afzender = sub(bericht, "Afzender")
    sub(afzender, "Identificatie", "simulator.knooppunt.local")
    sub(afzender, "Naam", "MagdaSimulator")
    sub(afzender, "Referte", str(uuid.uuid4()))
    ontvanger = sub(bericht, "Ontvanger")
    sub(ontvanger, "Identificatie", call.afzender)
    sub(ontvanger, "Referte", call.referte)
    sub(ontvanger, "Hoedanigheid", call.hoedanigheid)
    _uitzonderingen(repliek, answer.repliek_uitzonderingen)
    if not answer.repliek_uitzonderingen or answer.inhoud or answer.antwoord_uitzonderingen:
        antwoord = sub(sub(repliek, "Antwoorden"), "Antwoord")
        sub(antwoord, "Referte", call.vraag_referte)
        if answer.inhoud:
            inhoud = sub(antwoord, "Inhoud")
            for el in answer.inhoud:
                inhoud.append(el)
        _uitzonderingen(antwoord, answer.antwoord_uitzonderingen)
    return root


def envelope(body_element: etree._Element) -> bytes:
    """Wrap a body element in a SOAP 1.1 envelope."""
    env = etree.Element("{%s}Envelope" % SOAP_ENV, nsmap={"soapenv": SOAP_ENV})
    sub(env, "{%s}Header" % SOAP_ENV)
    sub(env, "{%s}Body" % SOAP_ENV).append(body_element)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def soap_fault(faultcode: str, faultstring: str) -> Response:
    """A SOAP 1.1 fault (HTTP 500)."""
    fault = etree.Element("{%s}Fault" % SOAP_ENV, nsmap={"soapenv": SOAP_ENV})
    sub(fault, "faultcode", f"soapenv:{faultcode}")
    sub(fault, "faultstring", faultstring)
    return Response(envelope(fault), status_code=500, media_type="text/xml; charset=utf-8")


# -- handlers ------------------------------------------------------------------------------------


def persoon_element(p: TestPerson, insz: str | None = None) -> etree._Element:
    """A GeefPersoon 02.02 ``Persoon`` for a simulated person."""
    el = etree.Element("Persoon", Bron="RR")
    sub(el, "INSZ", insz or p.insz)
    naam = sub(el, "Naam")
    sub(sub(naam, "Achternamen"), "Achternaam", p.achternaam)
    voornamen = sub(naam, "Voornamen")
    for v in p.voornamen:
        sub(voornamen, "Voornaam", v)
    geslacht = sub(el, "Geslacht")
    sub(geslacht, "Code", p.geslacht)
    sub(geslacht, "Omschrijving", "Mannelijk" if p.geslacht == "1" else "Vrouwelijk")
    nat = sub(sub(el, "Nationaliteiten"), "Nationaliteit")
    sub(nat, "Code", p.nationaliteit[0])
    sub(nat, "Omschrijving", p.nationaliteit[1])
    geboorte = sub(el, "Geboorte")
    sub(geboorte, "Datum", p.geboortedatum.isoformat())
    if p.overlijdensdatum is not None:
        sub(sub(el, "Overlijden"), "Datum", p.overlijdensdatum.isoformat())
    hoofd = sub(sub(el, "Adressen"), "Hoofdverblijfplaats")
    straat = sub(hoofd, "Straatnaam")
    sub(straat, "String", p.straat)
    sub(straat, "Taal", "nl")
    sub(hoofd, "Huisnummer", p.huisnummer)
    gemeente = sub(hoofd, "Gemeentenaam")
    sub(gemeente, "String", p.gemeente)
    sub(gemeente, "Taal", "nl")
    land = sub(hoofd, "Land")
    sub(land, "String", "BELGIE")
    sub(land, "Taal", "nl")
    sub(hoofd, "Postcode", p.postcode)
    sub(hoofd, "NISCodeLand", "150")
    sub(hoofd, "ISOCodeLand", "BEL")
    sub(hoofd, "NISCodeGemeente", p.nis)
    return el


def geef_persoon(state: SimState, call: Call) -> Answer:
    """GeefPersoon: 40003 before registration, then data, 30001, 30002 or 30004 per persona."""
    insz = call.insz or ""
    if "GeefPersoon" in state.require_registration and (call.afzender, insz) not in state.registrations:
        return Answer(
            antwoord_uitzonderingen=[
                uitzondering("40003", "MAGDA", "FOUT", "Persoon niet ingeschreven in het repertorium van de afnemer")
            ]
        )
    person = state.persons.get(insz)
    if person is None:
        return Answer(antwoord_uitzonderingen=[uitzondering("30001", "RR", "FOUT", "Geen gegevens gevonden")])
    if person.insz_status == "geannuleerd":
        return Answer(antwoord_uitzonderingen=[uitzondering("30002", "RR", "FOUT", "INSZ is geannuleerd")])
    if person.insz_status == "vervangen" and person.nieuw_insz in state.persons:
        nieuw = state.persons[person.nieuw_insz]
        return Answer(
            inhoud=[persoon_element(nieuw)],
            antwoord_uitzonderingen=[
                uitzondering(
                    "30004", "RR", "WAARSCHUWING", "INSZ vervangen door een nieuw INSZ", {"NieuwINSZ": nieuw.insz}
                )
            ],
        )
    answer = Answer(inhoud=[persoon_element(person)])
    if person.waarschuwing:
        answer.antwoord_uitzonderingen.append(
            uitzondering("30042", "MAGDA", "INFORMATIE", person.waarschuwing, {"Node": "Inhoud/Persoon/Adressen"})
        )
    return answer


def _inschrijving_element(e: Enrolment, index: int) -> etree._Element:
    el = etree.Element("Inschrijving")
    sub(el, "Bron", e.bron)
    sub(el, "Referte", str(uuid.UUID(int=index + 1)))
    instelling = sub(el, "Instelling")
    sub(instelling, "Instellingsnummer", e.instelling_nummer)
    sub(instelling, "OfficieleNaam", e.instelling_naam)
    sub(instelling, "Instantie", "Centrum voor Volwassenenonderwijs" if e.bron == "VWO" else "School")
    adres = sub(instelling, "Adres")
    gemeente = sub(adres, "Gemeente")
    sub(gemeente, "PostCode", e.postcode)
    sub(gemeente, "Naam", e.gemeente)
    if e.bron == "VWO":
        vwo = sub(el, "Volwassenenonderwijs")
        status = sub(vwo, "Status")
        sub(status, "Code", "INGESCHREVEN")
        sub(status, "Omschrijving", "Ingeschreven")
        sub(vwo, "DatumInschrijving", e.begin.isoformat())
        if e.einde is not None:
            sub(vwo, "DatumUitschrijving", e.einde.isoformat())
        opleiding = sub(vwo, "Opleiding")
        sub(opleiding, "Code", e.opleiding_code)
        sub(opleiding, "Naam", e.opleiding_naam)
        if e.module_naam:
            module = sub(vwo, "Module")
            sub(module, "Code", "0000" + e.opleiding_code)
            sub(module, "Naam", e.module_naam)
        if e.resultaat:
            resultaat = sub(sub(vwo, "Resultaat"), "EvaluatieResultaat")
            sub(resultaat, "Code", e.resultaat)
            sub(resultaat, "Omschrijving", e.resultaat.replace("_", " ").capitalize())
    elif e.bron == "LP":
        lp = sub(el, "LeerplichtOnderwijs")
        sub(lp, "DatumInschrijving", e.begin.isoformat())
        sub(lp, "Schooljaar", str(e.begin.year))
        groep = sub(lp, "InschrijvingAdministratieveGroep")
        periode = sub(groep, "Periode")
        sub(periode, "Begin", e.begin.isoformat())
        if e.einde is not None:
            sub(periode, "Einde", e.einde.isoformat())
        admin = sub(groep, "AdministratieveGroep")
        sub(admin, "Nummer", e.opleiding_code)
        sub(admin, "Naam", e.opleiding_naam)
        if e.anderstalige_nieuwkomer:
            sub(groep, "AnderstaligeNieuwkomer", "1")
    else:
        ho = sub(el, "HogerOnderwijs")
        sub(ho, "Academiejaar", str(e.begin.year))
        sub(ho, "DatumInschrijving", e.begin.isoformat())
        opleiding = sub(ho, "Opleiding")
        sub(opleiding, "Code", e.opleiding_code)
        sub(opleiding, "VolledigeNaam", e.opleiding_naam)
    return el


_ORIGIN = {"LP": "Disci", "HO": "DHO2", "VWO": "VWO", "INT": "Disci"}


def geef_historiek_inschrijving(state: SimState, call: Call) -> Answer:
    """GeefHistoriekInschrijving: enrolments overlapping the period, 30101 per source without data."""
    begin = date.fromisoformat(call.inhoud.findtext("Criteria/Periode/Begin") or "1900-01-01")
    einde = date.fromisoformat(call.inhoud.findtext("Criteria/Periode/Einde") or "2999-12-31")
    bronnen = [b.text or "" for b in call.inhoud.findall("Criteria/Bronnen/Bron")] or ["LP", "HO", "VWO", "INT"]
    if (
        "GeefHistoriekInschrijving" in state.require_registration
        and (call.afzender, call.insz or "") not in state.registrations
    ):
        return Answer(antwoord_uitzonderingen=[uitzondering("40003", "MAGDA", "FOUT", "Persoon niet ingeschreven")])
    person = state.persons.get(call.insz or "")
    found = [
        e
        for e in (person.enrolments if person else [])
        if e.bron in bronnen and e.begin <= einde and (e.einde is None or e.einde >= begin)
    ]
    answer = Answer()
    if found:
        lijst = etree.Element("Inschrijvingen")
        for i, e in enumerate(found):
            lijst.append(_inschrijving_element(e, i))
        answer.inhoud.append(lijst)
    with_data = {e.bron for e in found}
    for origin in sorted({_ORIGIN[b] for b in bronnen if b not in with_data} - {_ORIGIN[b] for b in with_data}):
        answer.antwoord_uitzonderingen.append(
            uitzondering("30101", origin, "FOUT", "Geen gegevens gevonden voor de vraag")
        )
    return answer


def _resultaat(ok: bool) -> etree._Element:
    el = etree.Element("Resultaat", Beschrijving="Wel geslaagd" if ok else "Niet geslaagd")
    el.text = "1" if ok else "0"
    return el


def registreer_inschrijving(state: SimState, call: Call) -> Answer:
    """RegistreerInschrijving 02.01: remember (afzender, INSZ)."""
    if call.insz is None:
        return Answer(inhoud=[_resultaat(False)])
    state.registrations.add((call.afzender, call.insz))
    return Answer(inhoud=[_resultaat(True)])


def registreer_uitschrijving(state: SimState, call: Call) -> Answer:
    """RegistreerUitschrijving 02.00: forget (afzender, INSZ); 0 when it was not registered."""
    key = (call.afzender, call.insz or "")
    ok = key in state.registrations
    state.registrations.discard(key)
    return Answer(inhoud=[_resultaat(ok)])


HANDLERS: dict[str, Handler] = {
    "GeefPersoon": geef_persoon,
    "GeefHistoriekInschrijving": geef_historiek_inschrijving,
    "RegistreerInschrijving": registreer_inschrijving,
    "RegistreerUitschrijving": registreer_uitschrijving,
}

# -- HTTP ----------------------------------------------------------------------------------------


def _read_call(body: bytes) -> Call | Response:
    try:
        root = xmlsafe.parse(body, max_bytes=MAX_REQUEST_BYTES)
    except HubError as exc:
        return soap_fault("Client", f"Ongeldig verzoek: {exc.code}")
    soap_body = root.find("{%s}Body" % SOAP_ENV) if root.tag == "{%s}Envelope" % SOAP_ENV else None
    children = [] if soap_body is None else [c for c in soap_body if isinstance(c.tag, str)]
    if not children:
        return soap_fault("Client", "Geen SOAP 1.1-envelop met een dienst in de Body")
    qname = etree.QName(children[0])
    service = services.BY_NAME.get(qname.localname)
    if service is None or service.namespace != qname.namespace:
        return soap_fault("Client", "Onbekende dienst of versie")
    verzoek = children[0].find("Verzoek")
    inhoud = None if verzoek is None else verzoek.find("Vragen/Vraag/Inhoud")
    if verzoek is None or inhoud is None:
        return soap_fault("Client", "Verzoek zonder Vragen/Vraag/Inhoud")
    insz = (
        inhoud.findtext("Criteria/INSZ")
        or inhoud.findtext("Inschrijving/BetrokkenSubject/Subjecten/Subject/Sleutel")
        or inhoud.findtext("Inschrijving/INSZ")
        or inhoud.findtext("Uitschrijving/INSZ")
    )
    return Call(
        service=service,
        afzender=verzoek.findtext("Context/Bericht/Afzender/Identificatie") or "",
        hoedanigheid=verzoek.findtext("Context/Bericht/Afzender/Hoedanigheid") or "",
        referte=verzoek.findtext("Context/Bericht/Afzender/Referte") or "",
        vraag_referte=verzoek.findtext("Vragen/Vraag/Referte") or "",
        insz=insz.strip() if insz else None,
        inhoud=inhoud,
    )


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


async def _stall(request: Request, seconds: float) -> None:
    """Wait ``seconds``, but stop as soon as the client hangs up (no zombie requests)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.02)


async def _faulty(request: Request, state: SimState, kind: str, call: Call, handler: Handler) -> Response:
    if kind == "99996":
        answer = Answer(
            repliek_uitzonderingen=[uitzondering("99996", "MAGDA", "FOUT", "Te veel gelijktijdige bevragingen")]
        )
        return _xml(envelope(response_element(call, answer)))
    if kind == "bron_99996":
        answer = Answer(antwoord_uitzonderingen=[uitzondering("99996", "RR", "FOUT", "Bron niet beschikbaar")])
        return _xml(envelope(response_element(call, answer)))
    if kind == "40003":
        answer = Answer(antwoord_uitzonderingen=[uitzondering("40003", "MAGDA", "FOUT", "Persoon niet ingeschreven")])
        return _xml(envelope(response_element(call, answer)))
    if kind == "repliek_fout":
        answer = Answer(repliek_uitzonderingen=[uitzondering("40001", "MAGDA", "FOUT", "Geen toegang tot deze dienst")])
        return _xml(envelope(response_element(call, answer)))
    if kind == "soap_fault":
        return soap_fault("Server", "Interne fout bij de bron")
    if kind == "soap_client_fault":
        return soap_fault("Client", "Verzoek geweigerd")
    if kind == "http_503":
        return Response("Service Unavailable", status_code=503, media_type="text/plain")
    normal = envelope(response_element(call, handler(state, call)))
    if kind == "timeout":
        await _stall(request, state.timeout_seconds)
        return _xml(normal)
    if kind == "malformed":
        return _xml(
            b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="%s"><soapenv:Body><Repliek>' % SOAP_ENV.encode()
            + b"</soapenv:Body>"
        )
    if kind == "truncated":
        return _xml(normal[: len(normal) // 2])
    if kind == "xxe":
        return _xml(
            b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            b'<soapenv:Envelope xmlns:soapenv="%s"><soapenv:Body><r>&x;</r></soapenv:Body></soapenv:Envelope>'
            % SOAP_ENV.encode()
        )
    if kind == "huge":
        return StreamingResponse(_huge(state.huge_bytes), media_type="text/xml; charset=utf-8")
    if kind == "wrong_namespace":
        return _xml(envelope(response_element(call, handler(state, call), namespace="urn:example:not-magda")))
    return soap_fault("Server", "Onbekende foutinjectie")


async def _huge(size: int) -> AsyncIterator[bytes]:
    yield b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="%s"><soapenv:Body><x>' % SOAP_ENV.encode()
    chunk = b"<y>" + b"a" * 65530 + b"</y>"
    sent = 0
    while sent < size:
        yield chunk
        sent += len(chunk)
    yield b"</x></soapenv:Body></soapenv:Envelope>"


def _control_routes(state: SimState, reset: Callable[[], None]) -> list[Route]:
    async def get_state(request: Request) -> Response:
        return JSONResponse(
            {
                "personas": vars(state.personas),
                "persons": sorted(state.persons),
                "faults": {
                    k: {"fault": f.kind, "remaining": f.remaining, "service": f.service}
                    for k, f in state.faults.items()
                },
                "latency": state.latency,
                "registrations": len(state.registrations),
                "requests": state.requests,
                "maxInFlight": state.max_in_flight,
                "served": sorted(state.served),
            }
        )

    async def set_fault(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"detail": "JSON verwacht"}, status_code=400)
        kind = body.get("fault") if isinstance(body, dict) else None
        if kind not in FAULT_KINDS:
            return JSONResponse({"detail": f"fault moet een van {', '.join(FAULT_KINDS)} zijn"}, status_code=400)
        times = body.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            return JSONResponse({"detail": "times moet een positief geheel getal zijn"}, status_code=400)
        service = body.get("service")
        if service is not None and service not in services.BY_NAME:
            return JSONResponse({"detail": "onbekende dienst"}, status_code=400)
        state.faults[str(body.get("insz") or "*")] = Fault(kind, times, service)
        return JSONResponse({"ok": True}, status_code=201)

    async def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return Response(status_code=204)

    async def set_latency(request: Request) -> Response:
        try:
            seconds = float(json.loads(await request.body())["seconds"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"detail": '{"seconds": getal} verwacht'}, status_code=400)
        state.latency = max(0.0, seconds)
        return JSONResponse({"latency": state.latency})

    async def do_reset(request: Request) -> Response:
        reset()
        return Response(status_code=204)

    return [
        Route("/_control/state", get_state, methods=["GET"]),
        Route("/_control/faults", set_fault, methods=["POST"]),
        Route("/_control/faults", clear_faults, methods=["DELETE"]),
        Route("/_control/latency", set_latency, methods=["POST"]),
        Route("/_control/reset", do_reset, methods=["POST"]),
    ]


def create_simulator(
    *,
    served: Iterable[str],
    require_registration: Iterable[str] = ("GeefPersoon",),
    extra_handlers: dict[str, Handler] | None = None,
    seed: int = 20251124,
    latency: float = 0.0,
    timeout_seconds: float = 5.0,
    huge_bytes: int = 8 * 1024 * 1024,
    on_reset: Callable[[SimState], None] | None = None,
    extra_routes: Callable[[SimState], list[Route]] | None = None,
) -> Starlette:
    """Build a simulator app serving the named services; its state is ``app.state.sim``."""
    persons, personas = generate(seed)
    state = SimState(
        persons=persons,
        personas=personas,
        served=frozenset(served),
        require_registration=frozenset(require_registration),
        latency=latency,
        timeout_seconds=timeout_seconds,
        huge_bytes=huge_bytes,
    )
    handlers = {**HANDLERS, **(extra_handlers or {})}

    def reset() -> None:
        state.persons, state.personas = generate(seed)
        state.faults.clear()
        state.registrations.clear()
        state.requests.clear()
        state.max_in_flight = 0
        state.latency = latency
        if on_reset is not None:
            on_reset(state)

    async def soap(request: Request) -> Response:
        body = await request.body()
        call = _read_call(body)
        if isinstance(call, Response):
            return call
        name = call.service.name
        if name not in state.served or name not in handlers:
            return soap_fault("Client", f"Dienst {name} wordt hier niet aangeboden")
        state.requests[name] = state.requests.get(name, 0) + 1
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.latency:
                await asyncio.sleep(state.latency)
            handler = handlers[name]
            kind = state.take_fault(call.insz, name)
            if kind is not None:
                return await _faulty(request, state, kind, call, handler)
            return _xml(envelope(response_element(call, handler(state, call))))
        finally:
            state.in_flight -= 1

    routes = [Route(SOAP_PATH, soap, methods=["POST"]), *_control_routes(state, reset)]
    if extra_routes is not None:
        routes += extra_routes(state)
    app = Starlette(routes=routes)
    app.state.sim = state
    return app


def make_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for a simulator, to run beside the hub in one event loop (``await server.serve()``)."""
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", ws="none"))


def serve_app(app: Starlette, host: str, port: int) -> None:
    """Run a simulator until interrupted (blocking)."""
    asyncio.run(make_server(app, host, port).serve())
