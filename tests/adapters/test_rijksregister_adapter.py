"""RijksregisterAdapter against its simulator: person lookups and mutation notifications as events."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from adapters.rijksregister import PersoonMutatie, RijksregisterAdapter
from hub.errors import PartnerError, PartnerRejected, PartnerUnavailable
from hub.identifiers import INSZ
from hub.ports import LookupRequest
from tests.adapters.conftest import Control, LiveServer, fast_config

pytestmark = pytest.mark.anyio


def make(server: LiveServer, http: httpx.AsyncClient, **extra: Any) -> RijksregisterAdapter:
    return RijksregisterAdapter("rijksregister", fast_config(server.soap_url, **extra), http)


async def mutate(control: Control, soort: str, insz: str) -> dict[str, Any]:
    resp = await control.http.post(control.server.base_url + "/_control/mutaties", json={"type": soort, "insz": insz})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_person_lookup_through_the_register(
    rijksregister_server: LiveServer, rijksregister_control: Control, http: httpx.AsyncClient
) -> None:
    insz = rijksregister_server.sim.personas.regular
    adapter = make(rijksregister_server, http)
    assert adapter.capabilities.notifications
    result = await adapter.lookup(
        LookupRequest(kind="persoon", subject=INSZ(insz), purpose="inburgering-opvolging", requester="agii")
    )
    assert result.found
    assert result.data["insz"] == insz
    assert result.data["bron"] == "RR"
    assert (await rijksregister_control.state())["requests"] == {"GeefPersoon": 2, "RegistreerInschrijving": 1}


async def test_mutations_become_events_and_are_acknowledged(
    rijksregister_server: LiveServer, rijksregister_control: Control, http: httpx.AsyncClient
) -> None:
    persons = list(rijksregister_server.sim.persons)
    moved, died, renumbered = persons[0], persons[1], persons[2]
    await mutate(rijksregister_control, "verhuisd", moved)
    await mutate(rijksregister_control, "overleden", died)
    new = (await mutate(rijksregister_control, "insz_gewijzigd", renumbered))["nieuwInsz"]
    adapter = make(rijksregister_server, http)

    batch = await adapter.fetch_mutaties()

    assert [m.type for m in batch.mutaties] == ["verhuisd", "overleden", "insz_gewijzigd"]
    verhuisd, overleden, gewijzigd = batch.mutaties
    assert verhuisd.insz == moved
    assert verhuisd.nieuw_adres is not None
    assert verhuisd.nieuw_adres["straat"] == "Nieuwstraat"
    assert overleden == PersoonMutatie(
        type="overleden", insz=died, datum=date.today().isoformat(), referte=overleden.referte
    )
    assert gewijzigd.insz == renumbered
    assert gewijzigd.nieuw_insz == new != renumbered
    assert gewijzigd.to_json() == {
        "type": "insz_gewijzigd",
        "insz": renumbered,
        "datum": date.today().isoformat(),
        "referte": gewijzigd.referte,
        "nieuwInsz": new,
    }
    assert batch.ontvangst_referte

    after = await adapter.fetch_mutaties(batch.ontvangst_referte)
    assert after.exhausted
    assert after.warnings
    assert after.warnings[0].startswith("30016")


async def test_unknown_receipt_reference_is_rejected(
    rijksregister_server: LiveServer, rijksregister_control: Control, http: httpx.AsyncClient
) -> None:
    with pytest.raises(PartnerRejected, match="30014"):
        await make(rijksregister_server, http).fetch_mutaties("bestaat-niet")


async def test_mutation_fetch_is_retried_on_99996(
    rijksregister_server: LiveServer, rijksregister_control: Control, http: httpx.AsyncClient
) -> None:
    await rijksregister_control.fault("99996", times=1)
    batch = await make(rijksregister_server, http).fetch_mutaties()
    assert batch.exhausted
    await rijksregister_control.fault("soap_fault")
    with pytest.raises(PartnerUnavailable):
        await make(rijksregister_server, http, retries=1).fetch_mutaties()


@pytest.mark.parametrize("fault", ["xxe", "truncated", "wrong_namespace"])
async def test_hostile_mutation_replies_are_partner_errors(
    fault: str, rijksregister_server: LiveServer, rijksregister_control: Control, http: httpx.AsyncClient
) -> None:
    await rijksregister_control.fault(fault)
    with pytest.raises(PartnerError) as caught:
        await make(rijksregister_server, http).fetch_mutaties()
    assert not isinstance(caught.value, PartnerUnavailable)
