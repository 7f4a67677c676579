"""Two-way TLS to partners (outgoing TLS profiles, hub/tls.py) over real TLS on loopback.

A partner server that requires a client certificate of its CA records the certificate it saw;
the hub calls it through its real path: the profile's context, hub.http.partner_client and the
rest-push adapter built by hub.registry (or by the Hub itself, from the partner's config).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from hub import pki
from hub.errors import ConfigurationError, PartnerUnavailable
from hub.http import partner_client
from hub.loopback import free_port
from hub.partners import Partner
from hub.ports import Adapter
from hub.registry import build
from hub.service import Hub
from hub.settings import OutboundTLSProfile, Settings
from hub.tls import OutboundTLS
from tests.conftest import make_settings, start_live_hub
from tests.contract.adapter_contract import sample_delivery
from tests.security.conftest import expired_certificate

HUB_OIN = "00000001234567890000"


@dataclass(frozen=True)
class OutPKI:
    """The partner's CA, the hub's client certificate and partner server certificates."""

    directory: Path
    ca: pki.Issued
    hub: pki.Issued  # the hub's own client certificate, issued by the partner's CA
    server: pki.Issued  # the partner's server certificate (127.0.0.1)
    revoked_server: pki.Issued  # same CA, revoked in crl
    crl: Path
    other_ca: pki.Issued
    other_server: pki.Issued  # a server certificate of a CA the profile does not trust

    def profile(self, **changes: Any) -> OutboundTLSProfile:
        values: dict[str, Any] = {"client_cert": self.hub.cert, "client_key": self.hub.key, "ca_certs": self.ca.cert}
        values.update(changes)
        return OutboundTLSProfile(**values)


@pytest.fixture(scope="module")
def out_pki(tmp_path_factory: pytest.TempPathFactory) -> OutPKI:
    directory = tmp_path_factory.mktemp("outbound-pki")
    ca = pki.create_ca(directory, "Partner-CA")
    revoked = pki.create_server(ca, directory, ("127.0.0.1",), name="revoked-sim")
    other_dir = directory / "other"
    other_ca = pki.create_ca(other_dir, "Andere CA")
    return OutPKI(
        directory=directory,
        ca=ca,
        hub=pki.create_partner(ca, directory, "knooppunt", oin=HUB_OIN),
        server=pki.create_server(ca, directory, ("127.0.0.1",), name="partner-sim"),
        revoked_server=revoked,
        crl=pki.create_crl(ca, directory / "crl.pem", (revoked.cert,)),
        other_ca=other_ca,
        other_server=pki.create_server(other_ca, other_dir, ("127.0.0.1",), name="partner-sim"),
    )


@dataclass
class PartnerServer:
    """An HTTPS partner on 127.0.0.1 that requires a client certificate of ``ca``."""

    url: str
    seen: list[bytes] = field(default_factory=list)  # the DER client certificate of each request


def _handler(seen: list[bytes]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int) -> None:
            tls = isinstance(self.connection, ssl.SSLSocket)
            seen.append((self.connection.getpeercert(binary_form=True) or b"") if tls else b"")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("X-Reference", "ontvangen")
            self.end_headers()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(202)

        def do_GET(self) -> None:
            self._answer(200)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextlib.contextmanager
def _serve(handler: type[http.server.BaseHTTPRequestHandler], context: ssl.SSLContext | None) -> Iterator[str]:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    scheme = "http"
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _server_context(server_cert: pki.Issued, client_ca: pki.Issued) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(server_cert.cert), str(server_cert.key))
    context.verify_mode = ssl.CERT_REQUIRED  # MAGDA and Digikoppeling: no certificate, no connection
    context.load_verify_locations(cafile=str(client_ca.cert))
    return context


@pytest.fixture
def partner(out_pki: OutPKI, request: pytest.FixtureRequest) -> Iterator[PartnerServer]:
    """The partner; ``@pytest.mark.parametrize("partner", [name], indirect=True)`` picks its certificate."""
    server_cert = getattr(out_pki, getattr(request, "param", "server"))
    seen: list[bytes] = []
    with _serve(_handler(seen), _server_context(server_cert, out_pki.ca)) as url:
        yield PartnerServer(url, seen)


async def _deliver_through(outbound: OutboundTLS, config: dict[str, Any]) -> str:
    """Build rest-push for the partner as the hub does and deliver one message -> the receipt detail."""
    profile = outbound.choose("partner", config)
    http = partner_client(5.0, ssl_context=profile.context if profile else None)
    try:
        adapter = build("rest-push", "partner", config, http)
        receipt = await adapter.deliver(sample_delivery())
        return receipt.detail
    finally:
        await http.aclose()


def _fingerprint(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()


# -- (a) with the profile the partner sees the hub's certificate ---------------------------------


def test_with_a_profile_the_partner_sees_the_hubs_certificate(out_pki: OutPKI, partner: PartnerServer) -> None:
    outbound = OutboundTLS({"magda": out_pki.profile()})
    detail = asyncio.run(_deliver_through(outbound, {"url": partner.url, "tls_profile": "magda"}))
    assert detail == "HTTP 202"
    assert [_fingerprint(der) for der in partner.seen] == [pki.fingerprint(out_pki.hub.cert)]
    subject = x509.load_der_x509_certificate(partner.seen[0]).subject
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == HUB_OIN


def test_the_default_profile_serves_partners_that_name_none_and_none_opts_out(
    out_pki: OutPKI, partner: PartnerServer
) -> None:
    outbound = OutboundTLS({"default": out_pki.profile()})
    assert asyncio.run(_deliver_through(outbound, {"url": partner.url})) == "HTTP 202"
    assert [_fingerprint(der) for der in partner.seen] == [pki.fingerprint(out_pki.hub.cert)]
    with pytest.raises(PartnerUnavailable, match="niet bereikbaar"):
        asyncio.run(_deliver_through(outbound, {"url": partner.url, "tls_profile": "none"}))


# -- (b) without a profile: no certificate, the handshake fails, the partner is unavailable ------


def test_without_a_profile_the_partner_refuses_and_the_adapter_reports_it_unavailable(
    out_pki: OutPKI, partner: PartnerServer
) -> None:
    # the hub without profiles trusts certifi only: give it the partner's CA but no certificate,
    # so it is the missing client certificate that fails the handshake
    outbound = OutboundTLS({"trust-only": OutboundTLSProfile(ca_certs=out_pki.ca.cert)})
    with pytest.raises(PartnerUnavailable, match="partner is niet bereikbaar"):
        asyncio.run(_deliver_through(outbound, {"url": partner.url, "tls_profile": "trust-only"}))
    with pytest.raises(PartnerUnavailable, match="partner is niet bereikbaar"):  # today's client: certifi
        asyncio.run(_deliver_through(OutboundTLS({}), {"url": partner.url}))
    assert partner.seen == []  # no request reached the partner


def test_a_partner_without_a_profile_still_works_over_plain_http(out_pki: OutPKI) -> None:
    seen: list[bytes] = []
    with _serve(_handler(seen), None) as url:
        outbound = OutboundTLS({"magda": out_pki.profile()})  # configured, but this partner names none
        assert outbound.choose("partner", {"url": url}) is None
        assert asyncio.run(_deliver_through(outbound, {"url": url})) == "HTTP 202"
    assert len(seen) == 1


# -- (c) a server certificate of a CA outside ca_certs is refused ---------------------------------


@pytest.mark.parametrize("partner", ["other_server"], indirect=True)
def test_a_server_certificate_of_another_ca_is_refused(out_pki: OutPKI, partner: PartnerServer) -> None:
    outbound = OutboundTLS({"magda": out_pki.profile()})
    with pytest.raises(PartnerUnavailable, match="niet bereikbaar"):
        asyncio.run(_deliver_through(outbound, {"url": partner.url, "tls_profile": "magda"}))
    assert partner.seen == []


def test_ca_certs_replaces_certifi(out_pki: OutPKI) -> None:
    loaded = OutboundTLS({"magda": out_pki.profile()}).profiles["magda"].context.get_ca_certs()
    assert [dict(x[0] for x in c["subject"])["commonName"] for c in loaded] == ["Partner-CA"]


# -- (d) a revoked server certificate is refused, a valid one of the same CA accepted ------------


@pytest.mark.parametrize("partner", ["revoked_server"], indirect=True)
def test_a_revoked_server_certificate_is_refused(out_pki: OutPKI, partner: PartnerServer) -> None:
    outbound = OutboundTLS({"magda": out_pki.profile(crl_files=[out_pki.crl])})
    with pytest.raises(PartnerUnavailable, match="niet bereikbaar"):
        asyncio.run(_deliver_through(outbound, {"url": partner.url, "tls_profile": "magda"}))
    assert partner.seen == []
    # without the CRL the same server is accepted: it is the revocation that refused it
    plain = OutboundTLS({"magda": out_pki.profile()})
    assert asyncio.run(_deliver_through(plain, {"url": partner.url, "tls_profile": "magda"})) == "HTTP 202"


def test_a_server_certificate_that_is_not_revoked_is_accepted_with_the_crl(
    out_pki: OutPKI, partner: PartnerServer
) -> None:
    outbound = OutboundTLS({"magda": out_pki.profile(crl_files=[out_pki.crl])})
    assert asyncio.run(_deliver_through(outbound, {"url": partner.url, "tls_profile": "magda"})) == "HTTP 202"
    crl = outbound.status()["profiles"]["magda"]["crl"]  # type: ignore[index]
    assert (crl["ok"], crl["crls"][0]["issuer"], crl["crls"][0]["revoked"]) == (True, "CN=Partner-CA", 1)


# -- the Hub builds each partner's adapter with its profile's client ------------------------------


def test_the_hub_gives_each_partner_the_client_of_its_profile(
    tmp_path: Path, out_pki: OutPKI, partner: PartnerServer
) -> None:
    settings = make_settings(tmp_path, outbound_tls={"magda": out_pki.profile()})

    async def run() -> tuple[Any, ...]:
        hub = Hub(settings)
        await hub.start(None)
        try:
            with_profile = hub.adapter_for(_partner("magda-partner", partner.url, tls_profile="magda"))
            other = hub.adapter_for(_partner("other", partner.url, tls_profile="magda"))
            plain = hub.adapter_for(_partner("plain", partner.url))
            assert isinstance(with_profile, Adapter)
            assert isinstance(plain, Adapter)
            assert other is not None
            receipt = await with_profile.deliver(sample_delivery())
            with pytest.raises(PartnerUnavailable):
                await plain.deliver(sample_delivery())
            clients = (with_profile._http, other._http, plain._http)  # type: ignore[attr-defined]
            return receipt.detail, clients, hub.http
        finally:
            await hub.stop()

    detail, (a, b, c), plain_client = asyncio.run(run())
    assert detail == "HTTP 202"
    assert a is b  # one client per profile, shared by its partners
    assert a is not c
    assert c is plain_client  # a partner without a profile keeps the hub's one client
    assert [_fingerprint(der) for der in partner.seen] == [pki.fingerprint(out_pki.hub.cert)]


def _partner(partner_id: str, url: str, **config: Any) -> Partner:
    return Partner(
        id=partner_id, name=partner_id, role="partner", adapter="rest-push", adapter_config={"url": url, **config}
    )


# -- (e) bad configuration: a clear error naming the profile and the file -------------------------


def test_an_unknown_profile_fails_the_adapter_build_with_a_hint(tmp_path: Path, out_pki: OutPKI) -> None:
    outbound = OutboundTLS({"magda": out_pki.profile()})
    with pytest.raises(ConfigurationError, match=r"partner p: tls_profile 'magdaa' is niet ingesteld.*'magda'\?"):
        outbound.choose("p", {"tls_profile": "magdaa"})
    settings = make_settings(tmp_path, outbound_tls={"magda": out_pki.profile()})

    async def run() -> None:
        hub = Hub(settings)
        await hub.start(None)
        try:
            hub.adapter_for(_partner("p", "https://127.0.0.1:1", tls_profile="digikoppeling"))
        finally:
            await hub.stop()

    with pytest.raises(ConfigurationError, match="tls_profile 'digikoppeling' is niet ingesteld"):
        asyncio.run(run())


def test_a_missing_file_fails_at_start_naming_profile_and_file(tmp_path: Path, out_pki: OutPKI) -> None:
    missing = tmp_path / "weg.pem"
    for field_name in ("client_cert", "client_key", "ca_certs"):
        with pytest.raises(ConfigurationError, match=rf"outbound_tls\.magda\.{field_name} {missing}: niet leesbaar"):
            OutboundTLS({"magda": out_pki.profile(**{field_name: missing})})
    settings = make_settings(tmp_path, outbound_tls={"magda": out_pki.profile(client_cert=missing)})
    with pytest.raises(ConfigurationError, match=r"outbound_tls\.magda\.client_cert"):
        asyncio.run(Hub(settings).start(None))


def test_a_key_of_another_certificate_is_refused(out_pki: OutPKI) -> None:
    with pytest.raises(ConfigurationError, match=r"outbound_tls\.magda\.client_key .*hoort niet bij het certificaat"):
        OutboundTLS({"magda": out_pki.profile(client_key=out_pki.server.key)})


def test_an_encrypted_key_needs_its_password_file(tmp_path: Path, out_pki: OutPKI) -> None:
    key = serialization.load_pem_private_key(out_pki.hub.key.read_bytes(), password=None)
    encrypted = tmp_path / "hub-key.enc.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"geheim"),
        )
    )
    with pytest.raises(ConfigurationError, match="versleuteld; zet client_key_password_file"):
        OutboundTLS({"magda": out_pki.profile(client_key=encrypted)})
    password = tmp_path / "password"
    password.write_text("geheim\n")
    loaded = OutboundTLS({"magda": out_pki.profile(client_key=encrypted, client_key_password_file=password)})
    assert loaded.profiles["magda"].client_cert == out_pki.hub.cert


def test_an_expired_client_certificate_fails_at_start(tmp_path: Path, out_pki: OutPKI) -> None:
    expired = expired_certificate(out_pki.ca, tmp_path, "expired")
    with pytest.raises(ConfigurationError, match=rf"outbound_tls\.magda\.client_cert {expired.cert}: verlopen op"):
        OutboundTLS({"magda": out_pki.profile(client_cert=expired.cert, client_key=expired.key)})


def test_crls_must_cover_the_profiles_cas(out_pki: OutPKI) -> None:
    both = out_pki.directory / "both-cas.pem"
    both.write_bytes(out_pki.ca.cert.read_bytes() + out_pki.other_ca.cert.read_bytes())
    with pytest.raises(ConfigurationError, match=r"outbound_tls\.magda\.crl_files: geen CRL voor CN=Andere CA"):
        OutboundTLS({"magda": out_pki.profile(ca_certs=both, crl_files=[out_pki.crl])})


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        ({"none": {"ca_certs": "/x.pem"}}, "'none' is reserved"),
        ({"MAGDA": {"ca_certs": "/x.pem"}}, "profile names are lower-case"),
        ({"magda": {}}, "the profile sets nothing"),
        ({"magda": {"ca_certs": "/x.pem", "client_key": "/k.pem"}}, "__CLIENT_KEY is set but __CLIENT_CERT is not"),
        ({"magda": {"client_cert": "/c.pem", "crl_files": ["/crl.pem"]}}, "__CRL_FILES .* set it"),
    ],
)
def test_half_a_profile_is_refused_by_the_settings(tmp_path: Path, profiles: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_settings(tmp_path, outbound_tls=profiles)


def test_profiles_come_from_nested_environment_variables(monkeypatch: pytest.MonkeyPatch, out_pki: OutPKI) -> None:
    monkeypatch.setenv("KNOOPPUNT_OUTBOUND_TLS__MAGDA__CLIENT_CERT", str(out_pki.hub.cert))
    monkeypatch.setenv("KNOOPPUNT_OUTBOUND_TLS__MAGDA__CLIENT_KEY", str(out_pki.hub.key))
    monkeypatch.setenv("KNOOPPUNT_OUTBOUND_TLS__MAGDA__CRL_FILES", f'["{out_pki.crl}"]')
    monkeypatch.setenv("KNOOPPUNT_OUTBOUND_TLS__MAGDA__CA_CERTS", str(out_pki.ca.cert))
    assert Settings().outbound_tls == {"magda": out_pki.profile(crl_files=[out_pki.crl])}


# -- /health: the client certificate's days left; an expired one is unhealthy ---------------------


def test_health_reports_days_left_and_an_expired_client_certificate_is_down(out_pki: OutPKI) -> None:
    now = dt.datetime.now(dt.UTC)
    clock = [now]
    outbound = OutboundTLS({"magda": out_pki.profile(crl_files=[out_pki.crl])}, clock=lambda: clock[0])
    status = outbound.status()
    assert status is not None
    magda = status["profiles"]["magda"]
    assert (status["ok"], magda["ok"], magda["daysLeft"], magda["clientCert"]) == (
        True,
        True,
        824,
        str(out_pki.hub.cert),
    )
    assert magda["crl"]["revocationCheck"] == "crl"
    clock[0] = now + dt.timedelta(days=826)  # the certificate expired while the hub ran
    status = outbound.status()
    assert status is not None
    assert (status["ok"], status["profiles"]["magda"]["expired"]) == (False, True)
    assert OutboundTLS({}).status() is None


def test_health_shows_the_profiles_and_answers_503_once_the_client_certificate_expired(
    tmp_path: Path, out_pki: OutPKI
) -> None:
    settings = make_settings(tmp_path, outbound_tls={"magda": out_pki.profile(crl_files=[out_pki.crl])})
    live = start_live_hub(settings)
    try:
        answer = httpx.get(f"{live.url}/health", timeout=10)
        assert answer.status_code == 200
        tls = answer.json()["checks"]["tls"]
        magda = tls["outbound"]["profiles"]["magda"]
        assert (tls["ok"], magda["daysLeft"], magda["crl"]["crls"][0]["issuer"]) == (True, 824, "CN=Partner-CA")
        # the certificate expires while the hub runs: the hub's clock moves past its notAfter
        hub: Hub = live.thread.servers[0].config.app.state.hub
        assert hub.outbound is not None
        hub.outbound.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=826)
        answer = httpx.get(f"{live.url}/health", timeout=10)
        assert answer.status_code == 503
        assert answer.json()["checks"]["tls"]["outbound"]["profiles"]["magda"]["expired"] is True
    finally:
        live.stop()
