"""The hub's WUS endpoint (Digikoppeling SOAP) for partners that send in over their own link.

``POST /wus/{partner}``: the partner's adapter verifies the signed message
(signature, timestamp, OIN, WS-Addressing), the hub stores it exactly as a
REST or SOAP message (validation, protocol, routing, audit), and the adapter
answers with a signed receipt or the specific fault. No bearer token: the
signature is the authentication. Reconciliation questions (Afstemming) are
answered with the hub's counts of the period.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import and_, func, select

from hub.api.deps import get_hub, read_body
from hub.errors import HubError, NotFound
from hub.ports import InboundLink
from hub.store.tables import deliveries, messages

router = APIRouter(tags=["wus"], include_in_schema=False)


@router.post("/wus/{partner_id}")
async def wus_inbound(partner_id: str, request: Request) -> Response:
    hub = get_hub(request)
    partner = hub.partners.get(partner_id)
    adapter = hub.adapter_for(partner) if partner is not None else None
    if partner is None or adapter is None or not callable(getattr(adapter, "handle", None)):
        raise NotFound(f"geen WUS-koppeling voor {partner_id}")
    link: InboundLink = adapter  # type: ignore[assignment]
    body = await read_body(request, hub.settings.max_body_bytes)

    def is_known(message_id: uuid.UUID) -> bool:
        with hub.engine.connect() as conn:
            found = conn.execute(
                select(messages.c.id).where(and_(messages.c.id == str(message_id), messages.c.sender == partner.id))
            ).first()
        return found is not None

    audited: set[int] = set()

    async def accept(inbound: Any) -> tuple[bool, str | None]:
        try:
            accepted = await hub.accept(partner, inbound.message, channel="wus")
        except HubError as exc:
            audited.add(id(exc))  # hub.accept already wrote the "refused" record
            raise
        return accepted.duplicate, accepted.message_id

    async def counts(period: str) -> tuple[Mapping[str, str], Mapping[str, str]]:
        like = f"{period}%"
        with hub.engine.connect() as conn:
            received = conn.execute(
                select(messages.c.id, messages.c.type).where(
                    and_(
                        messages.c.sender == partner.id, func.cast(messages.c.created_at, messages.c.id.type).like(like)
                    )
                )
            ).all()
            sent = conn.execute(
                select(messages.c.id, messages.c.type)
                .join(deliveries, deliveries.c.message_id == messages.c.id)
                .where(
                    and_(
                        deliveries.c.receiver == partner.id,
                        deliveries.c.status == "delivered",
                        func.cast(messages.c.created_at, messages.c.id.type).like(like),
                    )
                )
            ).all()
        return {r.id: r.type for r in received}, {r.id: r.type for r in sent}

    async def refused(error: HubError) -> None:
        if id(error) not in audited:
            await hub.refuse_unparsed(partner, error, "wus")

    status, answer = await link.handle(body, is_known=is_known, accept=accept, counts=counts, refused=refused)
    return Response(answer, status_code=status, media_type="text/xml; charset=utf-8")
