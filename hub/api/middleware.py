"""Pure-ASGI middleware (cheaper than BaseHTTPMiddleware on the ingest path).

Every response gets the API-Version header and the security headers of the
NLGov API Design Rules (and HSTS when the request came over TLS); every
request gets a correlation id bound in
structlog's context (from ``X-Correlation-Id`` or ``traceparent``, else new).
"""

from __future__ import annotations

import os
import random

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSION = "1.0.0"
_IDS = random.Random(os.urandom(32))  # noqa: S311 - correlation ids must be unique, not secret

_SECURITY_HEADERS = [
    (b"api-version", API_VERSION.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
# HSTS only over TLS (RFC 6797 §7.2: a plain-HTTP answer must not carry it)
_HSTS = b"max-age=31536000; includeSubDomains"
# the API documentation (hub/api/docs.py): its assets come from the hub itself; Swagger UI's
# page starts it with an inline script and it sets inline styles and data: images
_DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; frame-ancestors 'none'"
)


class HeadersMiddleware:
    """API-Version, security headers and the correlation id, on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation = _correlation(scope)
        structlog.contextvars.bind_contextvars(correlation_id=correlation)
        path: str = scope.get("path", "")
        html_page = path.endswith("/docs") or path.startswith("/portaal")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in _SECURITY_HEADERS:
                    if key in present:
                        continue
                    if key == b"content-security-policy" and html_page:
                        if path.startswith("/portaal"):
                            continue  # the portal sets its own CSP
                        headers.append((key, _DOCS_CSP))
                        continue
                    headers.append((key, value))
                if https and b"strict-transport-security" not in present:
                    headers.append((b"strict-transport-security", _HSTS))
                headers.append((b"x-correlation-id", correlation.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")


def _correlation(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"x-correlation-id" and 0 < len(value) <= 64:
            return str(value.decode("latin-1"))
        if key == b"traceparent" and len(value) == 55:
            return str(value.decode("latin-1").split("-")[1])
    return f"{_IDS.getrandbits(128):032x}"
