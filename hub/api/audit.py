"""The DPO API: search the audit log, a person's report, exports, and the integrity proof.

Only DPO tokens open it (``knooppunt dpo add``); a partner token gets 403. National
numbers travel in POST bodies, never in URLs, and are hashed by the hub before
they touch the log. Every query is itself audited. The public key and the latest
signed checkpoint are public, so anyone can check an export offline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from hub import dpo
from hub.api.deps import bearer_token, get_hub, read_body
from hub.audit import AuditEvent
from hub.audit.checkpoint import CheckpointSigner, integrity_status, latest_checkpoint
from hub.audit.search import (
    AuditQuery,
    dpo_query_event,
    iter_search,
    search,
    subject_hash_of,
    subject_report,
    subject_report_html,
    to_csv,
    to_json,
)
from hub.errors import InvalidParam, NotFound, ValidationFailed
from hub.identifiers import IdentifierError, parse_subject
from hub.service import Hub
from hub.store.database import Tx

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_PROBLEM = {
    "description": "Probleem (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((400, 401, 403), _PROBLEM)


async def current_dpo(request: Request) -> dpo.Dpo:
    """The authenticated DPO (a partner token is refused with 403)."""
    hub = get_hub(request)
    token = bearer_token(request)
    return dpo.authenticate(hub.engine, token, partner_known=hub.partners.knows_token(token))


class Betrokkene(BaseModel):
    type: Literal["INSZ", "BSN"]
    id: str


class AuditZoek(BaseModel):
    """Every given field narrows the search (AND)."""

    subject: Betrokkene | None = Field(default=None, description="De persoon; de hub zoekt op de sleutelhash")
    partner: str | None = Field(default=None, description="Afzender of ontvanger")
    sender: str | None = None
    receiver: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    protocol: str | None = None
    messageType: str | None = None  # noqa: N815
    events: list[str] = Field(default_factory=list)
    status: str | None = None
    messageId: str | None = None  # noqa: N815
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = None


class PersoonsRapportVraag(BaseModel):
    subject: Betrokkene
    months: int = Field(default=12, ge=1, le=120)


def _signer(hub: Hub) -> CheckpointSigner:
    return CheckpointSigner.from_settings(hub.settings)


def _subject_hash(hub: Hub, subject: Betrokkene | None) -> tuple[str | None, str | None]:
    if subject is None:
        return None, None
    try:
        parsed = parse_subject(subject.type, subject.id, allow_test_numbers=hub.settings.insz_test_numbers)
    except IdentifierError as exc:
        raise ValidationFailed("ongeldige betrokkene", invalid_params=[InvalidParam("/subject/id", str(exc))]) from exc
    return subject.type, subject_hash_of(hub.hasher, subject.type, str(parsed))


async def _body(request: Request, model: type[Any]) -> Any:
    raw = await read_body(request, 65_536)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        params = [InvalidParam("/" + "/".join(str(p) for p in e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        raise ValidationFailed("de vraag is ongeldig", invalid_params=params) from exc


def _query(hub: Hub, q: AuditZoek) -> tuple[AuditQuery, str | None]:
    subject_type, subject_hash = _subject_hash(hub, q.subject)
    query = AuditQuery(
        subject_hash=subject_hash,
        partner=q.partner,
        sender=q.sender,
        receiver=q.receiver,
        since=q.since,
        until=q.until,
        protocol_id=q.protocol,
        message_type=q.messageType,
        events=tuple(q.events),
        status=q.status,
        message_id=q.messageId,
    )
    return query, subject_type


async def _audited(hub: Hub, event: AuditEvent) -> None:
    def unit(tx: Tx) -> None:
        tx.audit(event)

    await hub.writer.submit(unit)


def _json(body: Any, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), media_type=media_type)


@router.get(
    "/public-key", summary="De publieke sleutel van de ondertekende controlepunten", openapi_extra={"security": []}
)
async def public_key(request: Request) -> Response:
    """Ed25519, as PEM, raw base64 and signed-note verifier key."""
    return _json(_signer(get_hub(request)).public_key_document())


@router.get(
    "/checkpoint",
    summary="Het laatste ondertekende controlepunt",
    responses={404: _PROBLEM},
    openapi_extra={"security": []},
)
async def checkpoint(request: Request) -> Response:
    with get_hub(request).engine.connect() as conn:
        latest = latest_checkpoint(conn)
    if latest is None:
        raise NotFound("er is nog geen controlepunt ondertekend")
    return _json(latest.as_json())


@router.post(
    "/_zoek",
    summary="Zoek in het auditlog (DPO)",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuditZoek"}}},
        }
    },
)
async def zoek(request: Request, who: Annotated[dpo.Dpo, Depends(current_dpo)]) -> Response:
    """Search by person (hashed), partner, period, protocol, message type, outcome; cursor pagination."""
    hub = get_hub(request)
    q = await _body(request, AuditZoek)
    query, subject_type = _query(hub, q)
    with hub.engine.connect() as conn:
        page = search(conn, query, limit=q.limit, cursor=q.cursor)
    await _audited(hub, dpo_event(who, "search", query, subject_type, len(page.records)))
    return _json(page.as_json())


@router.post(
    "/_export",
    summary="Exporteer zoekresultaten als CSV of JSON (DPO)",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuditZoek"}}},
        }
    },
)
async def export(
    request: Request, who: Annotated[dpo.Dpo, Depends(current_dpo)], formaat: Literal["csv", "json"] = "csv"
) -> Response:
    """Every matching record; the CSV is safe against formula injection."""
    hub = get_hub(request)
    q = await _body(request, AuditZoek)
    query, subject_type = _query(hub, q)
    with hub.engine.connect() as conn:
        records = list(iter_search(conn, query))
    await _audited(hub, dpo_event(who, "export", query, subject_type, len(records)))
    if formaat == "json":
        return Response(to_json(records, query=query), media_type="application/json")
    return Response(
        to_csv(records),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.post(
    "/persoonsrapport",
    summary="Wie wisselde wat uit over deze persoon (DPO)",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PersoonsRapportVraag"}}},
        }
    },
)
async def persoonsrapport(
    request: Request, who: Annotated[dpo.Dpo, Depends(current_dpo)], formaat: Literal["json", "html"] = "json"
) -> Response:
    """Every exchange and consultation of the last months: who, what category, when, why."""
    hub = get_hub(request)
    q = await _body(request, PersoonsRapportVraag)
    subject_type, subject_hash = _subject_hash(hub, q.subject)
    purposes = {p.id: p.purpose for p in hub.protocols.all()}
    categories = {t.name: t.title for t in hub.infomodel.types()}
    with hub.engine.connect() as conn:
        report = subject_report(conn, subject_hash or "", months=q.months, purposes=purposes, categories=categories)
    await _audited(
        hub, dpo_event(who, "report", AuditQuery(subject_hash=subject_hash), subject_type, len(report.entries))
    )
    if formaat == "html":
        return Response(subject_report_html(report), media_type="text/html; charset=utf-8")
    return _json(report.as_json())


@router.get("/integriteit", summary="Staat van de hashketen en het laatste controlepunt (DPO)", responses=_ERRORS)
async def integriteit(request: Request, who: Annotated[dpo.Dpo, Depends(current_dpo)]) -> Response:
    hub = get_hub(request)
    with hub.engine.connect() as conn:
        status = integrity_status(conn, _signer(hub))
    await _audited(hub, dpo_event(who, "verify", None, None, None))
    return _json(status)


def dpo_event(
    who: dpo.Dpo, kind: str, query: AuditQuery | None, subject_type: str | None, results: int | None
) -> AuditEvent:
    return dpo_query_event(who.actor, kind, query=query, subject_type=subject_type, results=results)
