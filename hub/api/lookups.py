"""Synchronous lookups through the hub: the INSZ travels in the body, never in the URL."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from hub.api.deps import current_partner, get_hub, read_body
from hub.auth import check_scope
from hub.errors import InvalidParam, MalformedInput, ValidationFailed
from hub.partners import Partner

router = APIRouter(prefix="/v1", tags=["opvragingen"])

_PROBLEM = {
    "description": "Probleem (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((400, 401, 403, 404, 502, 503), _PROBLEM)


class PersoonZoek(BaseModel):
    """Wie opvragen, en onder welk protocol."""

    insz: str = Field(description="INSZ van de persoon (in de body, nooit in de URL)")
    purpose: str = Field(description="Het protocol (id) dat deze opvraging toestaat")


class InschrijvingenZoek(PersoonZoek):
    van: str | None = Field(default=None, description="Begin van de periode (JJJJ-MM-DD)")
    tot: str | None = Field(default=None, description="Einde van de periode (JJJJ-MM-DD)")


M = TypeVar("M", bound=PersoonZoek)


class LookupOut(BaseModel):
    found: bool
    data: dict[str, Any] = Field(description="Het antwoord, beperkt tot de velden van het protocol")
    waarschuwingen: list[str] = Field(description="Meldingen bij een gedeeltelijk antwoord")
    bron: str = Field(description="De partner die antwoordde")


async def _body(request: Request, model: type[M]) -> M:
    raw = await read_body(request, 16_384)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        params = [InvalidParam("/" + "/".join(str(p) for p in e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        if not raw.strip():
            raise MalformedInput("de body ontbreekt") from exc
        raise ValidationFailed("de zoekvraag is ongeldig", invalid_params=params) from exc


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.post(
    "/personen/_zoek",
    summary="Zoek een persoon op INSZ (MAGDA GeefPersoon)",
    response_model=LookupOut,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PersoonZoek"}}},
        }
    },
)
async def zoek_persoon(request: Request, caller: Annotated[Partner, Depends(current_partner)]) -> Response:
    """Checked against the protocol named in `purpose`; the answer holds only the fields it allows;
    the consultation is audited with its purpose."""
    q = await _body(request, PersoonZoek)
    check_scope(caller, q.purpose)  # an OAuth2 token names the protocols it may consult under
    return _json(await get_hub(request).lookup(caller.ref, "persoon", q.insz, purpose=q.purpose))


@router.post(
    "/inschrijvingen/_zoek",
    summary="Onderwijsinschrijvingen van een persoon (MAGDA GeefHistoriekInschrijving)",
    response_model=LookupOut,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InschrijvingenZoek"}}},
        }
    },
)
async def zoek_inschrijvingen(request: Request, caller: Annotated[Partner, Depends(current_partner)]) -> Response:
    """Enrolments (LP, HO, VWO incl. NT2, INT) in a period, as the protocol allows."""
    q = await _body(request, InschrijvingenZoek)
    check_scope(caller, q.purpose)
    params = {k: v for k, v in (("van", q.van), ("tot", q.tot)) if v}
    return _json(await get_hub(request).lookup(caller.ref, "inschrijvingen", q.insz, purpose=q.purpose, params=params))


# The lookups as plain Starlette endpoints, matched before the FastAPI routes above (which stay
# for the OpenAPI document): a synchronous lookup is latency, and FastAPI's dependency solving
# and endpoint wrapping were a fifth of the event loop's time per lookup. Same dependency, same code.
async def zoek_persoon_direct(request: Request) -> Response:
    return await zoek_persoon(request, await current_partner(request))


async def zoek_inschrijvingen_direct(request: Request) -> Response:
    return await zoek_inschrijvingen(request, await current_partner(request))
