"""The simulators: their own valid test persons, their control endpoints, their SOAP front door."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from adapters._magda import request as rq
from adapters._magda.testdata import generate, insz_for
from adapters.discimus import simulator as discimus_simulator
from adapters.magda import simulator as magda_simulator
from adapters.rijksregister import simulator as rijksregister_simulator
from hub.identifiers import parse_insz
from tests.adapters.conftest import MAGDA_CONTRACTS, Control, LiveServer

pytestmark = pytest.mark.anyio


def test_generated_persons_have_valid_insz_and_are_not_sample_persons() -> None:
    persons, personas = generate()
    samples = {p.stem for p in (MAGDA_CONTRACTS / "responses").rglob("*.xml")}
    assert len(persons) >= 12
    for insz, person in persons.items():
        assert parse_insz(insz).value == insz
        assert insz not in samples
        assert int(insz[6:9]) % 2 == (1 if person.geslacht == "1" else 0)
    assert personas.unknown not in persons
    assert persons[personas.replaced].nieuw_insz == personas.replacement
    assert generate()[0].keys() == persons.keys()


def test_insz_for_births_from_2000_uses_the_2_prefix() -> None:
    insz = insz_for(date(2003, 4, 5), 12)
    assert insz.startswith("030405012")
    assert parse_insz(insz).value == insz


def test_each_partner_simulator_exposes_create_app_and_serve() -> None:
    for module in (magda_simulator, discimus_simulator, rijksregister_simulator):
        assert callable(module.serve)
        assert module.create_app().state.sim.served
        server = module.server("127.0.0.1", 0, latency=0.1)
        assert server.config.host == "127.0.0.1"
        assert server.config.app.state.sim.latency == 0.1


@pytest.mark.parametrize(
    "body",
    [{"fault": "kapot"}, {"fault": "99996", "times": 0}, {"fault": "99996", "service": "GeefAlles"}, ["99996"]],
)
async def test_control_refuses_bad_fault_requests(body: Any, magda_control: Control) -> None:
    resp = await magda_control.http.post(magda_control.server.base_url + "/_control/faults", json=body)
    assert resp.status_code == 400


async def test_control_state_lists_personas_and_faults(magda_server: LiveServer, magda_control: Control) -> None:
    await magda_control.fault("99996", insz=magda_server.sim.personas.regular, times=2, service="GeefPersoon")
    await magda_control.latency(0.01)
    state = await magda_control.state()
    assert state["personas"]["regular"] == magda_server.sim.personas.regular
    assert state["faults"] == {
        magda_server.sim.personas.regular: {"fault": "99996", "remaining": 2, "service": "GeefPersoon"}
    }
    assert state["latency"] == 0.01
    assert "GeefHistoriekInschrijving" in state["served"]
    await magda_control.reset()
    assert (await magda_control.state())["faults"] == {}


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><GeefAlles/></e:Body></e:Envelope>',
    ],
)
async def test_soap_endpoint_answers_bad_requests_with_a_client_fault(
    body: bytes, magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    resp = await http.post(magda_server.soap_url, content=body, headers={"Content-Type": "text/xml"})
    assert resp.status_code == 500
    assert b"soapenv:Client" in resp.content
    assert b"passwd" not in resp.content


async def test_discimus_simulator_does_not_serve_geefpersoon(
    discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    built = rq.geef_persoon(rq.Afzender("x", "1"), discimus_server.sim.personas.regular)
    resp = await http.post(discimus_server.soap_url, content=built.body, headers={"Content-Type": "text/xml"})
    assert resp.status_code == 500
    assert b"niet aangeboden" in resp.content
