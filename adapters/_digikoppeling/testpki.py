"""A throw-away PKI for tests, simulators and ``make run``: a CA and one certificate per party.

Generated on first use into a directory (``var/testpki`` for the demo, a
``tmp_path`` in tests) and never committed. Each party's certificate carries
its OIN in the subject serialNumber, as PKIoverheid certificates do::

    <dir>/ca.pem              the test CA (trust anchor)
    <dir>/<party>.key.pem     the party's private key (PKCS#8, unencrypted, mode 0600)
    <dir>/<party>.cert.pem    its certificate, issued by the CA
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from hub.identifiers import parse_oin

_KEY_BITS = 2048


@dataclass(frozen=True, slots=True)
class DemoParty:
    """One party's files."""

    name: str
    oin: str
    key_file: Path
    cert_file: Path


@dataclass(frozen=True, slots=True)
class DemoPki:
    """The CA bundle and the parties issued by it."""

    ca_file: Path
    parties: Mapping[str, DemoParty]


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _load_ca(directory: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate] | None:
    key_file, cert_file = directory / "ca.key.pem", directory / "ca.pem"
    if not (key_file.exists() and cert_file.exists()):
        return None
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    if not isinstance(key, rsa.RSAPrivateKey) or certificate.not_valid_after_utc < datetime.now(UTC) + timedelta(
        days=1
    ):
        return None
    return key, certificate


def issue(
    ca_key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    oin: str | None,
    *,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime | None = None,
    days: int = 30,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A party certificate (OIN in subject serialNumber) signed by the CA."""
    key = key or _key()
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)]
    if oin is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, oin))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return key, certificate


def new_ca(common_name: str = "Knooppunt Test CA", days: int = 365) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed CA key and certificate."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.now(UTC) - timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def ensure_test_pki(directory: str | Path, parties: Mapping[str, str]) -> DemoPki:
    """Create (or reuse) a CA and a key and certificate for each ``name -> OIN`` in ``parties``.

    Existing files are reused while the CA is valid and the party's OIN is
    unchanged, so the hub and the simulators started separately share one PKI.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    loaded = _load_ca(root)
    if loaded is None:
        ca_key, ca_cert = new_ca()
        _write_key(root / "ca.key.pem", ca_key)
        (root / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        for stale in root.glob("*.cert.pem"):
            stale.unlink()
    else:
        ca_key, ca_cert = loaded
    result: dict[str, DemoParty] = {}
    for name, raw_oin in parties.items():
        oin = parse_oin(raw_oin)
        key_file, cert_file = root / f"{name}.key.pem", root / f"{name}.cert.pem"
        if not _reusable(cert_file, key_file, oin, ca_cert):
            key, certificate = issue(ca_key, ca_cert, name, oin)
            _write_key(key_file, key)
            cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        result[name] = DemoParty(name=name, oin=oin, key_file=key_file, cert_file=cert_file)
    return DemoPki(ca_file=root / "ca.pem", parties=result)


def _reusable(cert_file: Path, key_file: Path, oin: str, ca_cert: x509.Certificate) -> bool:
    if not (cert_file.exists() and key_file.exists()):
        return False
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    serials = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return (
        certificate.issuer == ca_cert.subject
        and len(serials) == 1
        and serials[0].value == oin
        and certificate.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)
    )
