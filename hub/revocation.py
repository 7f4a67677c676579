"""Revoked partner certificates: certificate revocation lists (CRLs) checked at the TLS handshake.

A partner whose key leaked, or who left the chain, has its certificate revoked by its CA
long before the certificate expires. With ``tls.crl_files`` set, the hub loads the CRLs
of the CAs in ``tls.ca_certs`` into its TLS context and OpenSSL refuses a revoked
certificate at the handshake (``VERIFY_CRL_CHECK_LEAF``): a revoked partner reaches no
route, as a certificate of another CA does not. The same holds the other way: an outgoing
TLS profile's ``crl_files`` (``outbound_tls.<profile>``, :mod:`hub.tls`) make the hub refuse
a partner *server* whose certificate was revoked.

Why this shape:

- **Fail closed, and say so at start-up.** With the check on, OpenSSL refuses every
  certificate of a CA it has no CRL for. So every CA in the bundle must have a CRL, and
  each CRL must be signed by a CA in the bundle (else OpenSSL would ignore it without a
  word): a hub that cannot check starts with a :class:`ConfigurationError` naming the CA
  or the file, instead of refusing every partner at the handshake.
- **Refreshed without a restart.** CAs publish a new CRL every few hours or days (the
  ``nextUpdate`` in each one); operators fetch it into the same file (cron, a sidecar).
  Every ``tls.crl_refresh_seconds`` the files are read again when they changed, and a new
  CRL is added to the live TLS context: for one CA OpenSSL uses the CRL with the latest
  ``thisUpdate``, so an added CRL takes over from the older one at the next handshake.
- **A bad refresh changes nothing.** A changed file that does not parse, is not signed by
  its CA, or is older than the CRL already loaded (a rollback would un-revoke) keeps the
  loaded CRLs and is reported: in the log and in ``/health`` (``checks.tls``).
- **An expired CRL is an outage, reported.** OpenSSL refuses the certificates of a CA
  whose CRL passed its ``nextUpdate``; ``/health`` then answers 503 naming the CA, so
  monitoring sees it before the partners call.

OCSP is not used: the CAs of this chain (PKIoverheid, the Belgian federal CAs) publish
CRLs, and a CRL needs no call to the CA during a partner's handshake.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hub.errors import ConfigurationError

log = structlog.get_logger(__name__)

_PEM_CRL = b"-----BEGIN X509 CRL-----"


@dataclass(frozen=True, slots=True)
class Crl:
    """One loaded CRL: whose it is, how fresh, and its PEM (what OpenSSL is given)."""

    path: Path
    issuer: str
    this_update: dt.datetime
    next_update: dt.datetime | None
    revoked: int
    pem: bytes

    def expired(self, now: dt.datetime) -> bool:
        return self.next_update is not None and self.next_update < now

    def as_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "issuer": self.issuer,
            "thisUpdate": self.this_update.isoformat(),
            "nextUpdate": self.next_update.isoformat() if self.next_update else None,
            "revoked": self.revoked,
            "expired": self.expired(now),
        }


def read_authorities(ca_certs: Path, setting: str = "tls") -> list[x509.Certificate]:
    """The CA certificates of the bundle peer certificates must chain to (``setting``: the
    settings group named in errors, ``tls`` or ``outbound_tls.<profile>``)."""
    try:
        return list(x509.load_pem_x509_certificates(ca_certs.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{setting}.ca_certs {ca_certs}: geen leesbare CA-certificaten ({exc})") from exc


def read_crls(path: Path, authorities: list[x509.Certificate], setting: str = "tls") -> list[Crl]:
    """The CRLs in one file (PEM, one or more, or DER), each checked against its CA.

    Raises:
        ConfigurationError: unreadable, not a CRL, or not signed by a CA of ``authorities``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"CRL {path}: niet leesbaar ({exc.strerror or exc})") from exc
    try:
        if _PEM_CRL in data:
            blocks = [_PEM_CRL + part for part in data.split(_PEM_CRL)[1:]]
            lists = [x509.load_pem_x509_crl(block) for block in blocks]
        else:
            lists = [x509.load_der_x509_crl(data)]
    except ValueError as exc:
        raise ConfigurationError(f"CRL {path}: geen geldige certificaatintrekkingslijst ({exc})") from exc
    loaded = []
    for crl in lists:
        issuer = crl.issuer.rfc4514_string()
        if not any(ca.subject == crl.issuer and _signed(crl, ca) for ca in authorities):
            raise ConfigurationError(
                f"CRL {path}: uitgegeven door {issuer}, maar niet ondertekend door een CA uit {setting}.ca_certs"
            )
        loaded.append(
            Crl(
                path=path,
                issuer=issuer,
                this_update=crl.last_update_utc,
                next_update=crl.next_update_utc,
                revoked=len(crl),
                pem=crl.public_bytes(Encoding.PEM),
            )
        )
    return loaded


def _signed(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


class Revocation:
    """The CRLs of one hub process and the TLS contexts they are loaded into.

    Built (and checked) when the hub's TLS options are made, before it listens;
    :meth:`install` switches a context's revocation check on and loads the CRLs;
    :meth:`refresh` (every ``refresh_seconds`` on a daemon thread, from the first install)
    adds CRLs that changed to every installed context.
    """

    def __init__(
        self,
        files: list[Path],
        ca_certs: Path,
        *,
        refresh_seconds: float = 300.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        setting: str = "tls",
    ) -> None:
        self.files = list(files)
        self.refresh_seconds = refresh_seconds
        self.setting = setting
        self._clock = clock
        self._authorities = read_authorities(ca_certs, setting)
        self._lock = threading.Lock()
        self._contexts: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._thread: threading.Thread | None = None
        self.crls: dict[Path, list[Crl]] = {}
        self.errors: dict[Path, str] = {}
        for path in self.files:
            self._stamps[path] = _stamp(path)
            self.crls[path] = read_crls(path, self._authorities, setting)
        covered = {crl.issuer for crls in self.crls.values() for crl in crls}
        missing = sorted({ca.subject.rfc4514_string() for ca in self._authorities} - covered)
        if missing:
            names = "; ".join(missing)
            raise ConfigurationError(
                f"{setting}.crl_files: geen CRL voor {names} (zonder CRL weigert de hub al hun certificaten)"
            )

    # -- the TLS contexts ------------------------------------------------------------

    def install(self, context: ssl.SSLContext) -> ssl.SSLContext:
        """Check revocation on ``context`` and load the current CRLs into it."""
        with self._lock:
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
            for crls in self.crls.values():
                for crl in crls:
                    _load(context, crl)
            self._contexts.add(context)
            if self._thread is None:
                self._thread = threading.Thread(target=self._refresh_loop, name="knooppunt-crl", daemon=True)
                self._thread.start()
        return context

    def refresh(self) -> list[Path]:
        """Read the files that changed; add their newer CRLs to every context -> the files taken."""
        taken = []
        with self._lock:
            for path in self.files:
                stamp = _stamp(path)
                if stamp == self._stamps.get(path):
                    continue
                self._stamps[path] = stamp
                try:
                    fresh = read_crls(path, self._authorities, self.setting)
                    self._no_rollback(path, fresh)
                except ConfigurationError as exc:
                    self.errors[path] = str(exc)
                    log.error("crl_refresh_refused", file=str(path), error=str(exc))
                    continue
                self.errors.pop(path, None)
                self.crls[path] = fresh
                for context in list(self._contexts):
                    for crl in fresh:
                        _load(context, crl)
                taken.append(path)
                log.info("crl_refreshed", file=str(path), issuers=[c.issuer for c in fresh])
        return taken

    def _no_rollback(self, path: Path, fresh: list[Crl]) -> None:
        """A changed list must be later than the loaded one of its CA: an older one would un-revoke,
        and one with the same thisUpdate OpenSSL would never use (it keeps the first it has)."""
        loaded = {crl.issuer: crl for crl in self.crls.get(path, [])}
        for crl in fresh:
            before = loaded.get(crl.issuer)
            if before is None or crl.this_update > before.this_update or crl.pem == before.pem:
                continue
            how = "ouder dan" if crl.this_update < before.this_update else "even oud als, maar anders dan"
            raise ConfigurationError(
                f"CRL {path}: {how} de geladen lijst van {crl.issuer} (thisUpdate {crl.this_update.isoformat()} "
                f"tegen {before.this_update.isoformat()}); de geladen blijft gelden"
            )

    def _refresh_loop(self) -> None:
        while True:
            time.sleep(self.refresh_seconds)
            with self._lock:
                if not self._contexts:  # every server using these CRLs has stopped
                    self._thread = None
                    return
            try:
                self.refresh()
            except Exception:  # the loop must outlive one bad read; refresh logs what it refuses
                log.exception("crl_refresh_failed")

    # -- what /health shows ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For ``/health``: every loaded CRL, expired ones and refused refreshes (then not ok)."""
        now = self._clock()
        with self._lock:
            newest: dict[str, Crl] = {}
            for crls in self.crls.values():
                for crl in crls:
                    if crl.issuer not in newest or crl.this_update > newest[crl.issuer].this_update:
                        newest[crl.issuer] = crl
            expired = sorted(issuer for issuer, crl in newest.items() if crl.expired(now))
            errors = {str(path): error for path, error in self.errors.items()}
            return {
                "ok": not expired and not errors,
                "revocationCheck": "crl",
                "crls": [crl.as_json(now) for crl in newest.values()],
                "expired": expired,
                "refreshErrors": errors,
            }


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def _load(context: ssl.SSLContext, crl: Crl) -> None:
    # The ssl module loads CRLs only from a file (cadata takes certificates alone).
    fd, name = tempfile.mkstemp(suffix=".pem", prefix="knooppunt-crl-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(crl.pem)
        context.load_verify_locations(cafile=name)
    finally:
        os.unlink(name)


_BY_SETTINGS: dict[tuple[tuple[Path, ...], Path, float], Revocation] = {}
_BY_SETTINGS_LOCK = threading.Lock()


def revocation_for(
    files: list[Path], ca_certs: Path | None, refresh_seconds: float, setting: str = "tls"
) -> Revocation | None:
    """The process's :class:`Revocation` for these settings (one per process, shared by the TLS
    contexts and ``/health``); None when no CRLs are configured. ``setting`` names the settings
    group in errors: ``tls`` (partners' client certificates) or ``outbound_tls.<profile>``
    (partners' server certificates, hub/tls.py)."""
    if not files:
        return None
    if ca_certs is None:
        raise ConfigurationError(f"{setting}.crl_files vraagt {setting}.ca_certs: de CA's waarvan de CRL's zijn")
    key = (tuple(Path(f).resolve() for f in files), Path(ca_certs).resolve(), refresh_seconds)
    with _BY_SETTINGS_LOCK:
        found = _BY_SETTINGS.get(key)
        if found is None:
            found = _BY_SETTINGS[key] = Revocation(
                list(key[0]), key[1], refresh_seconds=refresh_seconds, setting=setting
            )
        return found
