"""The portal's pages under ``/portaal``: plain server-rendered HTML, no JavaScript.

Security per request: a session cookie (HttpOnly, SameSite=Strict, Secure on
https) naming a server-side session; a CSRF token in every form (the
session's, or a double-submit cookie before login); uploads capped while they
stream, with explicit multipart limits; a strict CSP without scripts;
``no-store`` on every page (the API middleware adds it). A user only ever
reads its own organisation's data: every query filters on its partner id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import insert, select, update
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from hub.dispatch import receipt_unit
from hub.errors import HubError, MalformedInput, NotFound
from hub.partners import Partner
from hub.portal import accounts, inbox
from hub.portal.accounts import Session
from hub.portal.columns import model_example_rows
from hub.portal.upload import (
    Problem,
    Row,
    UploadRefused,
    read_csv,
    read_xml_batch,
    send_rows,
    sendable_types,
    sniff_kind,
    type_columns,
)
from hub.service import Hub
from hub.store.database import Tx
from hub.store.tables import portal_handled, portal_uploads

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/portaal", include_in_schema=False)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "kp_sessie"
LOGIN_CSRF_COOKIE = "kp_login_csrf"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STALE_UPLOAD = timedelta(hours=1)


@cache
def templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(HERE / "templates"))


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or _hub(request).settings.public_url.startswith("https")


def _headers(response: Response) -> Response:
    response.headers["content-security-policy"] = CSP
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    return response


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    response = templates().TemplateResponse(request, name, context, status_code=status)
    return _headers(response)


def redirect(url: str) -> Response:
    return _headers(RedirectResponse(url, status_code=303))


def _session(request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    idle = timedelta(minutes=_hub(request).settings.portal.session_idle_minutes)
    return accounts.load_session(_hub(request).engine, token, idle=idle)


async def _logged_in(request: Request) -> tuple[Session, Partner] | None:
    """The fully logged-in session and its organisation; keeps the session alive while it is used."""
    session = _session(request)
    if session is None or not session.second_factor_done:
        return None
    hub = _hub(request)
    idle = timedelta(minutes=hub.settings.portal.session_idle_minutes)
    if datetime.now(UTC) - session.last_seen_at > min(timedelta(minutes=1), idle / 4):
        await hub.writer.submit(accounts.touch_session(session))
    partner = hub.partners.get(session.user.partner_id)
    if partner is None:
        hub.reload_partners()
        partner = hub.partners.get(session.user.partner_id)
    if partner is None or not partner.active:
        return None
    return session, partner


def _csrf_ok(expected: str, given: Any) -> bool:
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def _base(session: Session, partner: Partner, **extra: Any) -> dict[str, Any]:
    return {"user": session.user, "partner": partner, "csrf": session.csrf_token, **extra}


def _error_page(request: Request, session: Session, partner: Partner, status: int, message: str) -> Response:
    return page(request, "fout.html", _base(session, partner, status=status, message=message), status)


# -- logging in and out ------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def root(request: Request) -> Response:
    return redirect("/portaal/start" if await _logged_in(request) else "/portaal/inloggen")


@router.get("/portal.css")
async def stylesheet() -> Response:
    css = (HERE / "static" / "portal.css").read_bytes()
    return Response(css, media_type="text/css", headers={"cache-control": "public, max-age=3600"})


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = page(request, "inloggen.html", {"csrf": token, "error": error}, status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/portaal"
    )
    return response


@router.get("/inloggen")
async def login_form(request: Request) -> Response:
    if await _logged_in(request):
        return redirect("/portaal/start")
    return _login_page(request)


@router.post("/inloggen")
async def login(request: Request) -> Response:
    hub = _hub(request)
    form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
    if not _csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get("csrf")):
        return _login_page(request, "Uw formulier was verlopen. Probeer opnieuw.", 400)
    username = str(form.get("gebruikersnaam") or "").strip().lower()[:254]
    password = str(form.get("wachtwoord") or "")[:1024]
    user = accounts.find_user(hub.engine, username) if username else None
    generic = "Gebruikersnaam of wachtwoord klopt niet."
    if user is not None and accounts.locked(user):
        await hub.writer.submit(accounts.failed_login(username, user, reason="locked"))
        return _login_page(
            request,
            "Dit account is tijdelijk geblokkeerd na te veel mislukte pogingen. Probeer het later opnieuw.",
            403,
        )
    ok = await asyncio.to_thread(accounts.password_ok, user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        locked = await hub.writer.submit(
            accounts.failed_login(username, user, reason="inactive" if user and ok else "password")
        )
        if locked:
            return _login_page(request, "Te veel mislukte pogingen: dit account is 15 minuten geblokkeerd.", 403)
        return _login_page(request, generic, 401)
    needs_totp = user.totp_secret is not None or accounts.requires_totp(hub.engine, user.partner_id)
    if needs_totp and user.totp_secret is None:
        await hub.writer.submit(accounts.failed_login(username, user, reason="totp_not_set_up"))
        return _login_page(
            request,
            "Uw organisatie vraagt een tweede factor, maar voor uw account is er nog geen ingesteld. "
            "Vraag uw beheerder om er een in te stellen.",
            403,
        )
    lifetime = timedelta(hours=hub.settings.portal.session_hours)
    token, unit = accounts.start_session(user, second_factor_done=not needs_totp, lifetime=lifetime)
    await hub.writer.submit(unit)
    response = redirect("/portaal/tweede-stap" if needs_totp else "/portaal/start")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/portaal",
        max_age=int(lifetime.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/portaal")
    return response


@router.get("/tweede-stap")
async def second_factor_form(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return redirect("/portaal/inloggen")
    if session.second_factor_done:
        return redirect("/portaal/start")
    return page(request, "tweede-stap.html", {"csrf": session.csrf_token, "error": None})


@router.post("/tweede-stap")
async def second_factor(request: Request) -> Response:
    hub = _hub(request)
    session = _session(request)
    if session is None:
        return redirect("/portaal/inloggen")
    form = await request.form(max_files=0, max_fields=3, max_part_size=1024)
    if not _csrf_ok(session.csrf_token, form.get("csrf")):
        return page(request, "tweede-stap.html", {"csrf": session.csrf_token, "error": "Formulier verlopen."}, 400)
    user = accounts.find_user(hub.engine, session.user.username)
    if user is None or accounts.locked(user) or user.totp_secret is None:
        await hub.writer.submit(accounts.end_session(session))
        return _login_page(request, "Dit account is tijdelijk geblokkeerd. Probeer het later opnieuw.", 403)
    secret = accounts.unwrap_totp(hub.keys.master, user.username, user.totp_secret)
    step = accounts.totp_step(secret, str(form.get("code") or ""))
    if step is None or not await hub.writer.submit(accounts.complete_second_factor(session, step)):
        reason = "totp" if step is None else "totp_replayed"
        locked = await hub.writer.submit(accounts.failed_login(user.username, user, reason=reason))
        if locked:
            await hub.writer.submit(accounts.end_session(session))
            return _login_page(request, "Te veel mislukte pogingen: dit account is 15 minuten geblokkeerd.", 403)
        return page(
            request,
            "tweede-stap.html",
            {"csrf": session.csrf_token, "error": "Die code klopt niet. Probeer opnieuw."},
            401,
        )
    return redirect("/portaal/start")


@router.post("/uitloggen")
async def logout(request: Request) -> Response:
    session = _session(request)
    if session is not None:
        form = await request.form(max_files=0, max_fields=3, max_part_size=1024)
        if _csrf_ok(session.csrf_token, form.get("csrf")):
            await _hub(request).writer.submit(accounts.end_session(session))
    response = redirect("/portaal/inloggen")
    response.delete_cookie(SESSION_COOKIE, path="/portaal")
    return response


# -- home ---------------------------------------------------------------------------------------


@router.get("/start")
async def home(request: Request) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    context = _base(session, partner, counts=inbox.counts(hub.engine, partner.id), types=sendable_types(hub, partner))
    return page(request, "start.html", context)


# -- templates and examples --------------------------------------------------------------------


def _type_of(hub: Hub, partner: Partner, name: str) -> Any:
    for mtype, protocol in sendable_types(hub, partner):
        if mtype.name == name:
            return mtype, protocol
    return None


@router.get("/sjablonen/{name}.csv")
async def template_csv(request: Request, name: str) -> Response:
    return await _csv_file(request, name, example=False)


@router.get("/voorbeelden/{name}.csv")
async def example_csv(request: Request, name: str) -> Response:
    return await _csv_file(request, name, example=True)


async def _csv_file(request: Request, name: str, *, example: bool) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    found = _type_of(hub, partner, name)
    if found is None:
        return _error_page(request, session, partner, 404, "Dit berichttype kan uw organisatie niet versturen.")
    columns = type_columns(hub, partner, found[0])
    header = [c.name for c in columns]
    examples = model_example_rows(hub.infomodel, found[0], columns, codes=partner.codes) if example else []
    rows = [[r.get(h, "") for h in header] for r in examples]
    filename = f"{'voorbeeld' if example else 'sjabloon'}-{found[0].name}.csv"
    return _headers(
        Response(
            inbox.write_csv(header, rows),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )
    )


# -- uploading ------------------------------------------------------------------------------------


@router.get("/versturen")
async def upload_form(request: Request) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    return _upload_page(request, session, partner)


def _upload_page(
    request: Request, session: Session, partner: Partner, error: str | None = None, status: int = 200
) -> Response:
    hub = _hub(request)
    types = [(mt, p, type_columns(hub, partner, mt)) for mt, p in sendable_types(hub, partner)]
    limits = hub.settings.portal
    context = _base(
        session,
        partner,
        types=types,
        error=error,
        max_mb=round(limits.max_upload_bytes / 1_048_576, 1),
        max_rows=limits.max_upload_rows,
    )
    return page(request, "versturen.html", context, status)


class _TooLarge(Exception):
    pass


def _capped(request: Request, limit: int) -> Request:
    """A request whose body stream stops (raises) past ``limit`` bytes, counted as it arrives."""
    seen = 0
    receive = request.receive

    async def counting() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return Request(request.scope, counting)


async def _drain(request: Request, cap: int) -> None:
    """Read (and drop) the rest of a refused body so the browser gets our answer, up to ``cap`` bytes."""
    total = 0
    while total < cap:
        message = await request.receive()
        if message["type"] != "http.request":
            return
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


@router.post("/versturen")
async def upload(request: Request) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    limits = hub.settings.portal
    too_big = (
        f"Het bestand is te groot: de grens is {round(limits.max_upload_bytes / 1_048_576, 1)} MB. "
        "Splits het in kleinere bestanden. Er is niets verstuurd."
    )
    declared = request.headers.get("content-length", "")
    overhead = 16_384  # the form's other fields and multipart headers
    capped = _capped(request, limits.max_upload_bytes + overhead)
    if declared.isdigit() and int(declared) > limits.max_upload_bytes + overhead:
        await _drain(request, 20 * limits.max_upload_bytes)
        return _upload_page(request, session, partner, too_big, 413)
    try:
        form = await capped.form(max_files=1, max_fields=4, max_part_size=4096)
    except _TooLarge:
        await _drain(request, 20 * limits.max_upload_bytes)
        return _upload_page(request, session, partner, too_big, 413)
    except StarletteHTTPException as exc:
        return _upload_page(request, session, partner, f"Het formulier is niet in orde: {exc.detail}", 400)
    try:
        if not _csrf_ok(session.csrf_token, form.get("csrf")):
            return _upload_page(request, session, partner, "Uw formulier was verlopen. Probeer opnieuw.", 400)
        file = form.get("bestand")
        if not isinstance(file, UploadFile) or not file.filename:
            return _upload_page(request, session, partner, "Kies een bestand om te versturen.", 400)
        data = await file.read()
        filename = Path(file.filename).name[:200]
    finally:
        await form.close()
    if len(data) > limits.max_upload_bytes:
        return _upload_page(request, session, partner, too_big, 413)
    if not data.strip():
        return _upload_page(request, session, partner, "Het bestand is leeg.", 400)
    type_name = str(form.get("berichttype") or "")
    upload_id = str(uuid.uuid4())
    kind = "?"
    try:
        kind = sniff_kind(data)
        if kind == "xml":
            rows = read_xml_batch(hub, partner, data, max_rows=limits.max_upload_rows)
        else:
            found = _type_of(hub, partner, type_name)
            if found is None:
                raise UploadRefused("Kies bij een CSV-bestand het berichttype dat erin staat.")
            rows = read_csv(data, found[0], type_columns(hub, partner, found[0]), max_rows=limits.max_upload_rows)
    except UploadRefused as exc:
        await hub.refuse_unparsed(partner, MalformedInput(exc.reason), "portal")
        await hub.writer.submit(
            _record_upload(upload_id, session, filename, data, kind, type_name or None, "refused", exc.reason)
        )
        return redirect(f"/portaal/uploads/{upload_id}")
    await hub.writer.submit(
        _record_upload(upload_id, session, filename, data, kind, type_name if kind == "csv" else None, "processing", "")
    )
    task = asyncio.create_task(_process(hub, partner, upload_id, rows))
    tasks: set[asyncio.Task[None]] = getattr(request.app.state, "portal_tasks", set())
    request.app.state.portal_tasks = tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    # a small file is done in a moment: show its report at once; a large one shows progress
    if limits.upload_wait_seconds:
        await asyncio.wait({task}, timeout=limits.upload_wait_seconds)
    return redirect(f"/portaal/uploads/{upload_id}")


def _record_upload(
    upload_id: str,
    session: Session,
    filename: str,
    data: bytes,
    kind: str,
    type_name: str | None,
    status: str,
    reason: str,
) -> Any:
    def unit(tx: Tx) -> None:
        tx.conn.execute(
            insert(portal_uploads).values(
                id=upload_id,
                partner_id=session.user.partner_id,
                user_id=session.user.id,
                filename=filename,
                file_sha256=hashlib.sha256(data).hexdigest(),
                kind=kind,
                message_type=type_name,
                status=status,
                rows_total=0,
                rows_sent=0,
                rows_duplicate=0,
                rows_failed=1 if status == "refused" else 0,
                report=[{"row": None, "status": "refused", "problems": [{"field": "", "reason": reason}]}]
                if reason
                else [],
                created_at=tx.now,
                finished_at=tx.now if status == "refused" else None,
            )
        )

    return unit


async def _process(hub: Hub, partner: Partner, upload_id: str, rows: list[Row]) -> None:
    total = len(rows)

    async def progress(done: int) -> None:
        def unit(tx: Tx) -> None:
            tx.conn.execute(
                update(portal_uploads).where(portal_uploads.c.id == upload_id).values(rows_total=total, rows_sent=done)
            )

        await hub.writer.submit(unit)

    try:
        await send_rows(hub, partner, rows, progress)
        status = "done"
    except Exception as exc:  # noqa: BLE001 - a background task's last stop: the upload must not stay "bezig"
        log.error("portal_upload_failed", upload=upload_id, error=exc.__class__.__name__)
        status = "failed"
        for r in rows:
            if r.status == "pending":
                r.status = "refused"
                r.problems.append(
                    Problem(
                        "", "niet verwerkt door een storing; upload het bestand opnieuw (niets wordt dubbel verstuurd)"
                    )
                )
    report = [r.as_json() for r in rows]
    sent = sum(1 for r in rows if r.status == "sent")
    duplicate = sum(1 for r in rows if r.status == "duplicate")
    failed = sum(1 for r in rows if r.status not in ("sent", "duplicate"))

    def finish(tx: Tx) -> None:
        tx.conn.execute(
            update(portal_uploads)
            .where(portal_uploads.c.id == upload_id)
            .values(
                status=status,
                rows_total=total,
                rows_sent=sent,
                rows_duplicate=duplicate,
                rows_failed=failed,
                report=report,
                finished_at=tx.now,
            )
        )

    await hub.writer.submit(finish)
    log.info("portal_upload_processed", upload=upload_id, partner=partner.id, sent=sent, failed=failed)


def _uploads(hub: Hub, partner_id: str, upload_id: str | None = None) -> list[dict[str, Any]]:
    query = select(portal_uploads).where(portal_uploads.c.partner_id == partner_id)
    if upload_id is not None:
        query = query.where(portal_uploads.c.id == upload_id)
    with hub.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query.order_by(portal_uploads.c.created_at.desc()).limit(200)).mappings()]
    now = datetime.now(UTC)
    for r in rows:
        created = r["created_at"].replace(tzinfo=UTC) if r["created_at"].tzinfo is None else r["created_at"]
        r["created_at"] = created
        if r["status"] == "processing" and now - created > STALE_UPLOAD:
            r["status"] = "interrupted"
    return rows


@router.get("/uploads")
async def uploads(request: Request) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    return page(request, "uploads.html", _base(session, partner, uploads=_uploads(_hub(request), partner.id)))


@router.get("/uploads/{upload_id}")
async def upload_report(request: Request, upload_id: str) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    found = _uploads(_hub(request), partner.id, upload_id[:36])
    if not found:
        return _error_page(request, session, partner, 404, "Deze upload bestaat niet (of is niet van uw organisatie).")
    item = found[0]
    problems = [
        (r["row"], p["field"], p["reason"])
        for r in item["report"]
        for p in r.get("problems", [])
        if r["status"] == "refused"
    ]
    sent = [r for r in item["report"] if r["status"] in ("sent", "duplicate")]
    return page(request, "upload.html", _base(session, partner, upload=item, problems=problems, sent=sent))


@router.get("/uploads/{upload_id}/rapport.csv")
async def upload_report_csv(request: Request, upload_id: str) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    found = _uploads(_hub(request), partner.id, upload_id[:36])
    if not found:
        return _error_page(request, session, partner, 404, "Deze upload bestaat niet.")
    rows = []
    for r in found[0]["report"]:
        for p in r.get("problems") or [{"field": "", "reason": ""}]:
            rows.append([r["row"], r["status"], p["field"], p["reason"], r.get("messageId") or ""])
    body = inbox.write_csv(["rij", "resultaat", "veld", "wat is er mis", "berichtId"], rows)
    return _headers(
        Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="uploadrapport.csv"'},
        )
    )


# -- the inbox ------------------------------------------------------------------------------------


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/inbox")
async def inbox_page(request: Request) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    q = request.query_params
    type_name = q.get("type") or None
    day_from, day_to = _day(q.get("van")), _day(q.get("tot"))
    entries = inbox.list_inbox(hub.engine, partner.id, message_type=type_name, day_from=day_from, day_to=day_to)
    known = sorted({mt.name for mt in hub.infomodel.types()})
    titles = {mt.name: mt.title for mt in hub.infomodel.types()}
    context = _base(
        session,
        partner,
        entries=entries,
        types=known,
        titles=titles,
        selected_type=type_name or "",
        van=day_from.isoformat() if day_from else "",
        tot=day_to.isoformat() if day_to else "",
        notice=q.get("melding"),
        names=_names(hub),
    )
    return page(request, "inbox.html", context)


def _number(value: str) -> int:
    """A delivery id from the path; anything else is simply not found."""
    if not value.isdigit() or len(value) > 18:
        raise NotFound("dit bericht bestaat niet in uw inbox")
    return int(value)


def _names(hub: Hub) -> dict[str, str]:
    return {p.id: p.name for p in hub.partners.all()}


@router.get("/inbox/{delivery_id}")
async def message_page(request: Request, delivery_id: str) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    try:
        entry = inbox.entry(hub.engine, partner.id, _number(delivery_id))
        doc = inbox.rendered(hub, partner, entry)
    except NotFound as exc:
        return _error_page(request, session, partner, 404, exc.detail)
    await hub.writer.submit(receipt_unit(partner.id, [entry.delivery_id], actor=session.user.actor, how="opened"))
    mtype = hub.infomodel.get(entry.type, entry.version)
    fields = [(inbox.label(k), v) for k, v in inbox.flatten(doc.get("payload") or {})]
    context = _base(session, partner, entry=entry, doc=doc, fields=fields, title=mtype.title, names=_names(hub))
    return page(request, "bericht.html", context)


@router.get("/inbox/{delivery_id}/download")
async def download_one(request: Request, delivery_id: str) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    try:
        entry = inbox.entry(_hub(request).engine, partner.id, _number(delivery_id))
    except NotFound as exc:
        return _error_page(request, session, partner, 404, exc.detail)
    return await _download(request, session, partner, [entry], request.query_params.get("formaat", "csv"))


async def _download(
    request: Request, session: Session, partner: Partner, entries: list[inbox.InboxEntry], fmt: str
) -> Response:
    hub = _hub(request)
    try:
        if fmt == "xml":
            body, media, ext = inbox.as_xml(hub, partner, entries), "application/xml", "xml"
        else:
            body, media, ext = inbox.as_csv(hub, partner, entries), "text/csv; charset=utf-8", "csv"
    except NotFound as exc:
        return _error_page(request, session, partner, 404, exc.detail)
    await hub.writer.submit(
        receipt_unit(partner.id, [e.delivery_id for e in entries], actor=session.user.actor, how="downloaded")
    )
    name = f"bericht-{entries[0].message_id}.{ext}" if len(entries) == 1 else f"berichten-{date.today()}.{ext}"
    return _headers(Response(body, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'}))


@router.post("/inbox")
async def inbox_action(request: Request) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    form = await request.form(max_files=0, max_fields=1000, max_part_size=1024)
    if not _csrf_ok(session.csrf_token, form.get("csrf")):
        return _error_page(request, session, partner, 400, "Uw formulier was verlopen. Probeer opnieuw.")
    ids = [int(v) for v in form.getlist("selectie") if isinstance(v, str) and v.isdigit()][:1000]
    entries = inbox.entries_by_ids(hub.engine, partner.id, ids)
    if not entries:
        return redirect("/portaal/inbox?melding=geen-selectie")
    action = str(form.get("actie") or "")
    if action in ("csv", "xml"):
        return await _download(request, session, partner, entries, action)
    if action == "afgehandeld":
        await hub.writer.submit(_handled([e.delivery_id for e in entries], session))
        return redirect("/portaal/inbox?melding=afgehandeld")
    return redirect("/portaal/inbox")


def _handled(delivery_ids: list[int], session: Session) -> Any:
    def unit(tx: Tx) -> None:
        done = {
            r.delivery_id
            for r in tx.conn.execute(
                select(portal_handled.c.delivery_id).where(portal_handled.c.delivery_id.in_(delivery_ids))
            )
        }
        for delivery_id in delivery_ids:
            if delivery_id not in done:
                tx.conn.execute(
                    insert(portal_handled).values(delivery_id=delivery_id, user_id=session.user.id, handled_at=tx.now)
                )

    return unit


# -- following persons (plateau 3, the reference directory) ------------------------------------


def _capacities(hub: Hub, partner: Partner) -> list[str]:
    return sorted({c for p in hub.protocols.all() for c in p.capacities if p.allows_capacity(c, partner.ref)})


@router.get("/volgen")
async def follow_form(request: Request) -> Response:
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    return page(request, "volgen.html", _base(session, partner, capacities=_capacities(hub, partner)))


@router.post("/volgen")
async def follow(request: Request) -> Response:
    """Register or end a follow-up through the same directory service as the API and SOAP."""
    who = await _logged_in(request)
    if who is None:
        return redirect("/portaal/inloggen")
    session, partner = who
    hub = _hub(request)
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    if not _csrf_ok(session.csrf_token, form.get("csrf")):
        return _error_page(request, session, partner, 403, "Het formulier is verlopen. Probeer het opnieuw.")
    soort = str(form.get("soort", "BSN"))
    nummer = str(form.get("nummer", "")).strip()
    capacity = str(form.get("hoedanigheid", ""))
    until_raw = str(form.get("tot", "")).strip()
    context = _base(session, partner, capacities=_capacities(hub, partner), soort=soort)
    try:
        until = date.fromisoformat(until_raw) if until_raw else None
        if form.get("actie") == "stoppen":
            ended = await hub.directory.deregister(
                partner, subject_type=soort, subject_id=nummer, capacity=capacity or None, channel="portal"
            )
            message = f"U volgt deze persoon niet meer ({len(ended)} volgregistratie(s) beëindigd)."
        else:
            registration = await hub.directory.register(
                partner,
                subject_type=soort,
                subject_id=nummer,
                capacity=capacity,
                valid_until=until,
                channel="portal",
            )
            new = "vanaf nu" if registration.created else "al; de registratie is bijgewerkt"
            message = f"U volgt deze persoon {new} als {capacity}."
    except ValueError:
        context.update(message="De datum is ongeldig; gebruik JJJJ-MM-DD.", failed=True)
        return page(request, "volgen.html", context, 400)
    except HubError as exc:
        reasons = "; ".join(p.reason for p in exc.invalid_params) or exc.detail
        context.update(message=f"Niet gelukt: {reasons}", failed=True)
        return page(request, "volgen.html", context, exc.status if 400 <= exc.status < 500 else 400)
    context.update(message=message)
    return page(request, "volgen.html", context)


@router.get("/{rest:path}")
async def not_found(request: Request, rest: str) -> Response:
    """Any other portal address: a page, not a JSON problem."""
    who = await _logged_in(request)
    if who is None:
        return page(request, "fout.html", {"status": 404, "message": "Deze pagina bestaat niet."}, 404)
    session, partner = who
    return _error_page(request, session, partner, 404, "Deze pagina bestaat niet.")
