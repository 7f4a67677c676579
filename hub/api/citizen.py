"""The inburgeraar's own view: ``/mijn-dossier`` (server-rendered, printable) and ``/v1/mijn-dossier``.

    GET  /mijn-dossier                        the dossier, or the login page
    GET  /mijn-dossier/aanmelden              to the identity provider (hub/identity.py)
    GET  /mijn-dossier/terug                  back from the OIDC provider -> session cookie
    GET  /mijn-dossier/aanmelden/ontwikkeling development login form
    POST /mijn-dossier/aanmelden/ontwikkeling the form's answer -> session cookie
    POST /mijn-dossier/afmelden               end the session
    GET  /v1/mijn-dossier                     the same dossier as JSON (session cookie)

The number the person logs in with never appears in a URL or the cookie;
the cookie holds its keyed hash, signed, for 15 minutes. A pending login
(state, and for OIDC the nonce and PKCE verifier) waits in a signed
10-minute cookie; what comes back must carry the same state (login CSRF).
Every view is audited as "self_viewed".
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hub.api.deps import get_hub
from hub.api.problems import from_error
from hub.dossier import DossierService
from hub.errors import AuthenticationFailed, HubError, NotFound
from hub.identity import IdentityProvider, SessionSigner, provider_for
from hub.service import Hub

SESSION_COOKIE = "kp_burger"
STATE_COOKIE = "kp_burger_login"
TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_CSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

_MAANDEN = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
]

router = APIRouter(tags=["mijn dossier"])


def _datum(value: datetime) -> str:
    local = value.astimezone(UTC)
    return f"{local.day} {_MAANDEN[local.month - 1]} {local.year}, {local:%H:%M} (UTC)"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["datum"] = _datum
    return env


class CitizenView:
    """The per-app pieces of the citizen view, built on first use."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.provider: IdentityProvider | None = provider_for(hub.settings)
        self.sessions = SessionSigner(hub.settings.audit_key_bytes, hub.hasher)
        self.dossiers = DossierService(hub)
        self.pages = templates()
        self.secure = hub.settings.public_url.startswith("https://")


def _view(request: Request) -> CitizenView:
    view: CitizenView | None = getattr(request.app.state, "citizen", None)
    if view is None:
        view = CitizenView(get_hub(request))
        request.app.state.citizen = view
    if view.provider is None:
        raise NotFound("de burgerweergave staat uit (KNOOPPUNT_CITIZEN_LOGIN=off)")
    return view


def _html(view: CitizenView, template: str, status: int = 200, **context: Any) -> Response:
    body = view.pages.get_template(template).render(**context)
    return Response(
        body, status_code=status, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": PAGE_CSP}
    )


async def _begin(view: CitizenView, request: Request, melding: str = "", status: int = 200) -> Response:
    """Start a login: the development form, or a redirect to the OIDC provider."""
    if view.provider is None:
        raise NotFound("de burgerweergave staat uit")
    state = secrets.token_urlsafe(24)
    development = view.provider.name == "development"
    redirect = not development and request.url.path == "/mijn-dossier/aanmelden"
    if not development and not redirect:
        # the page with the "Aanmelden" button; the provider is only contacted when it is pressed
        return _html(
            view,
            "burger/aanmelden.html",
            status,
            titel="Aanmelden",
            aangemeld=False,
            state="",
            melding=melding,
            ontwikkeling=False,
            aanmeld_url="/mijn-dossier/aanmelden",
        )
    start = await view.provider.start(f"{view.hub.settings.public_url.rstrip('/')}/mijn-dossier/terug", state)
    if development:
        response = _html(
            view,
            "burger/aanmelden.html",
            status,
            titel="Aanmelden",
            aangemeld=False,
            state=state,
            melding=melding,
            ontwikkeling=development,
            aanmeld_url="/mijn-dossier/aanmelden",
        )
    else:
        response = RedirectResponse(start.url, 303)
    response.set_cookie(
        STATE_COOKIE,
        view.sessions.seal({"s": state, **start.secret}),
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=view.secure,
        path="/mijn-dossier",
    )
    return response


async def _finish(view: CitizenView, request: Request, params: dict[str, str]) -> Response:
    """Check the state against the pending login, let the provider vouch, issue the session."""
    if view.provider is None:
        raise NotFound("de burgerweergave staat uit")
    try:
        pending = view.sessions.unseal(request.cookies.get(STATE_COOKIE))
    except AuthenticationFailed:
        return await _begin(view, request, "Uw aanmelding is verlopen. Probeer opnieuw.", 400)
    if not secrets.compare_digest(pending.get("s", ""), params.get("state", "")):
        return await _begin(view, request, "Uw aanmelding is verlopen. Probeer opnieuw.", 400)
    try:
        identity = await view.provider.complete(params, pending)
    except HubError as exc:
        reason = exc.invalid_params[0].reason if exc.invalid_params else exc.detail
        return await _begin(view, request, f"Aanmelden lukte niet: {reason}.", 400)
    response = RedirectResponse("/mijn-dossier", 303)
    response.set_cookie(
        SESSION_COOKIE,
        view.sessions.issue(identity),
        max_age=view.sessions.ttl,
        httponly=True,
        samesite="lax",
        secure=view.secure,
        path="/",
    )
    response.delete_cookie(STATE_COOKIE, path="/mijn-dossier")
    return response


@router.get("/mijn-dossier/stijl.css", include_in_schema=False)
async def stylesheet() -> Response:
    return Response((TEMPLATES / "burger" / "stijl.css").read_bytes(), media_type="text/css")


@router.get("/mijn-dossier", include_in_schema=False)
async def dossier_page(request: Request) -> Response:
    try:
        view = _view(request)
    except HubError as exc:
        return from_error(exc, instance=request.url.path)
    try:
        session = view.sessions.read(request.cookies.get(SESSION_COOKIE))
    except AuthenticationFailed as exc:
        melding = "" if SESSION_COOKIE not in request.cookies else exc.detail
        return await _begin(view, request, melding)
    await view.hub.writer.submit(view.dossiers.viewed_unit(session.subject_type, session.subject_hash, session.method))
    return _html(
        view,
        "burger/dossier.html",
        titel="Mijn dossier",
        aangemeld=True,
        state="",
        dossier=view.dossiers.build(session.subject_hash),
        nu=_datum(datetime.now(UTC)),
    )


@router.get("/mijn-dossier/aanmelden", include_in_schema=False)
async def login(request: Request) -> Response:
    try:
        return await _begin(_view(request), request)
    except HubError as exc:
        return from_error(exc, instance=request.url.path)


@router.get("/mijn-dossier/terug", include_in_schema=False)
async def oidc_callback(request: Request) -> Response:
    try:
        view = _view(request)
        if view.provider is None or view.provider.name != "oidc":
            raise NotFound("geen OIDC-aanmelding in deze omgeving")
        return await _finish(view, request, dict(request.query_params))
    except HubError as exc:
        return from_error(exc, instance=request.url.path)


@router.get("/mijn-dossier/aanmelden/ontwikkeling", include_in_schema=False)
async def development_form(request: Request) -> Response:
    try:
        return await _begin(_view(request), request)
    except HubError as exc:
        return from_error(exc, instance=request.url.path)


@router.post("/mijn-dossier/aanmelden/ontwikkeling", include_in_schema=False)
async def development_login(request: Request) -> Response:
    try:
        view = _view(request)
        if view.provider is None or view.provider.name != "development":
            raise NotFound("geen ontwikkelingsaanmelding in deze omgeving")
        form = await request.form()
        return await _finish(view, request, {k: str(v) for k, v in form.items() if isinstance(v, str)})
    except HubError as exc:
        return from_error(exc, instance=request.url.path)


@router.post("/mijn-dossier/afmelden", include_in_schema=False)
async def logout(request: Request) -> Response:
    response = RedirectResponse("/mijn-dossier", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get(
    "/v1/mijn-dossier",
    summary="Mijn eigen dossier (voor de aangemelde burger)",
    responses={401: {"description": "Niet aangemeld"}, 404: {"description": "Burgerweergave staat uit"}},
)
async def dossier_json(request: Request) -> Response:
    """The citizen's own trajectory, followers and exchanges; authenticated by the session cookie."""
    view = _view(request)
    session = view.sessions.read(request.cookies.get(SESSION_COOKIE))
    await view.hub.writer.submit(view.dossiers.viewed_unit(session.subject_type, session.subject_hash, session.method))
    body = view.dossiers.build(session.subject_hash).as_json()
    return Response(orjson.dumps(body), media_type="application/json")
