"""Mutual TLS on loopback: the certificate identifies the partner; without a valid one, nothing."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from hub import demo, pki
from hub.auth import ClientCertificate, identifier_number
from hub.infomodel import InfoModel
from tests.conftest import LiveHub, make_settings
from tests.helpers import audit_rows, count_messages, xml_message
from tests.security.conftest import DevPKI, expired_certificate, start_tls_hub, tls_settings
from tests.security.corpus import soap_wrap


@pytest.mark.parametrize("partner", ["duo", "coa", "agii", "gemeente-utrecht"])
def test_certificate_alone_identifies_the_partner(tls_hub: LiveHub, dev_pki: DevPKI, partner: str) -> None:
    with dev_pki.client(tls_hub.url, partner) as client:
        assert client.get("/v1/inbox").status_code == 200
        # an invalid message is audited under the sender the certificate named
        assert client.post("/v1/berichten", json={}).status_code == 400
    [row] = audit_rows(tls_hub.settings, "refused")
    assert row["sender"] == partner


def test_message_sent_with_a_certificate_is_accepted_and_delivered(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    doc = demo.inburgeringsplicht(random.Random(7))
    with dev_pki.client(tls_hub.url, "duo") as client:
        response = client.post("/v1/berichten", json=doc)
    assert response.status_code == 202, response.text
    assert response.json()["receivers"] == ["gemeente-utrecht"]


def test_soap_with_a_certificate(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    doc = demo.inburgeringsplicht(random.Random(8))
    body = soap_wrap(xml_message(doc, InfoModel(tls_hub.settings.schemas_dir)))
    with dev_pki.client(tls_hub.url, "duo") as client:
        response = client.post("/soap/berichten", content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 200, response.text
    assert b"Accepted" in response.content


def test_no_certificate_and_no_token_gets_401_and_is_audited(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url) as client:
        response = client.post("/v1/berichten", json=demo.inburgeringsplicht(random.Random(1)))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    [row] = audit_rows(tls_hub.settings, "refused")
    assert row["sender"] is None
    assert row["detail"]["code"] == "authentication_failed"
    assert count_messages(tls_hub.settings) == 0


def test_certificate_of_an_unknown_organisation_is_refused_and_audited(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url, "stranger") as client:
        response = client.get("/v1/inbox")
    assert response.status_code == 401
    assert len(audit_rows(tls_hub.settings, "refused")) == 1


def test_certificate_of_another_ca_never_reaches_the_application(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with (
        dev_pki.client(tls_hub.url, "rogue") as client,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        client.get("/v1/inbox")
    assert audit_rows(tls_hub.settings, "refused") == []


def test_certificate_and_token_of_different_partners_are_refused(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    token = tls_hub.setup.tokens["coa"]
    with dev_pki.client(tls_hub.url, "duo", headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get("/v1/inbox")
    assert response.status_code == 401
    assert "verschillende partners" in response.json()["detail"]


def test_https_answers_carry_hsts(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url, "duo") as client:
        response = client.get("/v1/inbox")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_required_client_certificates_stop_clients_without_one_at_the_handshake(
    tmp_path: Path, dev_pki: DevPKI
) -> None:
    hub = start_tls_hub(make_settings(tmp_path, tls=tls_settings(dev_pki, client_cert="required")))
    try:
        with (
            dev_pki.client(hub.url) as client,
            pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        ):
            client.get("/health")
        with dev_pki.client(hub.url, "duo") as client:
            assert client.get("/v1/inbox").status_code == 200
    finally:
        hub.stop()


def test_subject_numbers_are_read_from_serial_number_and_organization_identifier(dev_pki: DevPKI) -> None:
    duo = ClientCertificate.from_pem(dev_pki.partners["duo"].cert.read_bytes())
    agii = ClientCertificate.from_pem(dev_pki.partners["agii"].cert.read_bytes())
    plain = ClientCertificate.from_pem(dev_pki.partners["gemeente-utrecht"].cert.read_bytes())
    assert duo.numbers == ("00000001003214345000",)
    assert agii.numbers == ("0650989467",)
    assert plain.numbers == ()
    assert plain.fingerprint == pki.fingerprint(dev_pki.partners["gemeente-utrecht"].cert)
    assert identifier_number("NTRBE-0650.989.467") == "0650989467"
    assert identifier_number("NTRNL-00000001003214345000") == "00000001003214345000"
    assert identifier_number("PSDBE-NBB-123") is None
    assert identifier_number("12345") is None


def test_the_tls_context_refuses_old_protocols_and_renegotiation(tmp_path: Path, dev_pki: DevPKI) -> None:
    import ssl

    from hub.api.tls import uvicorn_options

    options = uvicorn_options(make_settings(tmp_path, tls=tls_settings(dev_pki)))

    def default() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(options["ssl_certfile"], options["ssl_keyfile"])
        return context

    context = options["ssl_context_factory"](None, default)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert options["ssl_cert_reqs"] == ssl.CERT_OPTIONAL


def test_soap_without_credentials_gets_a_401_fault_and_is_audited(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    body = soap_wrap(xml_message(demo.inburgeringsplicht(random.Random(2)), InfoModel(tls_hub.settings.schemas_dir)))
    with dev_pki.client(tls_hub.url) as client:
        response = client.post("/soap/berichten", content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 401
    assert b"authentication_failed" in response.content
    [row] = audit_rows(tls_hub.settings, "refused")
    assert (row["sender"], row["detail"]["channel"]) == (None, "soap")
    assert count_messages(tls_hub.settings) == 0


def test_health_shows_the_days_the_hubs_own_certificate_has_left(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url) as client:
        answer = client.get("/health")
    assert answer.status_code == 200
    server = answer.json()["checks"]["tls"]["server"]
    not_after = x509.load_pem_x509_certificate(dev_pki.server.cert.read_bytes()).not_valid_after_utc
    assert server["certFile"] == str(dev_pki.server.cert)
    assert server["notAfter"] == not_after.isoformat()
    assert server["daysLeft"] in {(not_after - dt.datetime.now(dt.UTC)).days + d for d in (-1, 0)}
    assert (server["ok"], server["expired"]) == (True, False)


def test_a_hub_serving_an_expired_certificate_is_down_in_health(tmp_path: Path, dev_pki: DevPKI) -> None:
    """An expired server certificate shuts out every partner (their clients refuse the handshake);
    /health says so to a monitor that does not verify the certificate."""
    expired = expired_certificate(dev_pki.ca, tmp_path, "server-expired", ip="127.0.0.1")
    tls = tls_settings(dev_pki).model_copy(update={"certfile": expired.cert, "keyfile": expired.key})
    hub = start_tls_hub(make_settings(tmp_path, tls=tls))
    try:
        with dev_pki.client(hub.url) as client, pytest.raises(httpx.ConnectError):
            client.get("/health")
        answer = httpx.get(f"{hub.url}/health", verify=False, timeout=10)
    finally:
        hub.stop()
    assert answer.status_code == 503
    server = answer.json()["checks"]["tls"]["server"]
    assert (server["ok"], server["expired"]) == (False, True)
    assert server["daysLeft"] < 0
