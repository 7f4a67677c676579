"""Who a citizen is: a pluggable identity step, and the signed session that follows it.

The inburgeraar's own view (``/mijn-dossier``) needs to know which person is
looking. In production that is an OpenID Connect provider the government
runs (the Belgian FAS / CSAM with eID or itsme, the Dutch DigiD): the browser
goes to the provider (authorization code flow with PKCE), comes back with a
code, and the hub exchanges it for an ID token whose claim carries the INSZ
or BSN. In development a form where one types a number stands in for it.

An :class:`IdentityProvider` does those two steps::

    login_url(state, return_to) -> where to send the browser
    complete(params)            -> CitizenIdentity (the provider's answer, checked)

Providers are registered by name (``Settings.citizen_login``); the
development provider refuses to exist outside development. After the step
the hub keeps only a signed, short-lived cookie holding the keyed hash of
the number (never the number): :class:`SessionSigner`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

import orjson

from hub.crypto import SubjectHasher
from hub.errors import AuthenticationFailed, ConfigurationError, InvalidParam, ValidationFailed
from hub.identifiers import IdentifierError, parse_subject


@dataclass(frozen=True, slots=True)
class CitizenIdentity:
    """A person as the identity step vouched for him."""

    subject_type: str
    subject_id: str
    method: str  # "development" or "oidc:<issuer>"


class IdentityProvider(Protocol):
    """One way for a citizen to prove who he is."""

    name: str

    def login_url(self, state: str, return_to: str) -> str:
        """Where the browser goes to authenticate; it comes back to ``return_to`` with ``state``."""
        ...

    async def complete(self, params: Mapping[str, str]) -> CitizenIdentity:
        """Check what came back (form fields or the callback's query) and say who this is.

        Raises:
            AuthenticationFailed: the proof does not hold.
        """
        ...


class DevelopmentIdentity:
    """Development only: the citizen types his INSZ or BSN. Never enabled in production."""

    name = "development"

    def __init__(self, *, env: str, allow_test_numbers: bool) -> None:
        if env == "production":
            raise ConfigurationError("the development login cannot be used in production (KNOOPPUNT_CITIZEN_LOGIN)")
        self.allow_test_numbers = allow_test_numbers

    def login_url(self, state: str, return_to: str) -> str:
        return "/mijn-dossier/aanmelden/ontwikkeling?" + urlencode({"state": state})

    async def complete(self, params: Mapping[str, str]) -> CitizenIdentity:
        kind = params.get("type", "INSZ")
        try:
            subject = parse_subject(kind, params.get("id", ""), allow_test_numbers=self.allow_test_numbers)
        except IdentifierError as exc:
            raise ValidationFailed(
                "ongeldig identificatienummer", invalid_params=[InvalidParam("id", str(exc), "identifier")]
            ) from exc
        return CitizenIdentity(kind, str(subject), "development")


def provider_for(name: str, *, env: str, allow_test_numbers: bool) -> IdentityProvider | None:
    """The configured provider, or None when the citizen view is off."""
    if name == "off":
        return None
    if name == "development":
        return DevelopmentIdentity(env=env, allow_test_numbers=allow_test_numbers)
    raise ConfigurationError(f"unknown citizen login {name!r}: 'development' or 'off' (OIDC: see hub/identity.py)")


@dataclass(frozen=True, slots=True)
class CitizenSession:
    """What the cookie proves: this browser is the person with this keyed hash, until ``expires``."""

    subject_type: str
    subject_hash: str
    method: str
    expires: int


class SessionSigner:
    """HMAC-signed session cookies; the key is derived from the audit HMAC key, never stored."""

    def __init__(self, audit_key: bytes, hasher: SubjectHasher, ttl_seconds: int = 900) -> None:
        self._key = hmac.new(audit_key, b"knooppunt-citizen-session-v1", hashlib.sha256).digest()
        self.hasher = hasher
        self.ttl = ttl_seconds

    def issue(self, identity: CitizenIdentity) -> str:
        body = {
            "t": identity.subject_type,
            "h": self.hasher(identity.subject_type, identity.subject_id),
            "m": identity.method,
            "e": int(time.time()) + self.ttl,
        }
        payload = base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> CitizenSession:
        """The session in the cookie.

        Raises:
            AuthenticationFailed: no cookie, a forged one, or an expired one.
        """
        if not cookie or "." not in cookie:
            raise AuthenticationFailed("meld u eerst aan")
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise AuthenticationFailed("ongeldige sessie; meld u opnieuw aan")
        try:
            body = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise AuthenticationFailed("ongeldige sessie; meld u opnieuw aan") from exc
        if int(body["e"]) < time.time():
            raise AuthenticationFailed("uw sessie is verlopen; meld u opnieuw aan")
        return CitizenSession(str(body["t"]), str(body["h"]), str(body["m"]), int(body["e"]))

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()
