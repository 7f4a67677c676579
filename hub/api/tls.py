"""HTTPS with partner certificates: serving mutual TLS with uvicorn and reading the peer certificate.

Why this shape: the application reads the client certificate from the ASGI
TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM
strings, leaf first), the one server-neutral place the ASGI spec defines for
it. uvicorn does not fill that extension, so :func:`protocol_class` wraps
uvicorn's own HTTP protocol: when a connection is made it takes the peer
certificate from ``transport.get_extra_info("ssl_object")`` (verified by the
TLS handshake against ``ssl_ca_certs``) and hands every request on that
connection a scope with the extension. Nothing a client sends in a header can
set it. Behind a server that fills the extension itself, the hook is simply
not used.
"""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from hub.auth import ClientCertificate
from hub.revocation import Revocation, revocation_for
from hub.settings import Settings
from hub.tls import certificate_not_after, harden, validity

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The ASGI TLS extension for one connection (None when the connection is plain HTTP)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }


class _WithTLSExtension:
    """ASGI wrapper, one per connection: adds the connection's TLS extension to each scope."""

    def __init__(self, app: ASGIApp, extension: dict[str, Any]) -> None:
        self.app = app
        self.extension = extension

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = self.extension
        await self.app({**scope, "extensions": extensions}, receive, send)


def protocol_class() -> type[Any]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) that fills the TLS extension."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional in uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class TLSExtensionProtocol(Base):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            extension = tls_extension(transport.get_extra_info("ssl_object"))
            if extension is not None:
                self.app = _WithTLSExtension(self.app, extension)

    return TLSExtensionProtocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``: empty without TLS, else HTTPS and client certificates."""
    tls = settings.tls
    if not tls.enabled:
        return {}
    # the CRLs are read and checked here, before the hub listens: a hub that cannot check
    # revocation does not start (hub/revocation.py)
    revocation = revocation_for(tls.crl_files, tls.ca_certs, tls.crl_refresh_seconds)
    return {
        "ssl_certfile": str(tls.certfile),
        "ssl_keyfile": str(tls.keyfile) if tls.keyfile else None,
        "ssl_ca_certs": str(tls.ca_certs) if tls.ca_certs else None,
        "ssl_cert_reqs": _CERT_REQS[tls.client_cert],
        "ssl_context_factory": functools.partial(harden_context, revocation=revocation),
        "http": protocol_class(),
    }


def harden_context(
    config: Any, default: Callable[[], ssl.SSLContext], *, revocation: Revocation | None = None
) -> ssl.SSLContext:
    """uvicorn's context (certificate, CA bundle, verify mode) with TLS 1.2 as the floor and no
    renegotiation: the peer certificate read at connection time stays the connection's certificate.
    With ``revocation``, revoked partner certificates are refused at the handshake."""
    context = harden(default())
    if revocation is not None:
        revocation.install(context)
    certfile = getattr(config, "ssl_certfile", None)
    if certfile:  # the certificate this process serves, for /health (a renewed file needs a restart)
        _SERVED[str(certfile)] = certificate_not_after(Path(certfile))
    return context


#: certificate file -> notAfter of the certificate this process loaded from it
_SERVED: dict[str, dt.datetime | None] = {}


def server_certificate(certfile: Path) -> dict[str, Any]:
    """For ``/health``: the days the hub's own server certificate has left, as loaded by this
    process (else as in the file); an expired one is a real outage for every partner."""
    key = str(certfile)
    not_after = _SERVED[key] if key in _SERVED else certificate_not_after(certfile)
    return validity(certfile, not_after, dt.datetime.now(dt.UTC))


def client_certificate(scope: Mapping[str, Any]) -> ClientCertificate | None:
    """The verified client certificate of this request, from the ASGI TLS extension."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not tls:
        return None
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return _parse(str(chain[0]))


@functools.lru_cache(maxsize=1024)
def _parse(pem: str) -> ClientCertificate:
    # one parse per certificate, not per request (a connection carries many requests)
    return ClientCertificate.from_pem(pem)
