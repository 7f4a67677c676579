"""OAuth2 client credentials (RFC 6749 §4.4) with certificate-bound tokens (RFC 8705).

``POST /v1/oauth/token`` (application/x-www-form-urlencoded)::

    grant_type=client_credentials [&scope=<protocol id> ...] [&client_id=<partner id>]

The client authenticates with its API key as client secret (HTTP Basic, or
``client_id`` + ``client_secret`` in the form), or with its partner
certificate (``tls_client_auth``). The answer is a short-lived JWT; with a
certificate, the token is bound to it (``cnf.x5t#S256``). Errors are
problem+json carrying the RFC 6749 §5.2 ``error`` code as an extension member.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from hub.api.deps import get_authenticator, get_hub, get_limiter, read_body, refuse_authentication
from hub.api.problems import PROBLEM, problem_body
from hub.api.tls import client_certificate
from hub.auth import Authenticator, partner_key, partner_limits, partner_scopes
from hub.errors import AuthenticationFailed, HubError
from hub.partners import Partner

router = APIRouter(prefix="/v1/oauth", tags=["oauth"])

MAX_FORM_BYTES = 4096

_PROBLEM = {
    "description": "Probleem (RFC 9457) met de OAuth2-foutcode in `error`",
    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


class OAuthError(HubError):
    """An RFC 6749 §5.2 error; ``error`` is the registered code."""

    status = 400
    title = "OAuth2-verzoek geweigerd"

    def __init__(self, error: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.error = error
        self.code = f"oauth_{error}"
        self.status = status


def _oauth_problem(exc: OAuthError, basic: bool) -> Response:
    body: dict[str, Any] = problem_body(
        status=exc.status, title=exc.title, detail=exc.detail, code=exc.code, instance="/v1/oauth/token"
    )
    body["error"] = exc.error
    body["error_description"] = exc.detail
    headers = {"WWW-Authenticate": 'Basic realm="knooppunt"'} if exc.status == 401 and basic else None
    return Response(orjson.dumps(body), status_code=exc.status, media_type=PROBLEM, headers=headers)


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "het formulier moet URL-gecodeerd ASCII zijn") from exc
    try:
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=10)
    except ValueError as exc:  # more fields than a token request has
        raise OAuthError("invalid_request", "te veel parameters") from exc
    duplicated = [k for k, v in fields.items() if len(v) > 1]
    if duplicated:  # RFC 6749 §3.2: parameters must not be repeated
        raise OAuthError("invalid_request", f"parameter herhaald: {', '.join(sorted(duplicated))}")
    return {k: v[0] for k, v in fields.items()}


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "onleesbare Basic-authenticatie", 401) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Basic-authenticatie zonder geheim", 401)
    return unquote_plus(client_id), unquote_plus(secret)


@router.post(
    "/token",
    summary="Vraag een toegangstoken aan (OAuth2 client credentials)",
    responses={
        200: {
            "description": "Een kortlevend toegangstoken (JWT)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["access_token", "token_type", "expires_in", "scope"],
                        "properties": {
                            "access_token": {"type": "string"},
                            "token_type": {"type": "string", "enum": ["Bearer"]},
                            "expires_in": {"type": "integer"},
                            "scope": {"type": "string", "description": "De protocollen, door spaties gescheiden"},
                        },
                    }
                }
            },
        },
        400: _PROBLEM,
        401: _PROBLEM,
        404: _PROBLEM,
        413: _PROBLEM,
        415: _PROBLEM,
        429: _PROBLEM,
    },
    openapi_extra={
        # the client authenticates in the request itself (Basic, client_secret or certificate)
        "security": [{"clientSecretBasic": []}, {"mutualTLS": []}, {}],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "scope": {"type": "string"},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                        },
                    }
                }
            },
        },
    },
)
async def token(request: Request) -> Response:
    """Client credentials grant: the partner proves itself with its API key or its certificate and
    gets a token for the protocols it asks (default: all protocols it takes part in)."""
    hub = get_hub(request)
    auth = get_authenticator(request)
    header = request.headers.get("authorization", "")
    basic = header.lower().startswith("basic ")
    try:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "stuur application/x-www-form-urlencoded (RFC 6749)", 415)
        form = _form(await read_body(request, MAX_FORM_BYTES))
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "alleen grant_type=client_credentials")
        partner = await _client(request, form, header)
        rate, burst = partner_limits(hub.settings, partner.id)
        get_limiter(request).check(partner_key(partner.id), rate, burst, partner.id)
        allowed = partner_scopes(partner, hub.protocols)
        requested = set(form.get("scope", "").split()) or set(allowed)
        if not requested <= allowed:
            raise OAuthError(
                "invalid_scope", f"geen protocol voor deze partner: {', '.join(sorted(requested - allowed))}"
            )
        issued = auth.tokens.issue(partner, requested, client_certificate(request.scope))
    except OAuthError as exc:
        return _oauth_problem(exc, basic)
    return Response(orjson.dumps(issued.as_json()), media_type="application/json", headers={"Pragma": "no-cache"})


async def _client(request: Request, form: dict[str, str], header: str) -> Partner:
    """The authenticated client; a refusal is audited and answered as ``invalid_client``."""
    auth = get_authenticator(request)
    try:
        partner = _identify_client(auth, request, form, header)
        if form.get("client_id") and form["client_id"] != partner.id:
            raise AuthenticationFailed("client_id hoort niet bij de clientauthenticatie")
        return partner
    except AuthenticationFailed as exc:
        await refuse_authentication(request, exc, "oauth")
        raise OAuthError("invalid_client", exc.detail, 401) from exc


def _identify_client(auth: Authenticator, request: Request, form: dict[str, str], header: str) -> Partner:
    """The client: by certificate (tls_client_auth) or by API key as client secret."""
    credentials = _basic(header) if header else None
    if credentials is None and "client_secret" in form:
        credentials = (form.get("client_id", ""), form["client_secret"])
    cert = client_certificate(request.scope)
    if credentials is not None:
        client_id, secret = credentials
        partner = auth.api_key_partner(secret)
        if client_id and client_id != partner.id:
            raise AuthenticationFailed("client_id en client_secret horen niet bij elkaar")
        if cert is not None and auth.certificate_partner(cert).id != partner.id:
            raise AuthenticationFailed("het certificaat hoort bij een andere partner")
        return partner
    if cert is None:
        raise AuthenticationFailed("geen clientauthenticatie: Basic, client_secret of een partnercertificaat")
    return auth.certificate_partner(cert)


@router.get(
    "/jwks",
    summary="De sleutels die toegangstokens tekenen (JWK-set)",
    responses={200: {"description": "JWKS"}},
    openapi_extra={"security": []},  # public keys, public on purpose
)
async def jwks(request: Request) -> Response:
    """Public keys (RFC 7517) of the current and earlier signing keys, by ``kid``."""
    return Response(orjson.dumps(get_authenticator(request).tokens.jwks()), media_type="application/json")
