"""REST: send a message, read its status, read the inbox."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hub.api.deps import current_partner, get_hub, read_body
from hub.auth import in_scope
from hub.dispatch import receipt_unit
from hub.errors import HubError, NotFound, UnsupportedMediaType
from hub.partners import Partner

router = APIRouter(prefix="/v1", tags=["berichten"])

_PROBLEM = {
    "description": "Probleem (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


class Subject(BaseModel):
    type: str = Field(pattern="^(INSZ|BSN)$", description="INSZ (BE) of BSN (NL)")
    id: str = Field(description="Het identificatienummer; gecontroleerd op controlegetal")


class MessageIn(BaseModel):
    """The JSON form of a message (the XML form: schemas/envelope/1.0/envelope.xsd)."""

    messageId: str = Field(description="UUID, door de afzender gekozen; idempotentiesleutel")  # noqa: N815
    type: str = Field(description="Berichttype, zie GET /v1/schemas")
    version: str = Field(description="Versie van het berichttype, bv. 1.0")
    sender: str | None = Field(default=None, description="Afzender; moet de aangemelde partner zijn")
    receivers: list[str] | None = Field(default=None, description="Ontvangers; leeg = routering kiest")
    subject: Subject
    purpose: str = Field(description="Het protocol (id) waaronder het bericht reist")
    conversationId: str | None = None  # noqa: N815
    traceparent: str | None = None
    createdAt: str | None = None  # noqa: N815
    payload: dict[str, Any]


class AcceptedOut(BaseModel):
    messageId: str  # noqa: N815
    status: str
    receivers: list[str]
    receivedAt: str  # noqa: N815
    forwarding: dict[str, Any] | None = Field(
        default=None,
        description="Persoonsgebonden berichten: doorgestuurd naar wie, niet doorgestuurd waarom (aantallen)",
    )


class DeliveryOut(BaseModel):
    receiver: str
    status: str = Field(description="pending | retrying | in_inbox (wacht in de portaal-inbox) | delivered | dead")
    attempts: int
    deliveredAt: str | None  # noqa: N815
    nextAttemptAt: str | None  # noqa: N815
    lastError: str | None  # noqa: N815


class StatusOut(BaseModel):
    messageId: str  # noqa: N815
    type: str
    version: str
    sender: str
    purpose: str
    receivedAt: str  # noqa: N815
    deliveries: list[DeliveryOut]


class InboxItem(BaseModel):
    cursor: int
    deliveryStatus: str  # noqa: N815
    messageId: str  # noqa: N815
    type: str
    version: str
    sender: str
    receivers: list[str]
    subject: Subject
    purpose: str
    receivedAt: str  # noqa: N815
    payload: dict[str, Any]


class InboxOut(BaseModel):
    items: list[InboxItem]
    next: int | None = Field(description="Cursor voor de volgende pagina (after=...), of null")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


@router.post(
    "/berichten",
    status_code=202,
    summary="Verstuur een bericht",
    response_model=AcceptedOut,
    responses={400: _PROBLEM, 401: _PROBLEM, 403: _PROBLEM, 409: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/MessageIn"}},
                "application/xml": {"schema": {"type": "string", "description": "Envelope, zie envelope.xsd"}},
            },
        }
    },
)
async def send_message(request: Request, caller: Annotated[Partner, Depends(current_partner)]) -> Response:
    """Validate, authorize, route and store a message. Durable before the 202; a resend of the
    same messageId gets the same answer and is never stored or delivered twice."""
    return await _send(request, caller)


async def send_message_direct(request: Request) -> Response:
    """The same operation as a plain Starlette endpoint, matched before the FastAPI route.

    Sending is the hub's hot path: FastAPI's per-request dependency solving and endpoint
    wrapping cost more than the hub's own protocol check. The FastAPI route above stays
    for the OpenAPI document; this one runs the same dependency and code by hand.
    """
    return await _send(request, await current_partner(request))


async def _send(request: Request, caller: Partner) -> Response:
    hub = get_hub(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        body = await read_body(request, hub.settings.max_body_bytes)
        if content_type in ("application/json",):
            message, pointer, channel = hub.parse_json(body), "json", "rest-json"
        elif content_type in ("application/xml", "text/xml"):
            message, pointer, channel = hub.parse_xml(body), "xpath", "rest-xml"
        else:
            raise UnsupportedMediaType("stuur application/json of application/xml")
    except HubError as exc:
        await hub.refuse_unparsed(caller, exc, "rest")
        raise
    accepted = await hub.accept(caller, message, channel=channel, pointer=pointer)
    return _json(accepted.as_json(), 202, {"Location": f"/v1/berichten/{accepted.message_id}"})


@router.get(
    "/berichten/{message_id}",
    summary="Status van een bericht en zijn afleveringen",
    response_model=StatusOut,
    responses={401: _PROBLEM, 404: _PROBLEM},
)
async def message_status(
    message_id: str, request: Request, caller: Annotated[Partner, Depends(current_partner)]
) -> Response:
    """For the sender (all deliveries) or a receiver (its own delivery) only."""
    status = get_hub(request).message_status(caller, message_id)
    if not in_scope(caller, status["purpose"]):  # an OAuth2 token sees only its protocols
        raise NotFound(f"bericht {message_id} bestaat niet")
    return _json(status)


@router.get(
    "/inbox",
    summary="Berichten voor de aangemelde partner",
    response_model=InboxOut,
    responses={401: _PROBLEM},
)
async def inbox(
    request: Request,
    caller: Annotated[Partner, Depends(current_partner)],
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Cursor: geef berichten na deze")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    type: Annotated[str | None, Query(description="Alleen dit berichttype", pattern="^[a-z][a-z0-9-]{1,62}$")] = None,
) -> Response:
    """Messages addressed to the caller, oldest first, each minimised to the caller's protocol.
    Fetching a message that waits in the inbox (plateau 1) records its receipt: it becomes delivered."""
    hub = get_hub(request)
    page = hub.inbox(caller, after=after, limit=limit, message_type=type)
    waiting = [item["cursor"] for item in page["items"] if item["deliveryStatus"] == "in_inbox"]
    if waiting:
        await hub.writer.submit(receipt_unit(caller.id, waiting, actor=f"api:{caller.id}", how="fetched"))
        for item in page["items"]:
            if item["deliveryStatus"] == "in_inbox":
                item["deliveryStatus"] = "delivered"
    page["items"] = [item for item in page["items"] if in_scope(caller, item["purpose"])]
    return _json(page)
