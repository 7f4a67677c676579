"""DPO pages in the portal: search the audit log, export, and see the integrity proof.

A DPO signs in with the DPO token (``knooppunt dpo add``), never a partner's
account; the session is a short-lived cookie signed with a key derived from the
audit HMAC key. Searches are POSTed (a national number never sits in a URL),
hashed by the hub, and every search or export is itself audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hub import dpo as dpo_accounts
from hub.audit import AuditEvent
from hub.audit.checkpoint import CheckpointSigner, integrity_status
from hub.audit.search import AuditQuery, dpo_query_event, iter_search, search, subject_hash_of, to_csv, to_json
from hub.errors import HubError
from hub.identifiers import IdentifierError, parse_subject
from hub.portal.routes import _headers, page, redirect
from hub.service import Hub
from hub.store.database import Tx

router = APIRouter(prefix="/portaal/dpo", include_in_schema=False)
SESSION = "kp_dpo"
CSRF = "kp_dpo_csrf"
LIFETIME = 30 * 60


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _key(hub: Hub) -> bytes:
    return hashlib.sha256(hub.settings.audit_key_bytes + b"|dpo-portal-session").digest()


def _sign(hub: Hub, value: str) -> str:
    return hmac.new(_key(hub), value.encode(), hashlib.sha256).hexdigest()


def _who(request: Request) -> dpo_accounts.Dpo | None:
    hub = _hub(request)
    raw = request.cookies.get(SESSION, "")
    parts = raw.split(".")
    if len(parts) != 3 or not hmac.compare_digest(_sign(hub, f"{parts[0]}.{parts[1]}"), parts[2]):
        return None
    if not parts[1].isdigit() or int(parts[1]) < time.time():
        return None
    from sqlalchemy import select

    from hub.store.tables import dpo_accounts as table

    with hub.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == parts[0])).first()
    if row is None or not row.active:
        return None
    return dpo_accounts.Dpo(row.id, row.name, row.organisation)


def _csrf(request: Request) -> str:
    return request.cookies.get(CSRF) or secrets.token_urlsafe(24)


def _with_csrf(request: Request, response: Response, token: str) -> Response:
    secure = request.url.scheme == "https"
    response.set_cookie(CSRF, token, httponly=True, samesite="strict", secure=secure, path="/portaal/dpo")
    return response


def _csrf_ok(request: Request, given: Any) -> bool:
    expected = request.cookies.get(CSRF, "")
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected, given)


@router.get("")
@router.get("/")
async def start(request: Request) -> Response:
    who = _who(request)
    token = _csrf(request)
    if who is None:
        return _with_csrf(request, page(request, "dpo/aanmelden.html", {"csrf": token}), token)
    return _with_csrf(request, _search_page(request, who, token, {}, None), token)


@router.post("/aanmelden")
async def sign_in(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
    token = _csrf(request)
    if not _csrf_ok(request, form.get("csrf")):
        return _with_csrf(
            request,
            page(request, "dpo/aanmelden.html", {"csrf": token, "message": "Het formulier is verlopen."}, 403),
            token,
        )
    hub = _hub(request)
    try:
        who = dpo_accounts.authenticate(hub.engine, str(form.get("token", "")), partner_known=False)
    except HubError:
        context = {"csrf": token, "message": "Onbekend of ingetrokken DPO-token."}
        return _with_csrf(request, page(request, "dpo/aanmelden.html", context, 401), token)
    expires = str(int(time.time()) + LIFETIME)
    value = f"{who.id}.{expires}"
    response = redirect("/portaal/dpo")
    response.set_cookie(
        SESSION,
        f"{value}.{_sign(hub, value)}",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/portaal/dpo",
        max_age=LIFETIME,
    )
    return response


def _search_page(
    request: Request,
    who: dpo_accounts.Dpo,
    token: str,
    q: dict[str, Any],
    records: list[Any] | None,
    *,
    more: bool = False,
    message: str = "",
    status: int = 200,
) -> Response:
    hub = _hub(request)
    with hub.engine.connect() as conn:
        integrity = integrity_status(conn, CheckpointSigner.from_settings(hub.settings))
    context = {
        "csrf": token,
        "dpo": who,
        "q": q,
        "records": records,
        "more": more,
        "message": message,
        "integrity": integrity,
    }
    return page(request, "dpo/zoeken.html", context, status)


def _date(value: str, end: bool) -> datetime | None:
    if not value:
        return None
    day = datetime.strptime(value, "%Y-%m-%d").date()
    return datetime.combine(day, dtime.max if end else dtime.min, tzinfo=UTC)


@router.post("/zoeken")
async def find(request: Request) -> Response:
    who = _who(request)
    token = _csrf(request)
    if who is None:
        return redirect("/portaal/dpo")
    form = await request.form(max_files=0, max_fields=12, max_part_size=1024)
    q = {
        k: str(form.get(k, "")).strip()
        for k in ("soort", "nummer", "partner", "protocol", "berichttype", "van", "tot", "actie")
    }
    if not _csrf_ok(request, form.get("csrf")):
        return _search_page(request, who, token, q, None, message="Het formulier is verlopen.", status=403)
    hub = _hub(request)
    subject_hash = subject_type = None
    try:
        if q["nummer"]:
            parsed = parse_subject(q["soort"] or "BSN", q["nummer"], allow_test_numbers=hub.settings.insz_test_numbers)
            subject_type = q["soort"] or "BSN"
            subject_hash = subject_hash_of(hub.hasher, subject_type, str(parsed))
        query = AuditQuery(
            subject_hash=subject_hash,
            partner=q["partner"] or None,
            protocol_id=q["protocol"] or None,
            message_type=q["berichttype"] or None,
            since=_date(q["van"], False),
            until=_date(q["tot"], True),
        )
    except (IdentifierError, ValueError) as exc:
        return _search_page(request, who, token, q, None, message=f"Ongeldige zoekvraag: {exc}", status=400)
    q["nummer"] = ""  # never echo the number back into the page
    kind = "export" if q["actie"] in ("csv", "json") else "search"
    with hub.engine.connect() as conn:
        if kind == "export":
            records = list(iter_search(conn, query))
        else:
            page_ = search(conn, query, limit=200)
            records, more = page_.records, page_.next_cursor is not None
    event: AuditEvent = dpo_query_event(who.actor, kind, query=query, subject_type=subject_type, results=len(records))

    def unit(tx: Tx) -> None:
        tx.audit(event)

    await hub.writer.submit(unit)
    if q["actie"] == "csv":
        return _headers(
            Response(
                to_csv(records),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
            )
        )
    if q["actie"] == "json":
        return _headers(
            Response(
                to_json(records, query=query),
                media_type="application/json",
                headers={"Content-Disposition": 'attachment; filename="audit.json"'},
            )
        )
    rows = [r.as_json() for r in records]
    return _search_page(request, who, token, q, rows, more=more)
