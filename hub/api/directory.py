"""REST: register and deregister in the reference directory (verwijzingsrepertorium).

Personal numbers travel in the body, never in the URL (NLGov API Design
Rules), so searching and deregistering are POSTs on ``_zoek`` and
``_verwijder``. A partner only ever registers, sees and ends its own
follow-ups.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hub.api.deps import current_partner, get_hub
from hub.api.messages import _PROBLEM, Subject, _json
from hub.partners import Partner

router = APIRouter(prefix="/v1", tags=["verwijzingsrepertorium"])

_CAPACITY = Field(
    pattern="^[a-z][a-z0-9-]{1,62}$",
    description="De hoedanigheid waarin de partner de persoon volgt, bv. woongemeente, trajectbegeleiding",
)


class InschrijvingIn(BaseModel):
    """Follow a person: from now (or ``begin``) until ``einde`` (open if empty)."""

    subject: Subject
    hoedanigheid: str = _CAPACITY
    purpose: str | None = Field(
        default=None, description="Het protocol (id); leeg = het protocol dat deze hoedanigheid toestaat"
    )
    begin: date | None = None
    einde: date | None = None


class UitschrijvingIn(BaseModel):
    """Stop following a person (one capacity, or all of the caller's if empty)."""

    subject: Subject
    hoedanigheid: str | None = Field(default=None, pattern="^[a-z][a-z0-9-]{1,62}$")
    einde: date | None = Field(default=None, description="Laatste dag van de opvolging; leeg = gisteren")


class ZoekIn(BaseModel):
    subject: Subject


class InschrijvingOut(BaseModel):
    inschrijvingId: int  # noqa: N815
    partner: str
    hoedanigheid: str
    protocol: str
    begin: date
    einde: date | None
    beeindigd: bool
    nieuw: bool | None = None


class InschrijvingenOut(BaseModel):
    items: list[InschrijvingOut]


@router.post(
    "/repertorium/inschrijvingen",
    status_code=201,
    summary="Schrijf in: volg een persoon in een hoedanigheid",
    response_model=InschrijvingOut,
    responses={200: {"description": "Bestaande inschrijving bijgewerkt"}, 401: _PROBLEM, 403: _PROBLEM, 409: _PROBLEM},
)
async def register(
    body: InschrijvingIn, request: Request, caller: Annotated[Partner, Depends(current_partner)]
) -> Response:
    """Checked against a protocol that allows the capacity for the caller; audited ("subscribed")."""
    registration = await get_hub(request).directory.register(
        caller,
        subject_type=body.subject.type,
        subject_id=body.subject.id,
        capacity=body.hoedanigheid,
        purpose=body.purpose,
        valid_from=body.begin,
        valid_until=body.einde,
        channel="rest",
    )
    return _json(registration.as_json(), 201 if registration.created else 200)


@router.post(
    "/repertorium/inschrijvingen/_verwijder",
    summary="Schrijf uit: volg een persoon niet langer",
    response_model=InschrijvingenOut,
    responses={401: _PROBLEM, 404: _PROBLEM},
)
async def deregister(
    body: UitschrijvingIn, request: Request, caller: Annotated[Partner, Depends(current_partner)]
) -> Response:
    """Ends the caller's own follow-ups of the person; audited ("unsubscribed")."""
    ended = await get_hub(request).directory.deregister(
        caller,
        subject_type=body.subject.type,
        subject_id=body.subject.id,
        capacity=body.hoedanigheid,
        valid_until=body.einde,
        channel="rest",
    )
    return _json({"items": [s.as_json() for s in ended]})


@router.post(
    "/repertorium/inschrijvingen/_zoek",
    summary="Mijn inschrijvingen voor een persoon",
    response_model=InschrijvingenOut,
    responses={401: _PROBLEM},
)
async def search(body: ZoekIn, request: Request, caller: Annotated[Partner, Depends(current_partner)]) -> Response:
    """Only the caller's own follow-ups: who else follows a person is not the caller's business."""
    subs = get_hub(request).directory.subscriptions(body.subject.type, body.subject.id, partner_id=caller.id)
    return _json({"items": [s.as_json() for s in subs]})
