"""GET /v1/schemas: the information model, published so partners can build against it.

- ``GET /v1/schemas`` lists every message type with its versions and links;
- ``GET /v1/schemas/{type}/{version}`` serves the type's XSD (self-contained: every
  include inlined) as ``application/xml``, or its JSON Schema (generated from the
  same XSD) with ``Accept: application/schema+json`` or ``?format=json``.

Unknown types or versions are an RFC 9457 problem (404) that names what exists.
The InfoModel comes from ``request.app.state.hub.infomodel``.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from hub.api.problems import problem
from hub.errors import UnknownMessageType
from hub.infomodel import InfoModel, MessageType

router = APIRouter(tags=["informatiemodel"])

SCHEMA_JSON = "application/schema+json"
_PROBLEM_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "Onbekend berichttype of versie",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


def _infomodel(request: Request) -> InfoModel:
    model: InfoModel = request.app.state.hub.infomodel
    return model


def _links(request: Request, mtype: MessageType) -> dict[str, str]:
    path = request.url_for("schema_document", type=mtype.name, version=mtype.version).path
    return {"xsd": path, "jsonSchema": f"{path}?format=json"}


def _version_entry(request: Request, mtype: MessageType) -> dict[str, Any]:
    return {
        "version": mtype.version,
        "namespace": mtype.namespace,
        "element": mtype.element,
        "status": mtype.status,
        "deprecation": mtype.deprecation.isoformat() if mtype.deprecation else None,
        "downgrade": mtype.downgrade,
        "links": _links(request, mtype),
    }


# the information model is public: partners build against it before they have credentials
_PUBLIC: dict[str, Any] = {"security": []}
_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "schemas": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "flow": {"type": "string"},
                    "senders": {"type": "array", "items": {"type": "string"}},
                    "receivers": {"type": "array", "items": {"type": "string"}},
                    "subjectField": {"type": ["string", "null"]},
                    "versions": {"type": "array", "items": {"type": "object"}},
                },
            },
        }
    },
}


@router.get(
    "/v1/schemas",
    summary="Berichttypes en hun versies",
    name="schema_list",
    openapi_extra=_PUBLIC,
    responses={200: {"description": "De berichttypes", "content": {"application/json": {"schema": _LIST_SCHEMA}}}},
)
async def list_schemas(request: Request) -> Response:
    """Every message type with its title, flow, partner roles and versions, each with links."""
    model = _infomodel(request)
    by_name: dict[str, list[MessageType]] = {}
    for mtype in model.types():
        by_name.setdefault(mtype.name, []).append(mtype)
    items = []
    for name, versions in by_name.items():
        latest = versions[-1]
        items.append(
            {
                "type": name,
                "title": latest.title,
                "flow": latest.flow,
                "senders": list(latest.senders),
                "receivers": list(latest.receivers),
                "subjectField": latest.subject_field or None,
                "versions": [_version_entry(request, v) for v in versions],
            }
        )
    return Response(orjson.dumps({"schemas": items}), media_type="application/json")


@router.get(
    "/v1/schemas/{type}/{version}",
    summary="XSD of JSON Schema van één berichttype",
    name="schema_document",
    openapi_extra=_PUBLIC,
    responses={
        200: {
            "description": "Het schema",
            "content": {
                "application/xml": {"schema": {"type": "string", "description": "XSD, includes ingevoegd"}},
                SCHEMA_JSON: {"schema": {"type": "object", "description": "JSON Schema (draft 2020-12)"}},
            },
        },
        **_PROBLEM_RESPONSE,
    },
)
async def get_schema(
    request: Request,
    type: str,
    version: str,
    format: Annotated[Literal["xsd", "json"] | None, Query(description="xsd (standaard) of json")] = None,
) -> Response:
    """The XSD (default) or the JSON Schema of one type at one version."""
    model = _infomodel(request)
    try:
        mtype = model.get(type, version)
    except UnknownMessageType as exc:
        return problem(
            status=404,
            title=exc.title,
            detail=exc.detail,
            code=exc.code,
            instance=request.url.path,
            invalid_params=exc.invalid_params,
        )
    accept = request.headers.get("accept", "")
    wants_json = format == "json" or (format is None and (SCHEMA_JSON in accept or "application/json" in accept))
    if wants_json:
        body = orjson.dumps(model.json_schema(mtype), option=orjson.OPT_INDENT_2)
        media_type = SCHEMA_JSON
    else:
        body = model.standalone_xsd(mtype)
        media_type = "application/xml"
    headers = {
        "ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        "Cache-Control": "public, max-age=3600",
        "Vary": "Accept",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
