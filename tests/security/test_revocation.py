"""Revoked partner certificates (CRLs): refused at the handshake over real TLS, refreshed without
a restart, and a hub that cannot check revocation does not start."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hub import pki
from hub.api.tls import uvicorn_options
from hub.errors import ConfigurationError
from hub.revocation import Revocation, read_crls
from hub.settings import Settings
from tests.conftest import LiveHub, make_settings
from tests.helpers import audit_rows
from tests.security.conftest import DevPKI, start_tls_hub, tls_settings

REFUSED_AT_HANDSHAKE = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


def crl_settings(tmp_path: Path, dev_pki: DevPKI, crl: Path, **tls: object) -> Settings:
    base = tls_settings(dev_pki)
    return make_settings(
        tmp_path,
        tls=base.model_copy(update={"crl_files": [crl], "crl_refresh_seconds": 1.0, **tls}),
        insz_test_numbers=True,
    )


def answers(hub: LiveHub, dev_pki: DevPKI, partner: str) -> int | str:
    """The status a partner's certificate gets, or "refused" when the handshake fails."""
    try:
        with dev_pki.client(hub.url, partner) as client:
            return client.get("/v1/inbox").status_code
    except REFUSED_AT_HANDSHAKE:
        return "refused"


def health(hub: LiveHub, dev_pki: DevPKI) -> httpx.Response:
    with dev_pki.client(hub.url) as client:
        return client.get("/health")


@pytest.fixture
def crl_hub(tmp_path: Path, dev_pki: DevPKI) -> Iterator[tuple[LiveHub, Path]]:
    """A hub whose CRL revokes COA's certificate; the CRL file can be replaced while it runs."""
    crl = pki.create_crl(dev_pki.ca, tmp_path / "crl" / "ca.crl.pem", (dev_pki.partners["coa"].cert,))
    hub = start_tls_hub(crl_settings(tmp_path, dev_pki, crl))
    try:
        yield hub, crl
    finally:
        hub.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the refresh interval"
        time.sleep(0.2)


def test_a_revoked_certificate_is_refused_at_the_handshake_the_others_get_in(
    crl_hub: tuple[LiveHub, Path], dev_pki: DevPKI
) -> None:
    hub, _ = crl_hub
    assert answers(hub, dev_pki, "coa") == "refused"
    assert answers(hub, dev_pki, "duo") == 200
    assert answers(hub, dev_pki, "agii") == 200
    # a token still works for COA: revocation is about the certificate, not the partner
    with dev_pki.client(hub.url, headers={"Authorization": f"Bearer {hub.setup.tokens['coa']}"}) as client:
        assert client.get("/v1/inbox").status_code == 200
    assert audit_rows(hub.settings, "refused") == []  # the revoked certificate reached no route
    check = health(hub, dev_pki).json()["checks"]["tls"]
    assert check["ok"] is True
    assert [(c["issuer"], c["revoked"], c["expired"]) for c in check["crls"]] == [
        ("CN=Knooppunt ontwikkel-CA", 1, False)
    ]


def test_a_new_crl_is_taken_without_a_restart_and_a_bad_one_changes_nothing(
    crl_hub: tuple[LiveHub, Path], dev_pki: DevPKI
) -> None:
    hub, crl = crl_hub
    assert answers(hub, dev_pki, "agii") == 200
    pki.create_crl(dev_pki.ca, crl, (dev_pki.partners["agii"].cert,))  # COA stays revoked
    wait_for(lambda: answers(hub, dev_pki, "agii") == "refused")
    assert answers(hub, dev_pki, "coa") == "refused"
    assert answers(hub, dev_pki, "duo") == 200
    assert health(hub, dev_pki).json()["checks"]["tls"]["crls"][0]["revoked"] == 2

    # a broken file: the loaded list keeps working, /health says what was refused
    crl.write_bytes(b"-----BEGIN X509 CRL-----\nkapot\n-----END X509 CRL-----\n")
    wait_for(lambda: health(hub, dev_pki).status_code == 503)
    check = health(hub, dev_pki).json()["checks"]["tls"]
    assert "geen geldige certificaatintrekkingslijst" in check["refreshErrors"][str(crl.resolve())]
    assert (answers(hub, dev_pki, "agii"), answers(hub, dev_pki, "duo")) == ("refused", 200)


def test_an_older_crl_never_un_revokes(tmp_path: Path, dev_pki: DevPKI) -> None:
    crl = tmp_path / "ca.crl.pem"
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    old = pki.create_crl(dev_pki.ca, tmp_path / "old.pem", (), this_update=yesterday)
    pki.create_crl(dev_pki.ca, crl, (dev_pki.partners["coa"].cert,))
    revocation = Revocation([crl], dev_pki.ca.cert)
    crl.write_bytes(old.read_bytes())  # a rollback: the list of yesterday, without COA
    assert revocation.refresh() == []
    assert "ouder dan de geladen lijst" in revocation.errors[crl]
    assert [c.revoked for c in revocation.crls[crl]] == [1]
    assert revocation.status()["ok"] is False


def test_an_expired_crl_refuses_its_ca_and_health_says_down(tmp_path: Path, dev_pki: DevPKI) -> None:
    """OpenSSL refuses the certificates of a CA whose CRL passed its nextUpdate; /health shows it."""
    stale = pki.create_crl(
        dev_pki.ca,
        tmp_path / "stale.pem",
        (),
        this_update=dt.datetime.now(dt.UTC) - dt.timedelta(days=8),
        valid_for=dt.timedelta(days=7),
    )
    hub = start_tls_hub(crl_settings(tmp_path, dev_pki, stale))
    try:
        assert answers(hub, dev_pki, "duo") == "refused"
        response = health(hub, dev_pki)
        assert response.status_code == 503
        assert response.json()["checks"]["tls"]["expired"] == ["CN=Knooppunt ontwikkel-CA"]
    finally:
        hub.stop()


def test_a_hub_that_cannot_check_revocation_does_not_start(tmp_path: Path, dev_pki: DevPKI) -> None:
    # a CRL of a CA the bundle does not hold: OpenSSL would ignore it without a word
    rogue_ca = pki.Issued(dev_pki.rogue.cert.parent / "ca.pem", dev_pki.rogue.cert.parent / "ca-key.pem")
    foreign = pki.create_crl(rogue_ca, tmp_path / "foreign.pem")
    with pytest.raises(ConfigurationError, match=r"niet ondertekend door een CA uit tls\.ca_certs"):
        uvicorn_options(crl_settings(tmp_path, dev_pki, foreign))
    # a second CA in the bundle without a CRL: every certificate it issued would be refused
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(dev_pki.ca.cert.read_bytes() + rogue_ca.cert.read_bytes())
    own = pki.create_crl(dev_pki.ca, tmp_path / "own.pem")
    with pytest.raises(ConfigurationError, match="geen CRL voor CN=Rogue CA"):
        uvicorn_options(crl_settings(tmp_path, dev_pki, own, ca_certs=bundle))
    with pytest.raises(ConfigurationError, match="niet leesbaar"):
        uvicorn_options(crl_settings(tmp_path, dev_pki, tmp_path / "missing.pem"))
    not_a_crl = tmp_path / "not-a-crl.der"
    not_a_crl.write_bytes(dev_pki.ca.cert.read_bytes())
    with pytest.raises(ConfigurationError, match="geen geldige certificaatintrekkingslijst"):
        uvicorn_options(crl_settings(tmp_path, dev_pki, not_a_crl))
    # CRLs without client certificates to check them against
    with pytest.raises(ConfigurationError, match="CRL_FILES"):
        crl_settings(tmp_path, dev_pki, own, client_cert="none")


def test_crl_files_in_pem_with_several_lists_and_in_der_are_read(tmp_path: Path, dev_pki: DevPKI) -> None:
    rogue_ca = pki.Issued(dev_pki.rogue.cert.parent / "ca.pem", dev_pki.rogue.cert.parent / "ca-key.pem")
    ours = pki.create_crl(dev_pki.ca, tmp_path / "ours.pem", (dev_pki.partners["duo"].cert,))
    theirs = pki.create_crl(rogue_ca, tmp_path / "theirs.pem")
    both = tmp_path / "both.pem"
    both.write_bytes(ours.read_bytes() + theirs.read_bytes())
    authorities = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (dev_pki.ca.cert, rogue_ca.cert)]
    assert [(c.issuer, c.revoked) for c in read_crls(both, authorities)] == [
        ("CN=Knooppunt ontwikkel-CA", 1),
        ("CN=Rogue CA", 0),
    ]
    der = tmp_path / "ours.crl"
    der.write_bytes(x509.load_pem_x509_crl(ours.read_bytes()).public_bytes(Encoding.DER))
    [loaded] = read_crls(der, authorities)
    assert loaded.revoked == 1
    assert loaded.next_update is not None
    assert loaded.next_update > loaded.this_update


def test_the_development_pki_revokes_and_reissues_its_crl(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hub.cli.main import app

    runner = CliRunner()
    directory = tmp_path / "pki"
    assert runner.invoke(app, ["pki", "init", "--dir", str(directory)]).exit_code == 0
    authorities = [x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())]
    [empty] = read_crls(directory / "crl.pem", authorities)
    assert empty.revoked == 0

    revoked = runner.invoke(app, ["pki", "revoke", "duo", "--dir", str(directory)])
    assert revoked.exit_code == 0, revoked.output
    unknown = runner.invoke(app, ["pki", "revoke", "niemand", "--dir", str(directory)])
    assert unknown.exit_code == 1
    assert "geen certificaat" in unknown.output
    reissued = runner.invoke(app, ["pki", "crl", "--dir", str(directory), "--days", "30"])
    assert reissued.exit_code == 0, reissued.output

    [latest] = read_crls(directory / "crl.pem", authorities)
    duo = x509.load_pem_x509_certificate((directory / "duo.pem").read_bytes())
    listed = x509.load_pem_x509_crl(latest.pem)
    assert listed.get_revoked_certificate_by_serial_number(duo.serial_number) is not None  # revoked stays revoked
    assert latest.revoked == 1
    assert latest.this_update > empty.this_update  # each list later than the one it replaces
    assert latest.next_update is not None
    assert latest.next_update - latest.this_update == dt.timedelta(days=30)


def test_health_reports_crls_it_cannot_read_in_a_process_started_without_them(tmp_path: Path, dev_pki: DevPKI) -> None:
    """The server refuses to start on them; an app served some other way still says so in /health."""
    from tests.conftest import start_live_hub

    hub = start_live_hub(crl_settings(tmp_path, dev_pki, tmp_path / "missing.pem"))
    try:
        with hub.client() as client:
            response = client.get("/health")
    finally:
        hub.stop()
    assert response.status_code == 503
    check = response.json()["checks"]["tls"]
    assert check["ok"] is False
    assert "niet leesbaar" in check["error"]
