"""GET /health: database, keys, configuration, transport, writer, TLS (X-Road checks the same)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text

from hub.api.deps import get_hub
from hub.api.tls import server_certificate
from hub.crypto import key_id
from hub.errors import HubError
from hub.revocation import revocation_for
from hub.settings import TLSSettings

router = APIRouter(tags=["beheer"])


@router.get("/health", summary="Gezondheid van de hub", include_in_schema=False)
async def health(request: Request) -> Response:
    hub = get_hub(request)
    checks: dict[str, dict[str, Any]] = {}
    try:
        with hub.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "backend": hub.engine.dialect.name}
    except Exception as exc:  # noqa: BLE001 - health reports any failure instead of raising
        checks["database"] = {"ok": False, "error": exc.__class__.__name__}
    checks["keys"] = {
        "ok": len(hub.settings.payload_key_bytes) == 32 and len(hub.settings.audit_key_bytes) == 32,
        "payloadKeyId": key_id(hub.settings.payload_key_bytes),
        "development": hub.settings.env == "development",
    }
    checks["configuration"] = {
        "ok": True,
        "messageTypes": len(hub.infomodel.types()),
        "protocols": len(hub.protocols.all()),
        "routingRules": len(hub.router.rules),
        "partners": len(hub.partners.all()),
    }
    checks["writer"] = {"ok": hub.writer.is_running(), "batches": hub.writer.batches, "units": hub.writer.units}
    if hub.writer.lock is not None:
        # SQLite: batches that waited for another process's writer, and that gave up (hub.store.writelock)
        checks["writer"]["waitedForLock"] = hub.writer.lock.contended
        checks["writer"]["lockTimeouts"] = hub.writer.lock.timeouts
    checks["transport"] = transport_check(request, depth=True)
    if hub.settings.tls.enabled and hub.settings.tls.certfile is not None:
        tls_check = _revocation_check(hub.settings.tls) or {"ok": True}
        # the hub's own server certificate: its days left (an expired one shuts out every partner)
        server = server_certificate(hub.settings.tls.certfile)
        tls_check["ok"] = tls_check["ok"] and server["ok"]
        tls_check["server"] = server
        checks["tls"] = tls_check
    if hub.outbound is not None and (outbound := hub.outbound.status()) is not None:
        # the outgoing profiles: client certificates' days left and the partners' CRLs
        tls = checks.setdefault("tls", {"ok": True})
        tls["ok"] = tls["ok"] and outbound["ok"]
        tls["outbound"] = outbound
    ok = all(c["ok"] for c in checks.values())
    body = {
        "status": "up" if ok else "down",
        "checks": checks,
        "partners": await _partners(hub),
        "process": process_facts(request),
    }
    return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")


def _revocation_check(tls: TLSSettings) -> dict[str, Any] | None:
    """The CRLs partner certificates are checked against (None: no CRLs configured); an expired
    one refuses that CA's partners."""
    try:
        revocation = revocation_for(tls.crl_files, tls.ca_certs, tls.crl_refresh_seconds)
    except HubError as exc:  # the process was started without them (the server checks them at start)
        return {"ok": False, "revocationCheck": "crl", "error": str(exc)}
    return None if revocation is None else revocation.status()


def transport_check(request: Request, *, depth: bool = False) -> dict[str, Any]:
    """The transport's state; an API-only process (`knooppunt run --processes N`) has none by design:
    what it accepts waits in the outbox for the leader's relay, so that is healthy."""
    if getattr(request.app.state, "api_only", False):
        return {"ok": True, "name": "outbox", "relay": "leader"}
    transport = get_hub(request).transport
    check: dict[str, Any] = {
        "ok": transport is not None and transport.ready(),
        "name": transport.name if transport else None,
    }
    if depth:
        check["depth"] = transport.depth() if transport else None
    return check


def process_facts(request: Request) -> dict[str, Any]:
    """Which process answered (the leader or an API-only process) and what it accepted so far."""
    hub = get_hub(request)
    accepted = sum(
        int(sample.value)
        for metric in hub.metrics.accepted.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    return {
        "pid": os.getpid(),
        "role": "api" if getattr(request.app.state, "api_only", False) else "hub",
        "accepted": accepted,
    }


async def _partners(hub: Any) -> dict[str, Any]:
    """The links the hub has used so far, with their resilience state (circuit breaker, in-flight
    calls, retries). A partner that is down does not make the hub unhealthy: it is reported here."""

    async def one(partner_id: str, adapter: Any) -> tuple[str, dict[str, Any]]:
        try:
            status = await asyncio.wait_for(adapter.health(), timeout=2)
        except (TimeoutError, HubError) as exc:
            return partner_id, {"ok": False, "detail": exc.__class__.__name__}
        return partner_id, {"ok": status.ok, "detail": status.detail, **dict(status.facts)}

    adapters = dict(getattr(hub, "_adapters", {}))
    results = await asyncio.gather(*(one(pid, a) for pid, a in adapters.items()))
    return dict(results)
