"""Fixtures for the security suite: a development PKI, hubs served over real TLS on loopback,
an OAuth2 signing key, and a module-wide hub for the slower property-based tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub import pki
from hub.api.tls import uvicorn_options
from hub.auth import new_signing_key
from hub.cli.runner import Simulated, demo_pki_dir, seed_demo
from hub.settings import OAuthSettings, Settings, TLSSettings
from tests.conftest import SIMULATED, LiveHub, ServerThread, bound_port, make_settings, start_live_hub


@dataclass(frozen=True)
class DevPKI:
    """A development CA, the hub's server certificate and partner certificates."""

    directory: Path
    ca: pki.Issued
    server: pki.Issued
    partners: dict[str, pki.Issued]
    rogue: pki.Issued  # issued by another CA: the hub must not trust it

    def client(self, base_url: str, partner: str | None = None, **kwargs: Any) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        if partner == "rogue":
            context.load_cert_chain(str(self.rogue.cert), str(self.rogue.key))
        elif partner is not None:
            issued = self.partners[partner]
            context.load_cert_chain(str(issued.cert), str(issued.key))
        return httpx.Client(base_url=base_url, verify=context, timeout=10, **kwargs)


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(directory)
    server = pki.create_server(ca, directory)
    partners = {
        "duo": pki.create_partner(ca, directory, "duo", oin="00000001003214345000"),
        "coa": pki.create_partner(ca, directory, "coa", oin="00000001003214345001"),
        "agii": pki.create_partner(ca, directory, "agii", kbo="0650989467"),
        # no OIN or KBO number: known by its pinned fingerprint only
        "gemeente-utrecht": pki.create_partner(ca, directory, "gemeente-utrecht"),
        # a certificate of the right CA for an organisation the hub does not know
        "stranger": pki.create_partner(ca, directory, "stranger", oin="00000009999999999999"),
    }
    rogue_dir = directory / "rogue"
    rogue_ca = pki.create_ca(rogue_dir, "Rogue CA")
    rogue = pki.create_partner(rogue_ca, rogue_dir, "duo", oin="00000001003214345000")
    return DevPKI(directory, ca, server, partners, rogue)


def tls_settings(dev_pki: DevPKI, client_cert: str = "optional") -> TLSSettings:
    return TLSSettings(
        certfile=dev_pki.server.cert,
        keyfile=dev_pki.server.key,
        ca_certs=dev_pki.ca.cert,
        client_cert=client_cert,  # type: ignore[arg-type]
        fingerprints={pki.fingerprint(dev_pki.partners["gemeente-utrecht"].cert): "gemeente-utrecht"},
    )


def start_tls_hub(settings: Settings) -> LiveHub:
    """Like tests.conftest.start_live_hub, served over HTTPS with the settings' TLS options."""
    from hub.api.app import create_app

    sims = {pid: Simulated(kind, 0).server(pid, pki_dir=demo_pki_dir(settings)) for pid, kind in SIMULATED.items()}
    sim_thread = ServerThread(list(sims.values()))
    sim_thread.start()
    ports = {pid: bound_port(server) for pid, server in sims.items()}
    setup = seed_demo(settings, ports=ports)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    settings = settings.model_copy(update={"public_url": f"https://127.0.0.1:{port}"})
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(settings)
    )
    thread = ServerThread([uvicorn.Server(config)], {0: listener})
    thread.start()
    return LiveHub(
        url=f"https://127.0.0.1:{port}",
        settings=settings,
        setup=setup,
        sim_urls={pid: f"http://127.0.0.1:{p}" for pid, p in ports.items()},
        sims=setup.simulators,
        thread=thread,
        sim_thread=sim_thread,
    )


@pytest.fixture(scope="session")
def signing_key() -> str:
    return new_signing_key()


@pytest.fixture
def tls_hub(tmp_path: Path, dev_pki: DevPKI, signing_key: str) -> Iterator[LiveHub]:
    settings = make_settings(
        tmp_path, tls=tls_settings(dev_pki), oauth=OAuthSettings(signing_key=signing_key), insz_test_numbers=True
    )
    hub = start_tls_hub(settings)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """One hub for a whole module (property-based tests send hundreds of requests)."""
    tmp = tmp_path_factory.mktemp("shared-hub")
    hub = start_live_hub(make_settings(tmp, insz_test_numbers=True))
    try:
        yield hub
    finally:
        hub.stop()


def expired_certificate(ca: pki.Issued, directory: Path, name: str, *, ip: str | None = None) -> pki.Issued:
    """A certificate of ``ca`` that expired 30 days ago (``ip``: a server certificate's address)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip or name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(past - dt.timedelta(days=365))
        .not_valid_after(past)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    issued = pki.Issued(directory / f"{name}.pem", directory / f"{name}-key.pem")
    issued.cert.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return issued
