"""Logging in over real HTTP: lockout, second factor, logout, CSRF, cookies, headers; and `knooppunt users`."""

from __future__ import annotations

import json
import time
from contextlib import closing

import pyotp
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from hub.cli.main import app
from hub.cli.users import seed_demo_user
from hub.crypto import MasterKeys
from hub.portal import accounts
from hub.service import Hub
from hub.settings import PortalSettings, Settings
from hub.store.tables import portal_users
from tests.conftest import start_live_hub
from tests.helpers import audit_rows
from tests.portal.conftest import EDE_USER, GENT_USER, PASSWORD, TOTP_USER, Portal, csrf_of, login, seed_users


def _actions(settings: Settings) -> list[str]:
    return [r["detail"]["action"] for r in audit_rows(settings, "admin_changed")]


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_the_session(portal: Portal) -> None:
    with closing(portal.browser()) as c:
        r = login(c, EDE_USER, PASSWORD)
        assert r.url.path == "/portaal/start"
        [cookie] = [h for h in r.history[0].headers.get_list("set-cookie") if h.startswith("kp_sessie=")]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/portaal" in cookie
        token = c.cookies.get("kp_sessie")
        out = c.post("/portaal/uitloggen", data={"csrf": csrf_of(r.text)})
        assert out.url.path == "/portaal/inloggen"
    # the old cookie is worthless once logged out
    with closing(portal.browser()) as thief:
        thief.cookies.set("kp_sessie", token or "", path="/portaal")
        assert thief.get("/portaal/inbox").url.path == "/portaal/inloggen"
    assert _actions(portal.live.settings)[-2:] == ["portal_login", "portal_logout"]


def test_wrong_passwords_lock_the_account_and_every_attempt_is_audited(portal: Portal) -> None:
    with closing(portal.browser()) as c:
        for _ in range(accounts.MAX_FAILURES - 1):
            r = login(c, EDE_USER, "fout-wachtwoord-123")
            assert r.status_code == 401
            assert "klopt niet" in r.text
        r = login(c, EDE_USER, "fout-wachtwoord-123")
        assert r.status_code == 403
        assert "geblokkeerd" in r.text
        # even the right password does not open a locked account
        r = login(c, EDE_USER, PASSWORD)
        assert r.status_code == 403
        assert r.url.path == "/portaal/inloggen"
        unknown = login(c, "niemand@nergens.nl", PASSWORD)
        assert unknown.status_code == 401
    actions = _actions(portal.live.settings)
    assert actions.count("portal_login_failed") == accounts.MAX_FAILURES + 2
    assert actions.count("portal_locked_out") == 1
    assert "portal_login" not in actions
    logged = " ".join(str(r["actor"]) for r in audit_rows(portal.live.settings, "admin_changed"))
    assert "niemand@nergens.nl" not in logged  # a mistyped username is not logged
    # the other organisation's user is not affected
    with closing(portal.login(GENT_USER)):
        pass


def test_second_factor_is_asked_and_checked(portal: Portal) -> None:
    with closing(portal.browser()) as c:
        r = login(c, TOTP_USER, PASSWORD)
        assert r.url.path == "/portaal/tweede-stap"
        # half logged in: no access yet
        assert c.get("/portaal/inbox").url.path == "/portaal/inloggen"
        page = c.get("/portaal/tweede-stap")
        wrong = c.post("/portaal/tweede-stap", data={"csrf": csrf_of(page.text), "code": "000000"})
        assert wrong.status_code == 401
        code = pyotp.TOTP(portal.totp_secret).now()
        right = c.post("/portaal/tweede-stap", data={"csrf": csrf_of(wrong.text), "code": code})
        assert right.url.path == "/portaal/start"
        assert "Bram Bakker" in right.text
    # the same code does not open a second session (replay)
    with closing(portal.browser()) as other:
        r = login(other, TOTP_USER, PASSWORD)
        replay = other.post("/portaal/tweede-stap", data={"csrf": csrf_of(r.text), "code": code})
        assert replay.status_code == 401
        assert other.get("/portaal/start").url.path == "/portaal/inloggen"
    reasons = [r["detail"].get("reason") for r in audit_rows(portal.live.settings, "admin_changed")]
    assert "totp_replayed" in reasons


def test_totp_secrets_are_not_stored_in_the_clear(portal: Portal) -> None:
    engine = create_engine(portal.live.settings.database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                select(portal_users.c.totp_secret).where(portal_users.c.username == TOTP_USER)
            ).scalar_one()
    finally:
        engine.dispose()
    assert portal.totp_secret not in stored
    master = MasterKeys(portal.live.settings.payload_key_bytes)
    assert accounts.unwrap_totp(master, TOTP_USER, stored) == portal.totp_secret


def test_an_organisation_can_require_a_second_factor(portal: Portal) -> None:
    hub = Hub(portal.live.settings)
    hub.open_store()
    try:
        hub.writer.run_sync(accounts.set_require_totp("stad-gent", True, actor="test"))
    finally:
        hub.close_store()
    with closing(portal.browser()) as c:
        r = login(c, GENT_USER, PASSWORD)
    assert r.status_code == 403
    assert "tweede factor" in r.text


def test_forms_without_a_valid_csrf_token_are_refused(portal: Portal) -> None:
    with closing(portal.browser()) as c:
        c.get("/portaal/inloggen")
        r = c.post("/portaal/inloggen", data={"csrf": "vals", "gebruikersnaam": EDE_USER, "wachtwoord": PASSWORD})
        assert r.status_code == 400
        assert "kp_sessie" not in c.cookies
    with closing(portal.login()) as c:
        r = c.post("/portaal/inbox", data={"selectie": "1", "actie": "afgehandeld"})
        assert r.status_code == 400
        r = c.post(
            "/portaal/versturen",
            data={"csrf": "vals", "berichttype": "pip"},
            files={"bestand": ("a.csv", b"gemeentecode\n0228\n", "text/csv")},
        )
        assert r.status_code == 400
        assert "verlopen" in r.text
        assert "rapport" not in str(r.url)


def test_pages_carry_strict_security_headers(portal: Portal) -> None:
    with closing(portal.login()) as c:
        for path in ("/portaal/inloggen", "/portaal/start", "/portaal/inbox", "/portaal/versturen"):
            r = c.get(path)
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp
            assert "script-src" not in csp  # default-src 'none': no script at all
            assert "default-src 'none'" in csp
            assert r.headers["cache-control"] == "no-store"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "<script" not in r.text
        template = c.get("/portaal/sjablonen/pip.csv")
        assert template.headers["cache-control"] == "no-store"
    with closing(portal.browser()) as anonymous:
        assert anonymous.get("/portaal/inbox").url.path == "/portaal/inloggen"
        assert anonymous.get("/portaal/sjablonen/pip.csv").url.path == "/portaal/inloggen"


def _env(settings: Settings) -> dict[str, str]:
    return {"KNOOPPUNT_DATABASE_URL": settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}


def test_users_cli_adds_lists_and_disables(portal: Portal) -> None:
    runner = CliRunner()
    env = _env(portal.live.settings)
    added = runner.invoke(
        app,
        ["users", "add", "Nieuw@Ede.nl", "--partner", "gemeente-ede", "--name", "Nina", "--password-stdin", "--totp"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert added.exit_code == 0, added.output
    assert "otpauth://totp/" in added.output
    too_short = runner.invoke(
        app,
        ["users", "add", "kort@ede.nl", "--partner", "gemeente-ede", "--name", "K", "--password-stdin"],
        input="kort\n",
        env=env,
    )
    assert too_short.exit_code == 1
    listed = runner.invoke(app, ["users", "list", "--partner", "gemeente-ede", "--json"], env=env)
    users = {u["username"]: u for u in json.loads(listed.output)}
    assert users["nieuw@ede.nl"]["totp"] is True
    assert "kort@ede.nl" not in users
    with closing(portal.login()) as c:
        assert c.get("/portaal/start").url.path == "/portaal/start"
        disabled = runner.invoke(app, ["users", "disable", EDE_USER], env=env)
        assert disabled.exit_code == 0, disabled.output
        # the running session ends with the account
        assert c.get("/portaal/start").url.path == "/portaal/inloggen"
    with closing(portal.browser()) as c:
        assert login(c, EDE_USER, PASSWORD).status_code == 401
    actions = _actions(portal.live.settings)
    assert "portal_user_added" in actions
    assert "portal_user_disabled" in actions
    required = runner.invoke(app, ["users", "require-totp", "gemeente-ede"], env=env)
    assert required.exit_code == 0


def test_an_idle_session_ends(settings: Settings) -> None:
    live = start_live_hub(settings.model_copy(update={"portal": PortalSettings(session_idle_minutes=0.03)}))
    try:
        seed_users(live.settings)
        portal = Portal(live, "")
        with closing(portal.login()) as c:
            # in use: each request keeps it alive
            for _ in range(4):
                time.sleep(0.6)
                assert c.get("/portaal/start").url.path == "/portaal/start"
            time.sleep(2.5)
            assert c.get("/portaal/start").url.path == "/portaal/inloggen"
    finally:
        live.thread.stop()


def test_the_demo_gets_a_portal_user_for_ede_once(portal: Portal) -> None:
    created = seed_demo_user(portal.live.settings)
    assert created is not None
    username, password = created
    with closing(portal.login(username, password)) as c:
        assert "Gemeente Ede" in c.get("/portaal/start").text
    assert seed_demo_user(portal.live.settings) is None


def test_unknown_portal_addresses_answer_with_a_page(portal: Portal) -> None:
    with closing(portal.browser()) as anonymous:
        r = anonymous.get("/portaal/bestaat-niet")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["content-security-policy"]
    with closing(portal.login()) as c:
        assert c.get("/portaal/inbox/abc").status_code == 404
        assert c.get("/portaal/inbox/99999999999999999999999").status_code == 404
        assert "Deze pagina bestaat niet" in c.get("/portaal/iets/anders").text


def test_the_session_cookie_is_secure_behind_https(portal: Portal) -> None:
    # a TLS-terminating proxy on loopback says the original request was https
    with closing(portal.browser()) as c:
        c.headers["x-forwarded-proto"] = "https"
        form = c.get("/portaal/inloggen")
        assert "Secure" in form.headers["set-cookie"]
        # the client keeps Secure cookies off plain http, so hand it back as the browser behind TLS would
        login_cookie = form.headers["set-cookie"].split(";")[0]
        r = c.post(
            "/portaal/inloggen",
            data={"csrf": csrf_of(form.text), "gebruikersnaam": EDE_USER, "wachtwoord": PASSWORD},
            headers={"cookie": login_cookie},
            follow_redirects=False,
        )
    assert r.status_code == 303
    [cookie] = [h for h in r.headers.get_list("set-cookie") if h.startswith("kp_sessie=")]
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
