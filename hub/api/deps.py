"""Request helpers shared by the routers: the hub, the calling partner, a capped body.

:func:`current_partner` is the one authentication dependency: API key,
OAuth2 access token or partner certificate (see :mod:`hub.auth`). It also
applies the partner's rate limit, and audits every refused authentication
("refused", no sender) while bounding how many a client address can cause.
"""

from __future__ import annotations

import collections.abc
import types
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError

from hub.api.tls import client_certificate
from hub.auth import AuthenticatedPartner, Authenticator, RateLimiter, partner_body_cap, partner_key, partner_limits
from hub.errors import AuthenticationFailed, PayloadTooLarge
from hub.partners import Partner
from hub.service import Hub

_MANY = (list, set, frozenset, tuple, collections.abc.Sequence, collections.abc.Set)


def _takes_many(annotation: Any) -> bool:
    """Whether a parameter's annotation accepts several values (``list[str] | None``...)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_takes_many(arg) for arg in get_args(annotation))
    return annotation in _MANY or origin in _MANY


def _single_valued_query(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route (and its dependencies) takes one value of."""
    names: set[str] = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        names.update(field.alias for field in current.query_params if not _takes_many(field.field_info.annotation))
        todo.extend(current.dependencies)
    return frozenset(names)


async def refuse_repeated_query(request: Request) -> None:
    """Refuse a single-valued query parameter given twice (app-wide FastAPI dependency).

    FastAPI would take the last value and ignore the others without a word, so
    ``?type=x&type=y`` meant ``y``: a filter could be replaced by appending to a
    URL, and what a caller sent and what the hub answered disagreed. Parameters
    declared as lists (``berichttype`` in the reports) may repeat.
    """
    query = request.query_params
    if len(query.multi_items()) == len(query):
        return  # no key given twice: the common case
    route = request.scope.get("route")
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:
        return
    single = _single_valued_query(dependant)  # only for a request that repeats a key: rare
    repeated = sorted(name for name in query if name in single and len(query.getlist(name)) > 1)
    if repeated:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"{name} mag maar één keer voorkomen, kwam {len(query.getlist(name))} keer voor",
                    "type": "repeated",
                }
                for name in repeated
            ]
        )


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("stuur een toegangstoken: Authorization: Bearer <token>")
    return token.strip()


def get_authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


def get_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def _channel(request: Request) -> str:
    return "soap" if request.url.path.startswith("/soap") else "rest"


async def refuse_authentication(request: Request, exc: AuthenticationFailed, channel: str | None = None) -> None:
    """Audit a refused authentication; past the per-address budget, answer 429 instead of auditing.

    Raises:
        RateLimited: this client address failed too often.
    """
    hub = get_hub(request)
    limits = hub.settings.limits
    address = request.client.host if request.client else "unknown"
    get_limiter(request).check(f"anonymous:{address}", limits.anonymous_per_second, limits.anonymous_burst, address)
    await hub.writer.submit(hub.refused_unit(None, None, exc, channel or _channel(request)))


async def authenticate_request(request: Request) -> AuthenticatedPartner:
    """The partner behind this request, within its rate limit.

    Raises:
        AuthenticationFailed: no or bad credentials (audited as refused).
        RateLimited: the partner, or the failing client address, sent too much.
    """
    state = request.app.state  # hub, authenticator and limiter: one lookup of the app's state per request
    authenticator: Authenticator = state.authenticator
    try:
        partner = authenticator.authenticate(request.headers.get("authorization"), client_certificate(request.scope))
    except AuthenticationFailed as exc:
        await refuse_authentication(request, exc)
        raise
    hub: Hub = state.hub
    limiter: RateLimiter = state.limiter
    rate, burst = partner_limits(hub.settings, partner.id)
    limiter.check(partner_key(partner.id), rate, burst, partner.id)
    request.state.partner_id = partner.id
    return partner


async def current_partner(request: Request) -> Partner:
    """The authenticated partner (FastAPI dependency)."""
    return await authenticate_request(request)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused as soon as it passes the cap (before any parser sees it).

    The cap is the smaller of ``max_bytes`` and the calling partner's own limit.
    """
    max_bytes = min(max_bytes, partner_body_cap(get_hub(request).settings, getattr(request.state, "partner_id", None)))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"het bericht is {declared} bytes, de grens is {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"het bericht is groter dan de grens van {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
