"""RFC 9457 problem+json, the only shape an error leaves the REST API in."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from hub.errors import HubError, InvalidParam, RateLimited

PROBLEM = "application/problem+json"


def problem_body(
    *,
    status: int,
    title: str,
    detail: str,
    code: str,
    instance: str | None = None,
    invalid_params: list[InvalidParam] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:knooppunt:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if invalid_params:
        body["invalidParams"] = [{"name": p.name, "reason": p.reason, "code": p.code} for p in invalid_params]
    return body


def problem(
    *,
    status: int,
    title: str,
    detail: str,
    code: str,
    instance: str | None = None,
    invalid_params: list[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = problem_body(
        status=status, title=title, detail=detail, code=code, instance=instance, invalid_params=invalid_params
    )
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


def from_error(exc: HubError, instance: str | None = None) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="knooppunt"'} if exc.status == 401 else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        code=exc.code,
        instance=instance,
        invalid_params=exc.invalid_params,
        headers=headers,
    )
