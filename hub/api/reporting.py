"""Aggregated reporting: ``GET /v1/rapportage`` (JSON, or CSV with ``Accept: text/csv`` or
``formaat=csv``) and the page ``GET /rapportage`` with a server-rendered SVG chart.

Only suppressed aggregates leave here (hub/reporting.py): no person can be
read or recomputed from them, so the page needs no login. Because counting
decrypts payloads, a report is kept for a minute per question (an anonymous
caller cannot make the hub decrypt everything in a loop).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import StringConstraints

from hub.api.citizen import PAGE_CSP, templates
from hub.api.deps import get_hub
from hub.api.problems import from_error
from hub.errors import HubError
from hub.reporting import DIMENSIONS, Dimension, Report, Reporter, chart

router = APIRouter(tags=["rapportage"])

_MONTH = "^[0-9]{4}-[0-9]{2}$"
_TYPE_NAME = "^[a-z][a-z0-9-]{1,62}$"  # a message type name, as in the envelope
CACHE_SECONDS = 60.0


def _report(request: Request, dimension: Dimension, first: str, last: str, types: Iterable[str] = ()) -> Report:
    cache: dict[tuple[object, ...], tuple[float, Report]] | None = getattr(request.app.state, "reports", None)
    if cache is None:
        cache = request.app.state.reports = {}
    key = (dimension, first, last, tuple(sorted(types)))
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    result = Reporter(get_hub(request)).report(dimension, first, last, key[3])
    if len(cache) > 256:
        cache.clear()
    cache[key] = (now + CACHE_SECONDS, result)
    return result


def _default_range() -> tuple[str, str]:
    now = datetime.now(UTC)
    y, m = (now.year, now.month - 11) if now.month > 11 else (now.year - 1, now.month + 1)
    return f"{y:04d}-{m:02d}", now.strftime("%Y-%m")


@router.get(
    "/v1/rapportage",
    summary="Geaggregeerde aantallen, kleine cellen onderdrukt (k=5)",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    openapi_extra={"security": []},  # aggregates only, public by design: say so in the contract
)
async def report(
    request: Request,
    dimensie: Annotated[Dimension, Query(description="leeftijd, geslacht of regio")] = "leeftijd",
    van: Annotated[str | None, Query(pattern=_MONTH, description="Eerste maand JJJJ-MM")] = None,
    tot: Annotated[str | None, Query(pattern=_MONTH, description="Laatste maand JJJJ-MM")] = None,
    berichttype: Annotated[
        list[Annotated[str, StringConstraints(pattern=_TYPE_NAME)]] | None,
        Query(description="Alleen deze berichttypes", max_length=64),
    ] = None,
    formaat: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
) -> Response:
    """Counts per month and message type by one dimension; a cell under 5 is null ("<5")."""
    first, last = _default_range()
    result = _report(request, dimensie, van or first, tot or last, berichttype or ())
    if formaat == "csv" or (formaat is None and "text/csv" in request.headers.get("accept", "")):
        return Response(
            result.as_csv().encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="rapportage-{result.dimension}.csv"'},
        )
    return Response(orjson.dumps(result.as_json()), media_type="application/json")


@router.get("/rapportage", include_in_schema=False)
async def page(
    request: Request,
    dimensie: str = "leeftijd",
    van: str | None = None,
    tot: str | None = None,
) -> Response:
    first, last = _default_range()
    try:
        dimension: Dimension = next((d for d in DIMENSIONS if d == dimensie), "leeftijd")
        result = _report(request, dimension, van or first, tot or last)
    except HubError as exc:
        return from_error(exc, instance=request.url.path)
    body = (
        templates()
        .get_template("rapportage/pagina.html")
        .render(report=result, chart=chart(result), dimensies=DIMENSIONS)
    )
    return Response(body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": PAGE_CSP})
