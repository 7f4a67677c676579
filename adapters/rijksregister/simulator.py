"""Rijksregister simulator: GeefPersoon (Bron RR), RegistreerInschrijving/-Uitschrijving and
GeefPersoonMutatiesNotificaties at ``POST /api/Magda-02.00/soap/WebService``.

Mutations are made through ``POST /_control/mutaties {"type": "verhuisd"|"overleden"|
"insz_gewijzigd", "insz": "..."}``: the simulator changes the person (a new address,
a date of death, a new INSZ) and queues a notification. A fetch returns every queued
notification with an ``OntvangstReferte``; sending that reference with the next
fetch acknowledges them. An unknown reference answers 30014, an empty queue 30016.
Other control endpoints: :mod:`adapters._magda.sim`.
Run it: ``python -m adapters.rijksregister.simulator --port 8703``.
"""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import uvicorn
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters._magda.sim import (
    SOAP_PATH,
    Answer,
    Call,
    SimState,
    create_simulator,
    make_server,
    persoon_element,
    serve_app,
    sub,
    uitzondering,
)
from adapters._magda.testdata import TestPerson, insz_for

__all__ = ["SOAP_PATH", "create_app", "serve", "server"]

_CODES = {"verhuisd": "ADRESWIJZIGING", "overleden": "OVERLIJDEN", "insz_gewijzigd": "INSZWIJZIGING"}


@dataclass
class _Queue:
    pending: list[etree._Element] = field(default_factory=list)
    sent: dict[str, list[etree._Element]] = field(default_factory=dict)


def _queue(state: SimState) -> _Queue:
    queue = state.extra.get("mutaties")
    if not isinstance(queue, _Queue):
        queue = _Queue()
        state.extra["mutaties"] = queue
    return queue


def _mutate(state: SimState, soort: str, insz: str) -> etree._Element | None:
    person = state.persons.get(insz)
    if person is None or soort not in _CODES:
        return None
    today = date.today()
    n = etree.Element("Notificatie")
    sub(n, "Referte", str(uuid.uuid4()))
    sub(n, "Type", _CODES[soort])
    sub(n, "Datum", today.isoformat())
    sub(n, "INSZ", insz)
    if soort == "verhuisd":
        person.straat, person.huisnummer = "Nieuwstraat", str(int(person.huisnummer) + 1)
    elif soort == "overleden":
        person.overlijdensdatum = today
    else:
        serial = int(insz[6:9])
        nieuw = insz_for(person.geboortedatum, serial + 2 if serial < 995 else serial - 2)
        state.persons[nieuw] = TestPerson(**{**vars(person), "insz": nieuw})
        sub(n, "NieuwINSZ", nieuw)
        person = state.persons[nieuw]
    n.append(persoon_element(person))
    _queue(state).pending.append(n)
    return n


def geef_mutaties(state: SimState, call: Call) -> Answer:
    """GeefPersoonMutatiesNotificaties: acknowledge the previous batch, send what is queued."""
    queue = _queue(state)
    ack = call.inhoud.findtext("Criteria/OntvangstReferte")
    if ack:
        if ack not in queue.sent:
            return Answer(
                antwoord_uitzonderingen=[uitzondering("30014", "MAGDA", "FOUT", "Ongeldige ontvangstreferte")]
            )
        del queue.sent[ack]
    if not queue.pending:
        return Answer(
            antwoord_uitzonderingen=[uitzondering("30016", "MAGDA", "FOUT", "Geen verdere gegevens beschikbaar")]
        )
    referte = str(uuid.uuid4())
    batch, queue.pending = queue.pending, []
    queue.sent[referte] = batch
    ontvangst = etree.Element("OntvangstReferte")
    ontvangst.text = referte
    lijst = etree.Element("Notificaties")
    for n in batch:
        lijst.append(n)
    return Answer(inhoud=[ontvangst, lijst])


def _routes(state: SimState) -> list[Route]:
    async def add_mutation(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            soort, insz = str(body["type"]), str(body["insz"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"detail": '{"type": ..., "insz": ...} verwacht'}, status_code=400)
        if soort not in _CODES:
            return JSONResponse({"detail": f"type moet een van {', '.join(_CODES)} zijn"}, status_code=400)
        n = _mutate(state, soort, insz)
        if n is None:
            return JSONResponse({"detail": "onbekende persoon"}, status_code=404)
        return JSONResponse({"referte": n.findtext("Referte"), "nieuwInsz": n.findtext("NieuwINSZ")}, status_code=201)

    return [Route("/_control/mutaties", add_mutation, methods=["POST"])]


def _reset(state: SimState) -> None:
    state.extra["mutaties"] = _Queue()


def create_app(
    *, seed: int = 20251124, latency: float = 0.0, timeout_seconds: float = 5.0, huge_bytes: int = 8 * 1024 * 1024
) -> Starlette:
    """The Rijksregister simulator app; its state is ``app.state.sim``."""
    return create_simulator(
        served=("GeefPersoon", "RegistreerInschrijving", "RegistreerUitschrijving", "GeefPersoonMutatiesNotificaties"),
        require_registration=("GeefPersoon",),
        extra_handlers={"GeefPersoonMutatiesNotificaties": geef_mutaties},
        extra_routes=_routes,
        on_reset=_reset,
        seed=seed,
        latency=latency,
        timeout_seconds=timeout_seconds,
        huge_bytes=huge_bytes,
    )


def server(host: str = "127.0.0.1", port: int = 8703, **options: Any) -> uvicorn.Server:
    """A uvicorn server for this simulator, to run beside the hub in one event loop."""
    return make_server(create_app(**options), host, port)


def serve(host: str = "127.0.0.1", port: int = 8703) -> None:
    """Serve the simulator with uvicorn until interrupted."""
    serve_app(create_app(), host, port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Rijksregister-simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8703)
    args = parser.parse_args()
    serve(args.host, args.port)
