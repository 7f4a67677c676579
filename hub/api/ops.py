"""GET /ready (may this process take traffic?) and GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from hub.api.deps import get_hub
from hub.api.health import transport_check
from hub.metrics import scrape_gauges

router = APIRouter(tags=["beheer"])


@router.get("/ready", summary="Klaar voor verkeer", include_in_schema=False)
async def ready(request: Request) -> Response:
    """200 when the database answers, the writer runs and the transport carries jobs (broker confirmed)."""
    hub = get_hub(request)
    checks: dict[str, dict[str, Any]] = {}

    def ping() -> None:
        with hub.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), timeout=hub.settings.store.statement_timeout_ms / 1000)
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure instead of raising
        checks["database"] = {"ok": False, "error": exc.__class__.__name__}
    checks["writer"] = {"ok": hub.writer.is_running()}
    checks["transport"] = transport_check(request)
    ok = all(c["ok"] for c in checks.values())
    body = {"status": "ready" if ok else "not_ready", "checks": checks}
    return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")


@router.get("/metrics", summary="Prometheus-metrieken", include_in_schema=False)
async def metrics(request: Request) -> Response:
    hub = get_hub(request)
    await asyncio.to_thread(scrape_gauges, hub.metrics, hub.engine, hub.transport)
    return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)
