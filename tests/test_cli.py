"""The `knooppunt` command: partners, tokens, deliveries."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from hub import pki
from hub.cli.main import app
from hub.loopback import free_port
from hub.settings import Settings
from tests.helpers import audit_rows, run_demo, wait_for_output


def _env(settings: Settings) -> dict[str, str]:
    return {"KNOOPPUNT_DATABASE_URL": settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}


def test_add_list_and_token(settings: Settings) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "partners",
            "add",
            "gemeente-zwolle",
            "--name",
            "Gemeente Zwolle",
            "--role",
            "gemeente",
            "--plateau",
            "1",
            "--code",
            "0193",
        ],
        env=_env(settings),
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["partners", "list", "--json"], env=_env(settings))
    [row] = json.loads(listed.output)
    assert row["id"] == "gemeente-zwolle"
    assert row["codes"] == ["0193"]
    assert row["plateau"] == 1
    assert row["token"] is False
    token = runner.invoke(app, ["partners", "token", "gemeente-zwolle"], env=_env(settings))
    assert token.exit_code == 0
    assert token.output.strip().startswith("kpt_")
    assert len(token.output.strip()) > 40
    listed = runner.invoke(app, ["partners", "list", "--json"], env=_env(settings))
    assert json.loads(listed.output)[0]["token"] is True
    actions = [e["detail"]["action"] for e in audit_rows(settings, "admin_changed")]
    assert actions == ["partner_added", "token_issued"]


def test_adding_a_partner_twice_fails(settings: Settings) -> None:
    runner = CliRunner()
    args = ["partners", "add", "coa", "--name", "COA", "--role", "coa"]
    assert runner.invoke(app, args, env=_env(settings)).exit_code == 0
    again = runner.invoke(app, args, env=_env(settings))
    assert again.exit_code == 1
    assert "bestaat al" in again.output


def test_bad_oin_is_refused_with_exit_2(settings: Settings) -> None:
    result = CliRunner().invoke(
        app, ["partners", "add", "duo", "--name", "DUO", "--role", "duo", "--oin", "123"], env=_env(settings)
    )
    assert result.exit_code == 2
    assert "OIN" in result.output


def test_token_for_unknown_partner_fails(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["partners", "token", "nobody"], env=_env(settings))
    assert result.exit_code == 1


def test_demo_scenario_runs_and_everything_arrives(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["demo", "--messages", "1"], env=_env(settings))
    assert result.exit_code == 0, result.output
    assert "Wat ging waarheen" in result.output
    assert "Auditketen: in orde" in result.output
    assert "Opvraging via MAGDA (GeefPersoon) door AgII" in result.output
    assert "NT2" in result.output
    # the Dutch chain, each partner on its own link, signatures verified on both sides
    chain = " ".join(result.output.split())
    assert "COA draagt warm over" in chain
    assert "overdracht bevestigd bij COA" in chain
    assert "geverifieerd door de hub" in chain
    assert chain.count("handtekening geverifieerd door DUO") == 2  # the PIP and the pip-wijziging
    assert "signaalmelding in zijn portaal-inbox" in chain
    assert "MISLUKT" not in chain


def test_run_demo_prints_every_token_whole_and_writes_them_to_a_file_to_source(tmp_path: Path) -> None:
    """A newcomer in an 80-column terminal: the banner cut the demo partners' tokens and URLs
    to fit a table ("kpt_qWaf_q2EoKPO…") and broke a curl command inside its header. Every
    token now stands whole on its partner's line, each command on one line, and the tokens
    are also in a file (owner-only) that a shell can source and use."""
    port = free_port()
    with run_demo(tmp_path, port, COLUMNS="80") as (proc, log):
        lines = wait_for_output(proc, log, "Stoppen: Ctrl-C").splitlines()
        token = re.compile(r"kpt_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
        listed = {}
        for line in lines:
            fields = line.split()
            if len(fields) == 4 and token.fullmatch(fields[3]):
                listed[fields[0]] = fields[3]
        assert {"duo", "coa", "gemeente-utrecht", "gemeente-ede", "agii", "magda"} <= set(listed)
        assert not [line for line in lines if "…" in line], "nothing is cut short"
        send = [line for line in lines if "curl -s -X POST" in line and "/v1/berichten" in line]
        assert len(send) == 1
        assert f"'Authorization: Bearer {listed['duo']}'" in send[0]
        status = [line for line in lines if "/v1/berichten/<messageId>" in line]
        assert len(status) == 1
        assert f"'Authorization: Bearer {listed['duo']}'" in status[0]

        tokens_file = tmp_path / "demo-tokens.env"
        assert f"source {tokens_file}" in log.read_text()
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
        sourced = subprocess.run(
            ["bash", "-c", f"source {tokens_file} && echo $KNOOPPUNT_TOKEN_DUO $KNOOPPUNT_TOKEN_GEMEENTE_UTRECHT"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert sourced == [listed["duo"], listed["gemeente-utrecht"]]
        deadline = time.monotonic() + 30
        while True:  # the banner comes just before the hub listens
            try:
                inbox = httpx.get(
                    f"http://127.0.0.1:{port}/v1/inbox", headers={"Authorization": f"Bearer {sourced[1]}"}, timeout=10
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert inbox.status_code == 200, inbox.text


def test_the_demo_over_https_shows_the_dutch_chain_and_the_lookups(tmp_path: Path) -> None:
    """`make run-tls`: the demo's simulators send in and the lookups are shown over HTTPS, trusting
    the development CA (they used plain HTTP and printed "niet getoond")."""
    ca = pki.create_ca(tmp_path)
    server = pki.create_server(ca, tmp_path)
    port = free_port()
    tls = {
        "KNOOPPUNT_TLS__CERTFILE": str(server.cert),
        "KNOOPPUNT_TLS__KEYFILE": str(server.key),
        "KNOOPPUNT_TLS__CA_CERTS": str(ca.cert),
        "KNOOPPUNT_TLS__CRL_FILES": json.dumps([str(pki.create_crl(ca, tmp_path / "crl.pem"))]),  # as make run-tls
        "KNOOPPUNT_PUBLIC_URL": f"https://127.0.0.1:{port}",
    }
    with run_demo(tmp_path, port, **tls) as (proc, log):
        wait_for_output(proc, log, "Opvraging via Discimus", "niet getoond")
    shown = " ".join(log.read_text().split())
    assert "niet getoond" not in shown
    assert "MISLUKT" not in shown
    assert "COA draagt warm over" in shown
    assert "geverifieerd door de hub" in shown
    assert "Opvraging via MAGDA (GeefPersoon) door AgII" in shown
