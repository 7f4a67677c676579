"""TLS contexts: the floor both sides of the hub keep, and the outgoing profiles (two-way TLS to partners).

The hub's server side (hub/api/tls.py) asks partners for certificates. The other way, MAGDA
and Digikoppeling ask the hub for one: the hub must present its own certificate (a
PKIoverheid services certificate for DUO and COA, another one for MAGDA), trust the
partner's CA (PKIoverheid Private roots, a MAGDA CA: not in certifi) and refuse a revoked
partner server certificate. An *outgoing TLS profile* (``KNOOPPUNT_OUTBOUND_TLS__<NAME>__...``,
:class:`hub.settings.OutboundTLSProfile`) says all that once; a partner picks one with its
adapter config key ``tls_profile``. The profile ``default``, when configured, serves every
partner that names none; ``tls_profile: "none"`` keeps a partner on the plain client
(certifi, no client certificate) even then.

Why this shape:

- **Checked when the hub starts.** :class:`OutboundTLS` reads every profile's files and
  builds its context before the hub serves: a missing or unreadable file, a key that does
  not belong to the certificate, an encrypted key without its password, or a client
  certificate that expired (or is not yet valid) stops the start with a
  :class:`ConfigurationError` naming the profile and the file, instead of failing every
  delivery at the partner's handshake. A partner naming an unknown profile fails when its
  adapter is built, like any other bad adapter configuration.
- **One context, one client per profile.** The context is built once; the service gives
  each profile in use its own partner client (hub/http.py), so connections are pooled per
  profile and never carry one certificate to a partner of another. Partners without a
  profile use the hub's one client exactly as before.
- **CRLs as on the server side.** ``crl_files`` go through :mod:`hub.revocation` (checked
  against ``ca_certs`` at start, refreshed without a restart, no rollback, ``/health``):
  the partner's server certificate is checked with ``VERIFY_CRL_CHECK_LEAF``.
- **``ca_certs`` replaces certifi.** A profile that trusts a partner's private CA trusts
  nothing else, so a public CA cannot vouch for a server posing as MAGDA.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from hub.errors import ConfigurationError
from hub.revocation import Revocation, read_authorities, revocation_for
from hub.settings import OutboundTLSProfile

DEFAULT_PROFILE = "default"
NO_PROFILE = "none"  # tls_profile: "none" -> the plain client, also when a default profile exists
CONFIG_KEY = "tls_profile"

Clock = Callable[[], dt.datetime]


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 as the floor and no renegotiation (the peer certificate checked at the handshake
    stays the connection's certificate): the hub's server and client contexts alike."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


def certificate_not_after(path: Path) -> dt.datetime | None:
    """The notAfter of the first certificate in a PEM file; None when it cannot be read."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0].not_valid_after_utc
    except (OSError, ValueError, IndexError):
        return None


def validity(path: Path, not_after: dt.datetime | None, now: dt.datetime) -> dict[str, Any]:
    """For ``/health``: a certificate's days left; an expired (or unreadable) one is not ok."""
    if not_after is None:
        return {"ok": False, "certFile": str(path), "error": "certificaat niet leesbaar"}
    expired = not_after <= now
    return {
        "ok": not expired,
        "certFile": str(path),
        "notAfter": not_after.isoformat(),
        "daysLeft": (not_after - now).days,
        "expired": expired,
    }


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """One outgoing profile, loaded: its context, the client certificate's validity, its CRLs."""

    name: str
    context: ssl.SSLContext
    client_cert: Path | None
    not_after: dt.datetime | None
    revocation: Revocation | None

    def status(self, now: dt.datetime) -> dict[str, Any]:
        """For ``/health``: days the client certificate has left (expired: not ok) and the CRLs."""
        check: dict[str, Any] = {"ok": True}
        if self.client_cert is not None and self.not_after is not None:
            check.update(validity(self.client_cert, self.not_after, now))
            check["clientCert"] = check.pop("certFile")
        if self.revocation is not None:
            crl = self.revocation.status()
            check["ok"] = check["ok"] and crl["ok"]
            check["crl"] = crl
        return check


def load_profile(name: str, profile: OutboundTLSProfile, *, now: dt.datetime | None = None) -> ClientTLS:
    """Read one profile's files into a client context.

    Raises:
        ConfigurationError: a file is missing or unreadable, the key does not belong to the
            certificate (or is encrypted without its password), the client certificate is
            expired or not yet valid, or the CRLs do not cover the CAs (hub/revocation.py).
    """
    where = f"outbound_tls.{name}"
    now = now or dt.datetime.now(dt.UTC)
    if profile.ca_certs is not None:
        _readable(where, "ca_certs", profile.ca_certs)
        read_authorities(profile.ca_certs, where)  # PEM CA certificates, or a clear error
        context = ssl.create_default_context(cafile=str(profile.ca_certs))  # instead of certifi
    else:
        context = httpx.create_ssl_context()  # certifi, as the hub's plain client
    harden(context)
    not_after = None
    if profile.client_cert is not None:
        not_after = _load_client_cert(where, profile.client_cert, profile, context, now)
    revocation = revocation_for(profile.crl_files, profile.ca_certs, profile.crl_refresh_seconds, where)
    if revocation is not None:
        revocation.install(context)
    return ClientTLS(name, context, profile.client_cert, not_after, revocation)


def _load_client_cert(
    where: str, cert_path: Path, profile: OutboundTLSProfile, context: ssl.SSLContext, now: dt.datetime
) -> dt.datetime:
    key_path = profile.client_key or cert_path
    _readable(where, "client_cert", cert_path)
    _readable(where, "client_key", key_path)
    try:
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    except ValueError as exc:
        raise ConfigurationError(f"{where}.client_cert {cert_path}: geen PEM-certificaat ({exc})") from exc
    if leaf.not_valid_after_utc <= now:
        raise ConfigurationError(
            f"{where}.client_cert {cert_path}: verlopen op {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if leaf.not_valid_before_utc > now:
        raise ConfigurationError(
            f"{where}.client_cert {cert_path}: pas geldig vanaf {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    password_file = profile.client_key_password_file

    def password() -> bytes:
        # called by OpenSSL only for an encrypted key; without a password file OpenSSL would
        # otherwise ask for one on the terminal, and a server has none
        if password_file is None:
            raise ConfigurationError(
                f"{where}.client_key {key_path}: de sleutel is versleuteld; zet client_key_password_file"
            )
        _readable(where, "client_key_password_file", password_file)
        return password_file.read_bytes().strip()

    try:
        context.load_cert_chain(str(cert_path), str(key_path), password=password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigurationError(
                f"{where}.client_key {key_path}: hoort niet bij het certificaat {cert_path}"
            ) from exc
        raise ConfigurationError(
            f"{where}.client_key {key_path}: niet te laden bij {cert_path} ({exc.reason or exc})"
        ) from exc
    return leaf.not_valid_after_utc


def _readable(where: str, field: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigurationError(f"{where}.{field} {path}: niet leesbaar ({exc.strerror or exc})") from exc


class OutboundTLS:
    """The outgoing TLS profiles of one hub process: loaded (and checked) when built, chosen per partner."""

    def __init__(self, profiles: Mapping[str, OutboundTLSProfile], *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
        now = self.clock()
        self.profiles = {name: load_profile(name, profile, now=now) for name, profile in profiles.items()}

    def choose(self, partner_id: str, config: Mapping[str, object]) -> ClientTLS | None:
        """The profile a partner's adapter config names (``tls_profile``), else ``default`` when
        configured; None: the plain client.

        Raises:
            ConfigurationError: the partner names a profile that is not configured.
        """
        name = config.get(CONFIG_KEY)
        if name is None:
            return self.profiles.get(DEFAULT_PROFILE)
        if name == NO_PROFILE:
            return None
        found = self.profiles.get(name) if isinstance(name, str) else None
        if found is None:
            known = sorted(self.profiles)
            hint = difflib.get_close_matches(str(name), known, n=1)
            extra = f" Bedoeld: {hint[0]!r}?" if hint else ""
            raise ConfigurationError(
                f"partner {partner_id}: tls_profile {name!r} is niet ingesteld "
                f"(KNOOPPUNT_OUTBOUND_TLS__<NAAM>__...; ingesteld: {', '.join(known) or 'geen'}).{extra}"
            )
        return found

    def status(self) -> dict[str, Any] | None:
        """For ``/health`` (``checks.tls.outbound``); None without profiles."""
        if not self.profiles:
            return None
        now = self.clock()
        profiles = {name: profile.status(now) for name, profile in self.profiles.items()}
        return {"ok": all(p["ok"] for p in profiles.values()), "profiles": profiles}
