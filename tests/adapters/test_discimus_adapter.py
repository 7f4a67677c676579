"""DiscimusAdapter against the Discimus simulator over real HTTP: enrolments, NT2, partial answers."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from adapters.discimus import DiscimusAdapter
from hub.errors import PartnerError, PartnerUnavailable, ValidationFailed
from hub.identifiers import INSZ
from hub.ports import LookupRequest
from tests.adapters.conftest import Control, LiveServer, fast_config

pytestmark = pytest.mark.anyio


def ask(insz: str, **params: str) -> LookupRequest:
    return LookupRequest(
        kind="inschrijvingen", subject=INSZ(insz), purpose="inburgering-opvolging", requester="agii", params=params
    )


def make(server: LiveServer, http: httpx.AsyncClient, **extra: Any) -> DiscimusAdapter:
    return DiscimusAdapter("discimus", fast_config(server.soap_url, **extra), http)


def _enrolments(result_data: Any) -> list[dict[str, Any]]:
    lijst = result_data["inschrijvingen"]
    assert isinstance(lijst, list)
    return lijst


async def test_enrolments_include_nt2_with_result(
    discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    insz = discimus_server.sim.personas.nt2
    expected = discimus_server.sim.persons[insz].enrolments[0]
    result = await make(discimus_server, http).lookup(
        ask(insz, van=(expected.begin - timedelta(days=30)).isoformat(), tot=expected.begin.isoformat())
    )
    assert result.found
    [item] = _enrolments(result.data)
    assert item["bron"] == "VWO"
    assert item["soort"] == "volwassenenonderwijs"
    assert item["nt2"] is True
    assert item["opleiding"] == {"code": expected.opleiding_code, "naam": expected.opleiding_naam}
    assert item["resultaat"]["code"] == expected.resultaat
    assert item["instelling"]["gemeente"] == expected.gemeente
    assert item["datumInschrijving"] == expected.begin.isoformat()
    # the other sources found nothing: notices, not a failure
    assert sorted(w.split(" ")[0] for w in result.warnings) == ["30101", "30101"]
    assert result.data["insz"] == insz


async def test_reception_class_for_newcomers_is_flagged(
    discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    insz = discimus_server.sim.personas.regular
    result = await make(discimus_server, http).lookup(ask(insz, van="2000-01-01", tot=date.today().isoformat()))
    lp = [i for i in _enrolments(result.data) if i["bron"] == "LP"]
    assert len(lp) == 1
    assert lp[0]["anderstaligeNieuwkomer"] is True
    assert lp[0]["nt2"] is False
    assert {i["bron"] for i in _enrolments(result.data)} == {"LP", "VWO"}


async def test_period_and_sources_are_sent_and_respected(
    discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    insz = discimus_server.sim.personas.regular
    adapter = make(discimus_server, http)
    only_lp = await adapter.lookup(ask(insz, van="2000-01-01", tot=date.today().isoformat(), bronnen="LP"))
    assert {i["bron"] for i in _enrolments(only_lp.data)} == {"LP"}
    too_early = await adapter.lookup(ask(insz, van="2000-01-01", tot="2001-01-01"))
    assert not too_early.found
    assert too_early.data["inschrijvingen"] == []
    assert too_early.data["van"] == "2000-01-01"
    assert too_early.data["tot"] == "2001-01-01"


async def test_person_without_enrolments_is_not_found(
    discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    result = await make(discimus_server, http).lookup(ask(discimus_server.sim.personas.no_enrolments))
    assert not result.found
    assert all(w.startswith("30101") for w in result.warnings)


@pytest.mark.parametrize(
    "params",
    [{"van": "gisteren"}, {"van": "2024-01-02", "tot": "2024-01-01"}, {"bronnen": "LP,XYZ"}],
)
async def test_bad_parameters_are_refused_before_any_call(
    params: dict[str, str], discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValidationFailed):
        await make(discimus_server, http).lookup(ask(discimus_server.sim.personas.regular, **params))
    assert (await discimus_control.state())["requests"] == {}


async def test_99996_is_retried_then_fails_clearly(
    discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    await discimus_control.fault("99996")
    with pytest.raises(PartnerUnavailable, match="99996"):
        await make(discimus_server, http, retries=1).lookup(ask(discimus_server.sim.personas.nt2))
    assert (await discimus_control.state())["requests"] == {"GeefHistoriekInschrijving": 2}


@pytest.mark.parametrize("fault", ["malformed", "xxe", "huge", "wrong_namespace", "truncated"])
async def test_hostile_replies_are_partner_errors(
    fault: str, discimus_server: LiveServer, discimus_control: Control, http: httpx.AsyncClient
) -> None:
    await discimus_control.fault(fault)
    with pytest.raises(PartnerError) as caught:
        await make(discimus_server, http).lookup(ask(discimus_server.sim.personas.nt2))
    assert "<" not in caught.value.detail
