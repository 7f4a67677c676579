"""Who a citizen is: a pluggable identity step, and the signed session that follows it.

The inburgeraar's own view (``/mijn-dossier``) needs to know which person is
looking. An :class:`IdentityProvider` does that in two steps::

    start(return_to, state) -> LoginStart(url, secret)   where the browser goes;
                                                         secret waits in a signed cookie
    complete(params, secret) -> CitizenIdentity          what came back, checked

- :class:`OidcIdentity` (``KNOOPPUNT_CITIZEN_LOGIN=oidc``): OpenID Connect,
  authorization code flow with PKCE S256, RS256 ID token checked against the
  provider's JWKS (issuer, audience, expiry, nonce); the national number comes
  from a configurable claim (``egovNRN`` at the Belgian FAS for eID/itsme,
  ``bsn`` behind a DigiD broker). Configuration: ``KNOOPPUNT_CITIZEN_OIDC__*``.
- :class:`DevelopmentIdentity` (``development``, the default outside
  production): a form where one types the number. Refused in production.

After the step the hub keeps only a signed, short-lived cookie holding the
keyed hash of the number (never the number): :class:`SessionSigner`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hub.crypto import SubjectHasher
from hub.errors import AuthenticationFailed, ConfigurationError, InvalidParam, ValidationFailed
from hub.identifiers import IdentifierError, parse_subject
from hub.settings import OidcSettings, Settings


@dataclass(frozen=True, slots=True)
class CitizenIdentity:
    """A person as the identity step vouched for him."""

    subject_type: str
    subject_id: str
    method: str  # "development" or "oidc:<issuer>"


@dataclass(frozen=True, slots=True)
class LoginStart:
    """Where to send the browser, and what to keep (in a signed cookie) until it comes back."""

    url: str
    secret: Mapping[str, str]


class IdentityProvider(Protocol):
    """One way for a citizen to prove who he is."""

    name: str

    async def start(self, return_to: str, state: str) -> LoginStart:
        """Begin a login; the browser comes back to ``return_to`` carrying ``state``."""
        ...

    async def complete(self, params: Mapping[str, str], secret: Mapping[str, str]) -> CitizenIdentity:
        """Check what came back (form fields or the callback's query) and say who this is.

        Raises:
            AuthenticationFailed: the proof does not hold.
            ValidationFailed: the number it names is not a valid INSZ/BSN.
        """
        ...


def _subject(kind: str, value: str, allow_test_numbers: bool) -> str:
    try:
        return str(parse_subject(kind, value, allow_test_numbers=allow_test_numbers))
    except IdentifierError as exc:
        raise ValidationFailed(
            "ongeldig identificatienummer", invalid_params=[InvalidParam("id", str(exc), "identifier")]
        ) from exc


class DevelopmentIdentity:
    """Development only: the citizen types his INSZ or BSN. Never enabled in production."""

    name = "development"

    def __init__(self, *, env: str, allow_test_numbers: bool) -> None:
        if env == "production":
            raise ConfigurationError("the development login cannot be used in production (KNOOPPUNT_CITIZEN_LOGIN)")
        self.allow_test_numbers = allow_test_numbers

    async def start(self, return_to: str, state: str) -> LoginStart:
        return LoginStart("/mijn-dossier/aanmelden/ontwikkeling", {})

    async def complete(self, params: Mapping[str, str], secret: Mapping[str, str]) -> CitizenIdentity:
        kind = params.get("type", "INSZ")
        return CitizenIdentity(kind, _subject(kind, params.get("id", ""), self.allow_test_numbers), "development")


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class OidcIdentity:
    """OpenID Connect, authorization code flow with PKCE (S256) and an RS256-signed ID token.

    The ID token is checked for signature (the provider's JWKS; ``none`` and
    HMAC algorithms are refused), issuer, audience, expiry and nonce; the
    national number is read from ``subject_claim``.
    """

    name = "oidc"

    def __init__(self, config: OidcSettings, *, allow_test_numbers: bool, timeout: float = 10.0) -> None:
        self.config = config
        self.allow_test_numbers = allow_test_numbers
        self.timeout = timeout
        self._meta: dict[str, str] = {}
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    async def _metadata(self) -> dict[str, str]:
        if not self._meta:
            c = self.config
            meta = {
                "authorization_endpoint": c.authorization_endpoint,
                "token_endpoint": c.token_endpoint,
                "jwks_uri": c.jwks_uri,
            }
            if not all(meta.values()):
                url = c.issuer.rstrip("/") + "/.well-known/openid-configuration"
                found = await self._get(url)
                meta = {k: v or str(found.get(k, "")) for k, v in meta.items()}
            if not all(meta.values()):
                raise ConfigurationError(f"the OIDC provider {c.issuer} does not name all its endpoints")
            self._meta = {k: str(v) for k, v in meta.items()}
        return self._meta

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(url)
                response.raise_for_status()
                body: dict[str, Any] = response.json()
                return body
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthenticationFailed("de aanmeldingsdienst is niet bereikbaar; probeer later opnieuw") from exc

    async def start(self, return_to: str, state: str) -> LoginStart:
        meta = await self._metadata()
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(24)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": return_to,
                "scope": self.config.scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": _b64url_encode(hashlib.sha256(verifier.encode()).digest()),
                "code_challenge_method": "S256",
            }
        )
        return LoginStart(f"{meta['authorization_endpoint']}?{query}", {"v": verifier, "n": nonce, "r": return_to})

    async def complete(self, params: Mapping[str, str], secret: Mapping[str, str]) -> CitizenIdentity:
        if params.get("error"):
            raise AuthenticationFailed("de aanmelding werd afgebroken of geweigerd")
        code = params.get("code", "")
        if not code:
            raise AuthenticationFailed("geen autorisatiecode ontvangen")
        meta = await self._metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": secret.get("r", ""),
            "client_id": self.config.client_id,
            "code_verifier": secret.get("v", ""),
        }
        if self.config.client_secret:
            form["client_secret"] = self.config.client_secret
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.post(meta["token_endpoint"], data=form)
            tokens = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthenticationFailed("de aanmeldingsdienst is niet bereikbaar; probeer later opnieuw") from exc
        if response.status_code != 200 or not isinstance(tokens, dict) or "id_token" not in tokens:
            raise AuthenticationFailed("de aanmeldingsdienst weigerde de code")
        claims = await self.verify(str(tokens["id_token"]), nonce=secret.get("n", ""))
        value = claims.get(self.config.subject_claim)
        if not isinstance(value, str) or not value:
            raise AuthenticationFailed(f"het ID-token bevat geen {self.config.subject_claim}")
        kind = self.config.subject_type
        return CitizenIdentity(kind, _subject(kind, value, self.allow_test_numbers), f"oidc:{self.config.issuer}")

    async def verify(self, token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of a valid ID token.

        Raises:
            AuthenticationFailed: any check fails.
        """
        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            header = orjson.loads(_b64url(head_b64))
            claims = orjson.loads(_b64url(body_b64))
            signature = _b64url(sig_b64)
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise AuthenticationFailed("onleesbaar ID-token") from exc
        if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
            raise AuthenticationFailed("ID-token niet met RS256 ondertekend")
        key = await self._key(str(header.get("kid", "")))
        try:
            key.verify(signature, f"{head_b64}.{body_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise AuthenticationFailed("de handtekening van het ID-token klopt niet") from exc
        now = time.time()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != self.config.issuer:
            raise AuthenticationFailed("ID-token van een andere uitgever")
        if self.config.client_id not in audiences:
            raise AuthenticationFailed("ID-token voor een andere toepassing")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now - 60:
            raise AuthenticationFailed("ID-token verlopen")
        if not nonce or not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise AuthenticationFailed("ID-token hoort niet bij deze aanmelding (nonce)")
        return claims

    async def _key(self, kid: str) -> rsa.RSAPublicKey:
        if kid not in self._keys:
            # a key rotation at the provider: fetch the JWKS again, once
            jwks = await self._get((await self._metadata())["jwks_uri"])
            for jwk in jwks.get("keys", []):
                if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and "n" in jwk and "e" in jwk:
                    numbers = rsa.RSAPublicNumbers(
                        int.from_bytes(_b64url(str(jwk["e"])), "big"), int.from_bytes(_b64url(str(jwk["n"])), "big")
                    )
                    self._keys[str(jwk.get("kid", ""))] = numbers.public_key()
        key = self._keys.get(kid)
        if key is None:
            raise AuthenticationFailed("onbekende sleutel van de aanmeldingsdienst")
        return key


def provider_for(settings: Settings) -> IdentityProvider | None:
    """The configured provider, or None when the citizen view is off."""
    name = settings.citizen_login_provider
    if name == "off":
        return None
    if name == "development":
        return DevelopmentIdentity(env=settings.env, allow_test_numbers=settings.insz_test_numbers)
    if name == "oidc" and settings.citizen_oidc is not None:
        return OidcIdentity(settings.citizen_oidc, allow_test_numbers=settings.insz_test_numbers)
    raise ConfigurationError(f"unknown or unconfigured citizen login {name!r}")


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

    def seal(self, data: Mapping[str, str], ttl: int = 600) -> str:
        """A signed, expiring blob (a pending login's state, nonce and PKCE verifier)."""
        payload = _b64url_encode(orjson.dumps({"d": dict(data), "e": int(time.time()) + ttl}))
        return f"{payload}.{self._sign('p' + payload)}"

    def unseal(self, blob: str | None) -> dict[str, str]:
        """What :meth:`seal` sealed, or AuthenticationFailed if forged or expired."""
        if not blob or "." not in blob:
            raise AuthenticationFailed("uw aanmelding is verlopen; probeer opnieuw")
        payload, _, signature = blob.rpartition(".")
        if not hmac.compare_digest(signature, self._sign("p" + payload)):
            raise AuthenticationFailed("uw aanmelding is verlopen; probeer opnieuw")
        body = orjson.loads(_b64url(payload))
        if int(body["e"]) < time.time():
            raise AuthenticationFailed("uw aanmelding is verlopen; probeer opnieuw")
        return {str(k): str(v) for k, v in body["d"].items()}

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()
