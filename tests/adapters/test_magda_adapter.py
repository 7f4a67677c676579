"""MagdaAdapter against the MAGDA simulator over real HTTP: every code path of GeefPersoon."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from adapters.magda import MagdaAdapter
from hub.errors import ConfigurationError, PartnerError, PartnerRejected, PartnerUnavailable, ValidationFailed
from hub.identifiers import BSN, INSZ
from hub.ports import Adapter, LookupRequest
from tests.adapters.conftest import Control, LiveServer, fast_config

pytestmark = pytest.mark.anyio


def ask(insz: str, kind: str = "persoon") -> LookupRequest:
    return LookupRequest(kind=kind, subject=INSZ(insz), purpose="inburgering-opvolging", requester="agii")


def make(server: LiveServer, http: httpx.AsyncClient, **extra: Any) -> MagdaAdapter:
    return MagdaAdapter("magda", fast_config(server.soap_url, **extra), http)


async def test_adapter_honours_the_port(magda_server: LiveServer, http: httpx.AsyncClient) -> None:
    adapter = make(magda_server, http)
    assert isinstance(adapter, Adapter)
    assert adapter.capabilities.lookups == frozenset({"persoon"})
    assert not adapter.capabilities.deliver


async def test_person_lookup_registers_first_then_answers(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    insz = magda_server.sim.personas.regular
    person = magda_server.sim.persons[insz]
    adapter = make(magda_server, http)

    result = await adapter.lookup(ask(insz))

    assert result.found
    assert result.warnings == ()
    assert result.data["insz"] == insz
    assert result.data["voornamen"] == person.voornamen
    assert result.data["achternaam"] == person.achternaam
    assert result.data["geboortedatum"] == person.geboortedatum.isoformat()
    assert result.data["geslacht"] == {"1": "M", "2": "V"}[person.geslacht]
    assert result.data["nationaliteit"] == {"code": person.nationaliteit[0], "omschrijving": person.nationaliteit[1]}
    adres = result.data["adres"]
    assert isinstance(adres, dict)
    assert (adres["straat"], adres["huisnummer"], adres["postcode"], adres["gemeente"]) == (
        person.straat,
        person.huisnummer,
        person.postcode,
        person.gemeente,
    )
    state = await magda_control.state()
    assert state["requests"] == {"GeefPersoon": 2, "RegistreerInschrijving": 1}

    await adapter.lookup(ask(insz))
    state = await magda_control.state()
    assert state["requests"] == {"GeefPersoon": 3, "RegistreerInschrijving": 1}


async def test_unknown_person_is_not_found(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    insz = magda_server.sim.personas.unknown
    result = await make(magda_server, http).lookup(ask(insz))
    assert not result.found
    assert result.data == {"insz": insz}
    assert result.warnings[0].startswith("30001")


async def test_replaced_insz_surfaces_the_new_insz(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    personas = magda_server.sim.personas
    result = await make(magda_server, http).lookup(ask(personas.replaced))
    assert result.found
    assert result.data["nieuwInsz"] == personas.replacement
    assert result.data["insz"] == personas.replacement
    assert result.data["inszStatus"] == "vervangen"
    assert any(w.startswith("30004") for w in result.warnings)


async def test_cancelled_insz_is_not_found_with_its_status(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    insz = magda_server.sim.personas.cancelled
    result = await make(magda_server, http).lookup(ask(insz))
    assert not result.found
    assert result.data == {"insz": insz, "inszStatus": "geannuleerd"}
    assert result.warnings[0].startswith("30002")


async def test_partial_answer_is_data_plus_warning(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    result = await make(magda_server, http).lookup(ask(magda_server.sim.personas.partial))
    assert result.found
    assert result.data["voornamen"]
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("30042 (MAGDA, INFORMATIE)")


async def test_99996_once_is_retried_and_answered(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    insz = magda_server.sim.personas.regular
    await magda_control.fault("99996", insz=insz, times=1, service="GeefPersoon")
    result = await make(magda_server, http).lookup(ask(insz))
    assert result.found
    state = await magda_control.state()
    # 99996, retry -> 40003, register, ask again -> answer
    assert state["requests"] == {"GeefPersoon": 3, "RegistreerInschrijving": 1}


@pytest.mark.parametrize("fault", ["99996", "bron_99996"])
async def test_source_unavailable_fails_clearly_after_retries(
    fault: str, magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    insz = magda_server.sim.personas.regular
    await magda_control.fault(fault, insz=insz)
    with pytest.raises(PartnerUnavailable) as caught:
        await make(magda_server, http, retries=2).lookup(ask(insz))
    assert "99996" in caught.value.detail
    assert "3 poging" in caught.value.detail
    assert (await magda_control.state())["requests"] == {"GeefPersoon": 3}


async def test_still_not_registered_after_registration_is_rejected(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    insz = magda_server.sim.personas.regular
    await magda_control.fault("40003", insz=insz, service="GeefPersoon")
    with pytest.raises(PartnerRejected, match="40003"):
        await make(magda_server, http).lookup(ask(insz))
    assert (await magda_control.state())["requests"] == {"GeefPersoon": 2, "RegistreerInschrijving": 1}


@pytest.mark.parametrize(
    ("fault", "error", "attempts"),
    [
        ("soap_fault", PartnerUnavailable, 3),
        ("http_503", PartnerUnavailable, 3),
        ("soap_client_fault", PartnerRejected, 1),
        ("repliek_fout", PartnerRejected, 1),
    ],
)
async def test_transient_errors_are_retried_permanent_ones_are_not(
    fault: str,
    error: type[PartnerError],
    attempts: int,
    magda_server: LiveServer,
    magda_control: Control,
    http: httpx.AsyncClient,
) -> None:
    await magda_control.fault(fault)
    with pytest.raises(error):
        await make(magda_server, http, retries=2).lookup(ask(magda_server.sim.personas.regular))
    assert (await magda_control.state())["requests"] == {"GeefPersoon": attempts}


async def test_read_timeout_is_transient(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    await magda_control.fault("timeout")
    with pytest.raises(PartnerUnavailable, match="tijdslimiet"):
        await make(magda_server, http, read_timeout=0.2, retries=0).lookup(ask(magda_server.sim.personas.regular))


@pytest.mark.parametrize("fault", ["malformed", "truncated", "xxe", "huge", "wrong_namespace"])
async def test_hostile_reply_is_a_clear_partner_error_without_reply_text(
    fault: str, magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    await magda_control.fault(fault)
    with pytest.raises(PartnerError) as caught:
        await make(magda_server, http).lookup(ask(magda_server.sim.personas.regular))
    assert not isinstance(caught.value, PartnerUnavailable)
    message = caught.value.detail
    assert message.startswith("magda: ")
    for leaked in ("<", "passwd", "file:", "urn:example", "aaaa", "Repliek>"):
        assert leaked not in message
    assert (await magda_control.state())["requests"] == {"GeefPersoon": 1}


async def test_circuit_breaker_opens_and_stops_calls(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    await magda_control.fault("http_503")
    adapter = make(magda_server, http, retries=0, breaker_threshold=2, breaker_reset=60.0)
    for _ in range(2):
        with pytest.raises(PartnerUnavailable, match="HTTP 503"):
            await adapter.lookup(ask(magda_server.sim.personas.regular))
    with pytest.raises(PartnerUnavailable, match="circuit breaker"):
        await adapter.lookup(ask(magda_server.sim.personas.regular))
    assert (await magda_control.state())["requests"] == {"GeefPersoon": 2}
    health = await adapter.health()
    assert not health.ok
    assert health.facts["breaker"] == "open"
    assert health.facts["breakerOpenedTimes"] == 1


async def test_circuit_breaker_half_opens_and_closes_on_success(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    await magda_control.fault("http_503", times=1)
    adapter = make(magda_server, http, retries=0, breaker_threshold=1, breaker_reset=0.05)
    with pytest.raises(PartnerUnavailable):
        await adapter.lookup(ask(magda_server.sim.personas.regular))
    assert adapter.client.resilience.breaker.state == "open"
    await asyncio.sleep(0.06)
    assert adapter.client.resilience.breaker.state == "half_open"
    assert (await adapter.lookup(ask(magda_server.sim.personas.regular))).found
    assert adapter.client.resilience.breaker.state == "closed"


async def test_concurrency_cap_limits_calls_in_flight(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    await magda_control.latency(0.05)
    adapter = make(magda_server, http, max_concurrency=2, read_timeout=5.0)
    people = list(magda_server.sim.persons)[:6]
    results = await asyncio.gather(*(adapter.lookup(ask(p)) for p in people))
    assert all(r.found for r in results)
    assert (await magda_control.state())["maxInFlight"] == 2


async def test_calls_beyond_the_cap_are_shed_after_the_queue_timeout(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    await magda_control.latency(0.3)
    adapter = make(magda_server, http, max_concurrency=1, queue_timeout=0.05, read_timeout=5.0)
    people = list(magda_server.sim.persons)[:2]
    results = await asyncio.gather(*(adapter.lookup(ask(p)) for p in people), return_exceptions=True)
    shed = [r for r in results if isinstance(r, PartnerUnavailable)]
    assert len(shed) == 1
    assert "gelijktijdige vragen" in shed[0].detail
    assert (await magda_control.state())["maxInFlight"] == 1


async def test_health_answers_with_facts(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    health = await make(magda_server, http).health()
    assert health.ok
    assert health.facts["breaker"] == "closed"
    assert health.facts["maxConcurrency"] == 8
    assert health.facts["url"] == magda_server.soap_url
    assert (await magda_control.state())["requests"] == {}


async def test_health_of_an_unreachable_partner_is_not_ok(http: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = MagdaAdapter("magda", fast_config(f"http://127.0.0.1:{port}/soap"), http)
    health = await adapter.health()
    assert not health.ok
    with pytest.raises(PartnerUnavailable, match="niet bereikbaar"):
        await adapter.lookup(ask("85073003328"))


async def test_unregister_withdraws_the_registration(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    adapter = make(magda_server, http)
    request = ask(magda_server.sim.personas.regular)
    await adapter.lookup(request)
    await adapter.unregister(request)
    with pytest.raises(PartnerRejected, match="niet geslaagd"):
        await adapter.unregister(request)


async def test_bad_subjects_and_kinds_are_refused_before_any_call(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    adapter = make(magda_server, http)
    with pytest.raises(ValidationFailed, match="BSN"):
        await adapter.lookup(LookupRequest(kind="persoon", subject=BSN("111222333"), purpose="p", requester="r"))
    with pytest.raises(ValidationFailed, match="opvraging"):
        await adapter.lookup(ask(magda_server.sim.personas.regular, kind="inschrijvingen"))
    with pytest.raises(ValidationFailed, match="testpersoon"):
        await adapter.lookup(ask("85650505496"))
    assert (await magda_control.state())["requests"] == {}


async def test_magda_test_persons_are_accepted_when_configured(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    result = await make(magda_server, http, insz_test_numbers=True).lookup(ask("85650505496"))
    assert not result.found


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"url": "ftp://x"},
        {"url": "http://x", "read_timeout": "soon"},
        {"url": "http://x", "insz_test_numbers": "yes"},
        {"url": "http://x", "afzender": "me"},
        {"url": "http://x", "max_concurrency": 0},
    ],
)
async def test_bad_configuration_is_refused(config: dict[str, Any], http: httpx.AsyncClient) -> None:
    with pytest.raises(ConfigurationError):
        MagdaAdapter("magda", config, http)


async def test_closed_adapter_reports_unhealthy_and_refuses_calls(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    adapter = make(magda_server, http)
    await adapter.aclose()
    assert not (await adapter.health()).ok
    with pytest.raises(PartnerUnavailable, match="gesloten"):
        await adapter.lookup(ask(magda_server.sim.personas.regular))
    assert (await magda_control.state())["requests"] == {}


async def test_probe_shows_the_endpoint_speaks_soap_without_consulting_anyone(
    magda_server: LiveServer, magda_control: Control, http: httpx.AsyncClient
) -> None:
    status = await make(magda_server, http).probe()
    assert status.ok, status.detail
    assert status.facts["reachable"] is True
    assert status.facts["soap"] is True
    assert status.facts["tls"] == "niet gebruikt"
    assert status.facts["httpStatus"] == 500  # the SOAP fault for an empty Body
    assert (await magda_control.state())["requests"] == {}


async def test_probe_of_a_non_soap_endpoint_says_so(magda_server: LiveServer, http: httpx.AsyncClient) -> None:
    status = await MagdaAdapter("magda", fast_config(magda_server.base_url + "/_control/state"), http).probe()
    assert not status.ok
    assert status.facts["reachable"] is True
    assert status.facts["soap"] is False


async def test_probe_of_an_unreachable_endpoint(http: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status = await MagdaAdapter("magda", fast_config(f"http://127.0.0.1:{port}/soap"), http).probe()
    assert not status.ok
    assert status.facts["reachable"] is False
