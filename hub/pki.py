"""A development PKI: a CA, server certificates (the hub's, a simulator's) and client certificates.

For demos and tests only (``knooppunt pki``): real partners bring certificates
from PKIoverheid (NL) or a Belgian qualified CA. Partner certificates carry
the OIN (NL) or KBO number (BE) the way those do: in ``serialNumber`` and in
``organizationIdentifier`` (ETSI EN 319 412-1: ``NTRNL-<OIN>``, ``NTRBE-<KBO>``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")


@dataclass(frozen=True, slots=True)
class Issued:
    """Where a certificate and its key were written."""

    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return Issued(cert_path, key_path)


def _load(issued: Issued) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    key = serialization.load_pem_private_key(issued.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the development CA key must be an EC key")
    return cert, key


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def create_ca(directory: Path, name: str = "Knooppunt ontwikkel-CA") -> Issued:
    """A self-signed CA (10 years) in ``ca.pem`` / ``ca-key.pem``."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key.public_key(), 3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _write(directory, "ca", cert, key)


def _leaf(
    ca: Issued,
    directory: Path,
    name: str,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> Issued:
    ca_cert, ca_key = _load(ca)
    key = _key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), 825)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _write(directory, name, builder.sign(ca_key, hashes.SHA256()), key)


def create_server(
    ca: Issued, directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), *, name: str = "server"
) -> Issued:
    """A server certificate for ``hosts`` in ``<name>.pem`` / ``<name>-key.pem``: the hub's
    (``server``), or a partner simulator's that the hub calls with an outgoing TLS profile."""
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    return _leaf(ca, directory, name, subject, ExtendedKeyUsageOID.SERVER_AUTH, sans)


def create_partner(
    ca: Issued, directory: Path, partner_id: str, *, oin: str | None = None, kbo: str | None = None, name: str = ""
) -> Issued:
    """A client certificate ``<partner_id>.pem`` naming its OIN or KBO number (or neither: pin it):
    a partner's, or the hub's own for an outgoing TLS profile."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, partner_id)]
    if name:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, name))
    if oin:
        attributes += [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, oin),
            x509.NameAttribute(ORGANIZATION_IDENTIFIER, f"NTRNL-{oin}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
        ]
    elif kbo:
        attributes += [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, kbo),
            x509.NameAttribute(ORGANIZATION_IDENTIFIER, f"NTRBE-{kbo}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
        ]
    return _leaf(ca, directory, partner_id, x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH, [])


def create_crl(
    ca: Issued,
    path: Path,
    revoked: tuple[Path, ...] = (),
    *,
    this_update: dt.datetime | None = None,
    valid_for: dt.timedelta = dt.timedelta(days=7),
) -> Path:
    """A CRL of ``ca`` revoking the certificates at ``revoked`` (PEM files), valid for
    ``valid_for`` from ``this_update`` (now), written to ``path`` (``KNOOPPUNT_TLS__CRL_FILES``).

    Certificates already revoked by a CRL at ``path`` stay revoked: revoking is for good.
    The file is replaced in one rename, so a hub reading it never sees half a list.
    """
    ca_cert, ca_key = _load(ca)
    now = this_update or dt.datetime.now(dt.UTC)
    serials: dict[int, dt.datetime] = {}
    if path.is_file():
        previous = x509.load_pem_x509_crl(path.read_bytes())
        for entry in previous:
            serials[entry.serial_number] = entry.revocation_date_utc
        # for one CA OpenSSL uses the CRL with the latest thisUpdate (whole seconds): a new list
        # must be later than the one it replaces, or a hub that loaded both keeps the old one
        now = max(now, previous.last_update_utc + dt.timedelta(seconds=1))
    for cert_path in revoked:
        serials.setdefault(x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number, now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + valid_for)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    for serial, when in serials.items():
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    part.replace(path)
    return path


def fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint (hex) of a PEM certificate, for ``KNOOPPUNT_TLS__FINGERPRINTS``."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()


def trust(ca_file: Path | None) -> ssl.SSLContext | bool:
    """What an HTTPS client verifies a server against: ``ca_file`` (e.g. the development CA of
    `make run-tls`) when given, else the system's trusted authorities (httpx's ``verify``)."""
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True
