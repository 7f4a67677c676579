"""Who is calling: partner certificates (mutual TLS), OAuth2 access tokens, API keys; and how often.

Three ways in, one answer (an :class:`AuthenticatedPartner`):

- **mutual TLS** — the TLS layer has verified the certificate against the
  configured CA bundle; :func:`identify_certificate` maps it to a partner by a
  pinned SHA-256 fingerprint, else by the OIN or KBO number in its subject
  (``serialNumber`` or ``organizationIdentifier``, e.g. ``NTRNL-<OIN>``);
- **OAuth2 client credentials** (RFC 6749 §4.4) — :class:`TokenService`
  issues short-lived signed JWTs (EdDSA or ES256, a ``kid`` per key) with the
  partner as ``sub``, its protocols as ``scope`` and, when the partner used
  a certificate, the certificate's thumbprint as ``cnf.x5t#S256`` (RFC 8705):
  such a token is worthless without the certificate;
- **API keys** (the backbone's static bearer tokens) — development and test
  only unless configured; in production the key is the client secret at the
  token endpoint.

:class:`RateLimiter` holds one token bucket per partner, so one partner's
flood is answered with 429 before it costs the others anything.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import jwt
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from hub.crypto import token_hash
from hub.errors import AuthenticationFailed, NotFound, RateLimited, ScopeNotGranted
from hub.partners import Partner, PartnerDirectory
from hub.protocols import ProtocolBook
from hub.settings import OAuthSettings, Settings

log = structlog.get_logger(__name__)

_ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")
# ETSI EN 319 412-1 semantics identifier: NTR (trade register) + country + "-" + number
_SEMANTICS_PREFIX = re.compile(r"^(?:NTR|VAT|PSD|GOV|OIN|KBO)?(?:[A-Z]{2})?[-:]?", re.IGNORECASE)
_LEEWAY = 5.0  # seconds of clock skew tolerated
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- certificates ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A verified partner certificate as the TLS layer handed it over."""

    fingerprint: str  # SHA-256 of the DER, lowercase hex
    thumbprint: str  # the same digest base64url-encoded: RFC 8705 x5t#S256
    subject: str  # RFC 4514
    numbers: tuple[str, ...]  # OIN (20 digits) and KBO (10 digits) numbers found in the subject

    @classmethod
    def from_der(cls, der: bytes) -> ClientCertificate:
        cert = x509.load_der_x509_certificate(der)
        digest = hashlib.sha256(der).digest()
        numbers: list[str] = []
        for oid in (NameOID.SERIAL_NUMBER, _ORGANIZATION_IDENTIFIER):
            for attribute in cert.subject.get_attributes_for_oid(oid):
                value = attribute.value if isinstance(attribute.value, str) else attribute.value.decode()
                number = identifier_number(value)
                if number:
                    numbers.append(number)
        return cls(digest.hex(), _b64url(digest), cert.subject.rfc4514_string(), tuple(dict.fromkeys(numbers)))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> ClientCertificate:
        data = pem.encode() if isinstance(pem, str) else pem
        return cls.from_der(x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER))


def identifier_number(value: str) -> str | None:
    """The OIN (20 digits) or KBO (10 digits) number in a subject attribute, or None.

    ``NTRNL-00000001003214345000`` -> the OIN; ``NTRBE-0650.989.467`` -> the KBO number.
    """
    rest = _SEMANTICS_PREFIX.sub("", value.strip(), count=1)
    digits = re.sub(r"[\s.]", "", rest)
    if digits.isdigit() and len(digits) in (10, 20):
        return digits
    return None


def normalise_fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()


def identify_certificate(cert: ClientCertificate, directory: PartnerDirectory, pins: dict[str, str]) -> Partner:
    """The partner a verified certificate belongs to.

    Raises:
        AuthenticationFailed: the certificate names no (active) partner, or more than one.
    """
    pinned = {normalise_fingerprint(k): v for k, v in pins.items()}.get(cert.fingerprint)
    if pinned is not None:
        partner = directory.get(pinned)
    else:
        found = [p for p in directory.all() if (p.oin and p.oin in cert.numbers) or (p.kbo and p.kbo in cert.numbers)]
        if len(found) > 1:
            raise AuthenticationFailed("het certificaat past op meer dan één partner; pin het op vingerafdruk")
        partner = found[0] if found else None
    if partner is None or not partner.active:
        raise AuthenticationFailed("dit certificaat hoort bij geen (actieve) partner")
    return partner


# -- the authenticated caller -------------------------------------------------------


@dataclass(frozen=True)
class AuthenticatedPartner(Partner):
    """A partner plus how it proved itself and, for OAuth2 tokens, which protocols it may use."""

    method: str = "api-key"  # api-key | oauth2 | mtls
    scopes: frozenset[str] | None = None  # None: every protocol the partner takes part in
    certificate: str | None = None  # x5t#S256 of the certificate used, if any

    @classmethod
    def of(
        cls, partner: Partner, method: str, scopes: frozenset[str] | None = None, certificate: str | None = None
    ) -> AuthenticatedPartner:
        key = (id(partner), method, scopes, certificate)
        cached = _AUTHENTICATED.get(key)
        if cached is not None and cached[0] is partner:  # the same directory entry, proved the same way
            return cached[1]
        values = {name: getattr(partner, name) for name in _PARTNER_FIELDS}
        made = cls(**values, method=method, scopes=scopes, certificate=certificate)
        if len(_AUTHENTICATED) >= 4096:  # directory reloads leave old entries behind: start over
            _AUTHENTICATED.clear()
        _AUTHENTICATED[key] = (partner, made)
        return made


#: (partner entry, method, scopes, certificate) -> the caller built for it; both are immutable, and
#: every request authenticates, so the copy of the partner's fields is made once, not per request
_AUTHENTICATED: dict[tuple[int, str, frozenset[str] | None, str | None], tuple[Partner, AuthenticatedPartner]] = {}


_PARTNER_FIELDS = tuple(f.name for f in fields(Partner))  # once: every request authenticates


def check_scope(caller: Partner, purpose: str) -> None:
    """Refuse a message whose protocol is outside the scopes of the caller's access token.

    Raises:
        ScopeNotGranted: the token was issued without this protocol.
    """
    scopes = getattr(caller, "scopes", None)
    if scopes is not None and purpose not in scopes:
        raise ScopeNotGranted(f"het toegangstoken geeft geen toegang tot protocol {purpose}")


def in_scope(caller: Partner, purpose: str) -> bool:
    """Whether the caller's credentials cover this protocol (API keys and certificates cover all)."""
    scopes = getattr(caller, "scopes", None)
    return scopes is None or purpose in scopes


def partner_scopes(partner: Partner, protocols: ProtocolBook) -> frozenset[str]:
    """The protocols a partner takes part in (as sender or receiver): what it may ask a token for."""
    return frozenset(p.id for p in protocols.all() if p.allows_sender(partner.ref) or p.allows_receiver(partner.ref))


# -- OAuth2 access tokens ----------------------------------------------------------


def _load_key(pem: str) -> tuple[Any, Any]:
    """(private key or None, public key) from a PEM private or public key."""
    data = pem.encode()
    if b"PRIVATE KEY" in data:
        private = serialization.load_pem_private_key(data, password=None)
        return private, private.public_key()
    return None, serialization.load_pem_public_key(data)


def key_kid(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _algorithm(public_key: Any) -> str:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1":
        return "ES256"
    raise AuthenticationFailed("alleen Ed25519- en P-256-sleutels tekenen toegangstokens")


def new_signing_key() -> str:
    """A fresh Ed25519 private key in PEM (``knooppunt keys signing-key``)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(private_pem: str) -> str:
    private, public = _load_key(private_pem)
    del private
    return str(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


@dataclass(frozen=True, slots=True)
class TokenClaims:
    partner_id: str
    scopes: frozenset[str]
    thumbprint: str | None
    kid: str


class TokenService:
    """Signs access tokens with the active key; verifies with it and every earlier key still configured.

    Rotation without downtime: configure the new key as ``signing_key`` and the
    previous one under ``verification_keys``; tokens signed before keep working
    until they expire (``token_ttl_seconds``), then drop the old key.
    """

    def __init__(
        self, settings: OAuthSettings, issuer: str, *, development: bool, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = self.issuer + "/v1"
        self.ttl = settings.token_ttl_seconds
        self._clock = clock
        signing = settings.signing_key
        if signing is None and development:
            signing = new_signing_key()  # development: tokens die with the process, which is fine
            log.warning("oauth_key_generated", reason="no signing key configured (development)")
        self._signing: Any = None
        self._kid = ""
        self._alg = ""
        self._verify: dict[str, tuple[str, Any]] = {}
        if signing is not None:
            private, public = _load_key(signing)
            if private is None:
                raise AuthenticationFailed("oauth signing_key must be a private key")
            self._signing, self._kid, self._alg = private, key_kid(public), _algorithm(public)
            self._verify[self._kid] = (self._alg, public)
        for pem in settings.verification_keys:
            _, public = _load_key(pem)
            self._verify.setdefault(key_kid(public), (_algorithm(public), public))

    @property
    def enabled(self) -> bool:
        return self._signing is not None

    @property
    def active_kid(self) -> str:
        return self._kid

    def jwks(self) -> dict[str, Any]:
        """The verification keys as a JWK set (RFC 7517), for partners that check tokens themselves."""
        keys = []
        for kid, (alg, public) in sorted(self._verify.items()):
            jwk = jwt.algorithms.get_default_algorithms()[alg].to_jwk(public, as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": keys}

    def issue(self, partner: Partner, scopes: Iterable[str], certificate: ClientCertificate | None) -> IssuedToken:
        if not self.enabled:
            raise NotFound("OAuth2 is niet ingesteld op deze hub (KNOOPPUNT_OAUTH__SIGNING_KEY_FILE)")
        now = int(self._clock())
        scope = " ".join(sorted(scopes))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": partner.id,
            "client_id": partner.id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        if certificate is not None:
            claims["cnf"] = {"x5t#S256": certificate.thumbprint}
        token = jwt.encode(claims, self._signing, algorithm=self._alg, headers={"kid": self._kid, "typ": "at+jwt"})
        return IssuedToken(token, self.ttl, scope)

    def verify(self, token: str, certificate: ClientCertificate | None) -> TokenClaims:
        """The claims of a valid token presented by its holder.

        Raises:
            AuthenticationFailed: bad signature, unknown key, expired, wrong audience, or a
                certificate-bound token presented without that certificate.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed("ongeldig toegangstoken") from exc
        entry = self._verify.get(str(header.get("kid", "")))
        if entry is None:
            raise AuthenticationFailed("toegangstoken getekend met een onbekende sleutel")
        alg, public = entry
        try:
            claims = jwt.decode(
                token,
                public,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                # time is checked below against the service's clock (testable, one source of time)
                options={
                    "require": ["exp", "iat", "nbf", "sub", "aud", "iss"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"ongeldig toegangstoken: {exc.__class__.__name__}") from exc
        now = self._clock()
        try:
            expires, not_before = float(claims["exp"]), float(claims["nbf"])
        except (TypeError, ValueError) as exc:
            raise AuthenticationFailed("ongeldig toegangstoken: exp/nbf") from exc
        if now > expires + _LEEWAY:
            raise AuthenticationFailed("toegangstoken verlopen; vraag een nieuw aan")
        if now + _LEEWAY < not_before:
            raise AuthenticationFailed("toegangstoken nog niet geldig")
        bound = (claims.get("cnf") or {}).get("x5t#S256")
        if bound is not None and (certificate is None or certificate.thumbprint != bound):
            raise AuthenticationFailed("dit toegangstoken hoort bij een certificaat dat niet getoond werd (RFC 8705)")
        scopes = frozenset(str(claims.get("scope", "")).split())
        return TokenClaims(str(claims["sub"]), scopes, bound, str(header["kid"]))


def looks_like_jwt(token: str) -> bool:
    return bool(_JWT_SHAPE.match(token))


# -- one entry for every channel -----------------------------------------------------


class Authenticator:
    """Turns the credentials of one request into the partner, or refuses."""

    def __init__(self, settings: Settings, directory: PartnerDirectory, reload: Callable[[], None]) -> None:
        self.settings = settings
        self.directory = directory
        self._reload = reload
        issuer = settings.oauth.issuer or settings.public_url
        self.tokens = TokenService(settings.oauth, issuer, development=settings.env == "development")

    def _partner(self, partner_id: str) -> Partner:
        partner = self.directory.get(partner_id)
        if partner is None:
            self._reload()
            partner = self.directory.get(partner_id)
        if partner is None or not partner.active:
            raise AuthenticationFailed("de partner van dit toegangstoken is onbekend of ingetrokken")
        return partner

    def certificate_partner(self, cert: ClientCertificate) -> Partner:
        try:
            return identify_certificate(cert, self.directory, self.settings.tls.fingerprints)
        except AuthenticationFailed:
            self._reload()
            return identify_certificate(cert, self.directory, self.settings.tls.fingerprints)

    def api_key_partner(self, token: str) -> Partner:
        hashed = token_hash(token)  # once: every request with an API key passes here
        if not self.directory.knows_hash(hashed):
            self._reload()
        return self.directory.authenticate_hash(hashed)

    def authenticate(self, authorization: str | None, cert: ClientCertificate | None) -> AuthenticatedPartner:
        """The partner behind an ``Authorization`` header and/or a verified client certificate.

        Raises:
            AuthenticationFailed: no credentials, bad credentials, or credentials of two partners.
        """
        by_cert: Partner | None = None
        if cert is not None:
            try:
                by_cert = self.certificate_partner(cert)
            except AuthenticationFailed:
                if not authorization:
                    raise
        thumb = cert.thumbprint if cert else None
        if not authorization:
            if by_cert is None:
                raise AuthenticationFailed(
                    "stuur een toegangstoken (Authorization: Bearer <token>) of een partnercertificaat"
                )
            return AuthenticatedPartner.of(by_cert, "mtls", certificate=thumb)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed("stuur een toegangstoken: Authorization: Bearer <token>")
        if looks_like_jwt(token):
            claims = self.tokens.verify(token, cert)
            partner: Partner = self._partner(claims.partner_id)
            method, scopes = "oauth2", claims.scopes
        else:
            if not self.settings.api_keys_allowed:
                raise AuthenticationFailed("API-sleutels gelden hier niet: gebruik OAuth2 (/v1/oauth/token) of mTLS")
            partner, method, scopes = self.api_key_partner(token), "api-key", None
        if by_cert is not None and by_cert.id != partner.id:
            raise AuthenticationFailed("het certificaat en het toegangstoken horen bij verschillende partners")
        return AuthenticatedPartner.of(partner, method, scopes, thumb)


# -- rate limits --------------------------------------------------------------------


#: the rate-limit key of a partner's requests; every other key is a client address (before
#: authentication). Limiters shared between processes share the partner keys only.
PARTNER_KEY_PREFIX = "partner:"


def partner_key(partner_id: str) -> str:
    return PARTNER_KEY_PREFIX + partner_id


class RateLimiter:
    """Token buckets per key (:func:`partner_key`, or a client address before authentication).

    Thread-safe and O(1) per request; the number of buckets is bounded so
    spoofed or rotating client addresses cannot grow memory without end.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, burst: int) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0, now)
                return 0.0
            self._store(key, tokens, now)
            return (1.0 - tokens) / rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            # drop the oldest half: those buckets have refilled by now anyway
            for old in list(self._buckets)[: self._max_keys // 2]:
                del self._buckets[old]
        self._buckets[key] = (tokens, now)

    def close(self) -> None:
        """Let go of what the buckets are kept in (nothing, here: they are this process's memory)."""

    def check(self, key: str, rate: float, burst: int, who: str) -> None:
        """Raise :class:`RateLimited` with a Retry-After when the bucket is empty."""
        wait = self.take(key, rate, burst)
        if wait > 0:
            raise RateLimited(
                f"te veel verzoeken van {who}; probeer opnieuw over {math.ceil(wait)} s", retry_after=math.ceil(wait)
            )


def partner_limits(settings: Settings, partner_id: str) -> tuple[float, int]:
    limits = settings.limits
    return (
        limits.partner_requests_per_second.get(partner_id, limits.requests_per_second),
        limits.partner_burst.get(partner_id, limits.burst),
    )


def partner_body_cap(settings: Settings, partner_id: str | None) -> int:
    cap = settings.max_body_bytes
    if partner_id is not None:
        cap = min(cap, settings.limits.partner_max_body_bytes.get(partner_id, cap))
    return cap


__all__ = [
    "PARTNER_KEY_PREFIX",
    "AuthenticatedPartner",
    "Authenticator",
    "ClientCertificate",
    "RateLimiter",
    "TokenService",
]
