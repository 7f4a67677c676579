"""OAuth2 client credentials: tokens bound to the partner, its certificate and its protocols;
signing-key rotation without downtime."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import httpx
import jwt
import pytest

from hub import demo
from hub.auth import AuthenticatedPartner, ClientCertificate, TokenService
from hub.errors import AuthenticationFailed
from hub.partners import Partner
from hub.settings import OAuthSettings
from tests.conftest import LiveHub, make_settings, start_live_hub
from tests.helpers import audit_rows
from tests.security.conftest import DevPKI

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}", **FORM}


def _token(client: httpx.Client, hub: LiveHub, partner: str, scope: str = "") -> dict[str, object]:
    body = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
    response = client.post("/v1/oauth/token", content=body, headers=_basic(partner, hub.setup.tokens[partner]))
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_client_secret_buys_a_short_lived_token_that_sends_messages(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url) as client:
        answer = _token(client, tls_hub, "duo")
        assert answer["token_type"] == "Bearer"
        assert answer["expires_in"] == 300
        assert "nl-inburgeringsplicht" in str(answer["scope"]).split()
        claims = jwt.decode(str(answer["access_token"]), options={"verify_signature": False})
        assert claims["sub"] == "duo"
        assert "cnf" not in claims
        auth = {"Authorization": f"Bearer {answer['access_token']}"}
        response = client.post("/v1/berichten", json=demo.inburgeringsplicht(random.Random(3)), headers=auth)
    assert response.status_code == 202, response.text


def test_certificate_bound_token_is_worthless_without_the_certificate(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url, "duo") as with_cert:
        response = with_cert.post("/v1/oauth/token", content="grant_type=client_credentials", headers=FORM)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        expected = ClientCertificate.from_pem(dev_pki.partners["duo"].cert.read_bytes()).thumbprint
        assert claims["cnf"] == {"x5t#S256": expected}
        assert with_cert.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with dev_pki.client(tls_hub.url) as without_cert:
        stolen = without_cert.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"})
        assert stolen.status_code == 401
        assert "RFC 8705" in stolen.json()["detail"]
    # another partner's certificate does not help either
    with dev_pki.client(tls_hub.url, "coa") as other:
        assert other.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_scopes_limit_the_protocols_a_token_may_send_under(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url) as client:
        narrow = _token(client, tls_hub, "duo", scope="nl-pip")
        assert narrow["scope"] == "nl-pip"
        auth = {"Authorization": f"Bearer {narrow['access_token']}"}
        response = client.post("/v1/berichten", json=demo.inburgeringsplicht(random.Random(4)), headers=auth)
        assert response.status_code == 403
        assert response.json()["code"] == "insufficient_scope"
        refused = client.post(
            "/v1/oauth/token",
            content="grant_type=client_credentials&scope=be-aanmelding",
            headers=_basic("duo", tls_hub.setup.tokens["duo"]),
        )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert any(r["detail"]["code"] == "insufficient_scope" for r in audit_rows(tls_hub.settings, "refused"))


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        ("grant_type=client_credentials", {"Authorization": "Basic ZHVvOndyb25n", **FORM}, 401, "invalid_client"),
        ("grant_type=client_credentials", FORM, 401, "invalid_client"),
        ("grant_type=password&username=a&password=b", None, 400, "unsupported_grant_type"),
        ("grant_type=client_credentials&grant_type=client_credentials", None, 400, "invalid_request"),
        ("grant_type=client_credentials", {"Content-Type": "application/json"}, 415, "invalid_request"),
        ("grant_type=client_credentials&client_id=coa", None, 401, "invalid_client"),
    ],
)
def test_bad_token_requests_get_rfc6749_errors_as_problem_json(
    tls_hub: LiveHub, dev_pki: DevPKI, body: str, headers: dict[str, str] | None, status: int, error: str
) -> None:
    headers = headers or _basic("duo", tls_hub.setup.tokens["duo"])
    with dev_pki.client(tls_hub.url) as client:
        response = client.post("/v1/oauth/token", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == error
    if error == "invalid_client":
        assert audit_rows(tls_hub.settings, "refused")[0]["detail"]["channel"] == "oauth"


def test_tampered_and_unsigned_tokens_are_refused(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url) as client:
        token = str(_token(client, tls_hub, "coa")["access_token"])
        header, _payload, signature = token.split(".")
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["sub"] = "duo"
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        unsigned = jwt.encode(claims, key=None, algorithm="none")
        for bad in (f"{header}.{forged_payload}.{signature}", unsigned, token[:-4] + "AAAA"):
            response = client.get("/v1/inbox", headers={"Authorization": f"Bearer {bad}"})
            assert response.status_code == 401, bad
    assert len(audit_rows(tls_hub.settings, "refused")) == 3


def test_api_keys_are_client_secrets_only_where_they_are_switched_off(tmp_path: Path, signing_key: str) -> None:
    settings = make_settings(tmp_path, api_keys=False, oauth=OAuthSettings(signing_key=signing_key))
    hub = start_live_hub(settings)
    try:
        with hub.client("duo") as client:
            assert client.get("/v1/inbox").status_code == 401
        with httpx.Client(base_url=hub.url) as client:
            token = _token(client, hub, "duo")["access_token"]
            assert client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        hub.stop()


# -- the token service itself ---------------------------------------------------------------

PARTNER = Partner(id="duo", name="DUO", role="duo")


def _service(signing: str, *old: str, clock: float = 1_000_000.0, ttl: int = 300) -> TokenService:
    settings = OAuthSettings(signing_key=signing, verification_keys=list(old), token_ttl_seconds=ttl)
    return TokenService(settings, "https://hub.example", development=False, clock=lambda: clock)


def test_signing_key_rotation_keeps_issued_tokens_valid_until_the_old_key_is_dropped(signing_key: str) -> None:
    from hub.auth import new_signing_key, public_pem

    old_service = _service(signing_key)
    old_token = old_service.issue(PARTNER, ["nl-pip"], None).access_token

    new_key = new_signing_key()
    rotated = _service(new_key, public_pem(signing_key))  # the old key only verifies now
    assert rotated.verify(old_token, None).partner_id == "duo"
    new_token = rotated.issue(PARTNER, ["nl-pip"], None).access_token
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.active_kid != old_service.active_kid
    assert {k["kid"] for k in rotated.jwks()["keys"]} == {rotated.active_kid, old_service.active_kid}

    after = _service(new_key)  # the old key is gone once its tokens have expired
    assert after.verify(new_token, None).partner_id == "duo"
    with pytest.raises(AuthenticationFailed, match="onbekende sleutel"):
        after.verify(old_token, None)


def test_expired_tokens_and_other_audiences_are_refused(signing_key: str) -> None:
    token = _service(signing_key, clock=1_000_000.0).issue(PARTNER, [], None).access_token
    with pytest.raises(AuthenticationFailed, match="verlopen"):
        _service(signing_key, clock=2_000_000_000.0).verify(token, None)
    other = TokenService(OAuthSettings(signing_key=signing_key), "https://other.example", development=False)
    with pytest.raises(AuthenticationFailed):
        other.verify(token, None)


def test_without_a_signing_key_outside_development_oauth_is_off() -> None:
    service = TokenService(OAuthSettings(), "https://hub.example", development=False)
    assert not service.enabled
    assert TokenService(OAuthSettings(), "https://hub.example", development=True).enabled


def test_authenticated_partner_keeps_the_partner_fields() -> None:
    caller = AuthenticatedPartner.of(PARTNER, "oauth2", frozenset({"nl-pip"}))
    assert (caller.id, caller.role, caller.method, caller.scopes) == ("duo", "duo", "oauth2", frozenset({"nl-pip"}))


def test_a_token_reads_only_the_messages_of_its_protocols(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    with dev_pki.client(tls_hub.url, "duo") as duo:
        sent = duo.post("/v1/berichten", json=demo.inburgeringsplicht(random.Random(9)))
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["messageId"]
    with dev_pki.client(tls_hub.url) as client:
        narrow = {"Authorization": f"Bearer {_token(client, tls_hub, 'gemeente-utrecht', 'nl-pip')['access_token']}"}
        full = {"Authorization": f"Bearer {_token(client, tls_hub, 'gemeente-utrecht')['access_token']}"}
        assert client.get("/v1/inbox", headers=narrow).json()["items"] == []
        assert [i["messageId"] for i in client.get("/v1/inbox", headers=full).json()["items"]] == [message_id]
        assert client.get(f"/v1/berichten/{message_id}", headers=narrow).status_code == 404
        assert client.get(f"/v1/berichten/{message_id}", headers=full).status_code == 200


def test_rolling_key_rotation_across_running_hubs(tmp_path: Path, signing_key: str) -> None:
    """Hubs on one database, as in a rolling deployment. Phase 1: every instance learns the new
    public key. Phase 2: instances sign with the new key, the old one only verifies; both kinds
    run side by side and accept each other's tokens. Phase 3: the old key is dropped."""
    from hub.auth import new_signing_key, public_pem

    issuer = "https://knooppunt.example"
    new_key = new_signing_key()
    phase1 = OAuthSettings(signing_key=signing_key, verification_keys=[public_pem(new_key)], issuer=issuer)
    phase2 = OAuthSettings(signing_key=new_key, verification_keys=[public_pem(signing_key)], issuer=issuer)
    first = start_live_hub(make_settings(tmp_path, oauth=phase1))
    second = start_live_hub(make_settings(tmp_path, oauth=phase2))
    try:
        with httpx.Client(base_url=first.url) as a, httpx.Client(base_url=second.url) as b:
            old_token = _token(a, first, "duo")["access_token"]
            new_token = _token(b, second, "duo")["access_token"]
            for client in (a, b):
                for token in (old_token, new_token):
                    assert client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        first.stop()
        second.stop()
    final = start_live_hub(make_settings(tmp_path, oauth=OAuthSettings(signing_key=new_key, issuer=issuer)))
    try:
        with httpx.Client(base_url=final.url) as client:
            assert client.get("/v1/inbox", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200
            assert client.get("/v1/inbox", headers={"Authorization": f"Bearer {old_token}"}).status_code == 401
    finally:
        final.stop()


def test_a_token_consults_and_follows_only_under_its_protocols(tls_hub: LiveHub, dev_pki: DevPKI) -> None:
    insz = demo.make_insz(random.Random(4))
    with dev_pki.client(tls_hub.url) as client:
        token = _token(client, tls_hub, "agii", "be-aanmelding")["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        lookup = client.post("/v1/personen/_zoek", json={"insz": insz, "purpose": "be-nt2"}, headers=auth)
        follow = client.post(
            "/v1/repertorium/inschrijvingen",
            json={"subject": {"type": "INSZ", "id": insz}, "hoedanigheid": "trajectbegeleiding"},
            headers=auth,
        )
    assert lookup.status_code == 403, lookup.text
    assert lookup.json()["code"] == "insufficient_scope"
    assert follow.status_code == 403, follow.text
    assert follow.json()["code"] == "insufficient_scope", follow.text
