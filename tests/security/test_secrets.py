"""Secrets: no public development key outside development, keys from files, master-key rotation."""

from __future__ import annotations

import asyncio
import base64
import os
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub import demo
from hub import envelope as env
from hub.cli.main import app
from hub.errors import ConfigurationError
from hub.keys import new_master_key
from hub.partners import Partner, upsert_partner
from hub.service import Hub
from hub.settings import DEV_AUDIT_KEY, DEV_PAYLOAD_KEY, Settings
from tests.conftest import TEST_AUDIT_KEY, TEST_SIGNING_KEY, make_settings


@pytest.mark.parametrize("env_name", ["test", "production"])
def test_outside_development_the_public_keys_refuse_to_start(tmp_path: Path, env_name: str) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigurationError, match="development keys are public"):
        Settings(env=env_name, database_url=db)
    with pytest.raises(ConfigurationError):
        Settings(env=env_name, database_url=db, payload_key=new_master_key())  # audit key still public
    with pytest.raises(ConfigurationError):
        Settings(env=env_name, database_url=db, payload_key=DEV_AUDIT_KEY, audit_hmac_key=new_master_key())
    same = new_master_key()
    with pytest.raises(ConfigurationError, match="must differ"):
        Settings(
            env=env_name, database_url=db, payload_key=same, audit_hmac_key=same, audit_signing_key=new_master_key()
        )
    with pytest.raises(ConfigurationError, match="AUDIT_SIGNING_KEY"):  # checkpoints signed with a public key
        Settings(env=env_name, database_url=db, payload_key=new_master_key(), audit_hmac_key=new_master_key())
    Settings(
        env=env_name,
        database_url=db,
        payload_key=new_master_key(),
        audit_hmac_key=new_master_key(),
        audit_signing_key=new_master_key(),
    )


def test_development_runs_on_the_development_keys() -> None:
    assert Settings(env="development").payload_key == DEV_PAYLOAD_KEY


def test_the_cli_refuses_to_start_production_on_development_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["keys", "status"],
        env={"KNOOPPUNT_ENV": "production", "KNOOPPUNT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
    )
    assert result.exit_code == 2
    assert "configuratiefout" in result.output


def test_keys_load_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload, audit, old = new_master_key(), new_master_key(), new_master_key()
    (tmp_path / "payload").write_text(payload + "\n")
    (tmp_path / "audit").write_text(audit)
    (tmp_path / "old").write_text(old + "\n")
    monkeypatch.setenv("KNOOPPUNT_ENV", "production")
    monkeypatch.setenv("KNOOPPUNT_PAYLOAD_KEY_FILE", str(tmp_path / "payload"))
    monkeypatch.setenv("KNOOPPUNT_AUDIT_HMAC_KEY_FILE", str(tmp_path / "audit"))
    monkeypatch.setenv("KNOOPPUNT_PAYLOAD_OLD_KEYS_FILE", str(tmp_path / "old"))
    (tmp_path / "checkpoints").write_text(new_master_key())
    monkeypatch.setenv("KNOOPPUNT_AUDIT_SIGNING_KEY_FILE", str(tmp_path / "checkpoints"))
    (tmp_path / "signing.pem").write_text(_signing_key())
    monkeypatch.setenv("KNOOPPUNT_OAUTH__SIGNING_KEY_FILE", str(tmp_path / "signing.pem"))
    settings = Settings()
    assert (settings.payload_key, settings.audit_hmac_key, settings.payload_old_keys) == (payload, audit, [old])
    assert settings.oauth.signing_key is not None
    assert "PRIVATE KEY" in settings.oauth.signing_key
    monkeypatch.setenv("KNOOPPUNT_PAYLOAD_KEY", payload)
    with pytest.raises(ConfigurationError, match="not both"):
        Settings()
    monkeypatch.delenv("KNOOPPUNT_PAYLOAD_KEY")
    monkeypatch.setenv("KNOOPPUNT_PAYLOAD_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        Settings()


def _signing_key() -> str:
    from hub.auth import new_signing_key

    return new_signing_key()


def _store_messages(settings: Settings, count: int) -> list[str]:
    """Accept `count` messages through the hub core; returns their ids."""
    hub = Hub(settings)

    async def run() -> list[str]:
        from hub.transport.memory import MemoryTransport

        await hub.start(MemoryTransport(asyncio.get_running_loop()))
        try:
            for p in (
                Partner(id="duo", name="DUO", role="duo"),
                Partner(id="gemeente-utrecht", name="Utrecht", role="gemeente", codes=("0344",)),
            ):
                await hub.writer.submit(upsert_partner(p, actor="test"))
            hub.reload_partners()
            ids = []
            rng = random.Random(11)
            for _ in range(count):
                doc = demo.inburgeringsplicht(rng)
                envelope, payload = env.from_json(doc)
                mtype = hub.infomodel.get(envelope.type, envelope.version)
                message = env.Message(envelope, hub.infomodel.json_to_xml(mtype, payload))
                accepted = await hub.accept(hub.partners.get("duo"), message, channel="test")  # type: ignore[arg-type]
                ids.append(accepted.message_id)
            return ids
        finally:
            await hub.stop()

    return asyncio.run(run())


def _read_all(settings: Settings, ids: list[str]) -> None:
    hub = Hub(settings)
    hub.open_store()
    try:
        for message_id in ids:
            assert hub.load_message(message_id).payload is not None
    finally:
        hub.close_store()


def test_master_key_rotation_keeps_old_payloads_readable(tmp_path: Path) -> None:
    first = make_settings(tmp_path, run_workers=False)
    ids = _store_messages(first, 3)
    new_key = new_master_key()
    # step 2: new active key, old key kept for unwrapping -> still readable
    rotated = make_settings(tmp_path, payload_key=new_key, payload_old_keys=[first.payload_key])
    _read_all(rotated, ids)
    # without the old key, data keys wrapped by it cannot be opened
    alone = make_settings(tmp_path, payload_key=new_key)
    with pytest.raises(ConfigurationError, match="not configured"):
        _read_all(alone, ids)
    # step 3: `knooppunt keys rotate` rewraps every data key under the new master key
    cli_env = {
        "KNOOPPUNT_ENV": "test",
        "KNOOPPUNT_DATABASE_URL": rotated.database_url,
        "KNOOPPUNT_PAYLOAD_KEY": new_key,
        "KNOOPPUNT_PAYLOAD_OLD_KEYS": f'["{first.payload_key}"]',
        "KNOOPPUNT_AUDIT_HMAC_KEY": TEST_AUDIT_KEY,
        "KNOOPPUNT_AUDIT_SIGNING_KEY": TEST_SIGNING_KEY,
    }
    result = CliRunner().invoke(app, ["keys", "rotate"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "1 datasleutel(s) opnieuw omhuld" in result.output
    status = CliRunner().invoke(app, ["keys", "status"], env=cli_env)
    assert "(actief): 1" in status.output
    # step 4: the old key can go; every payload still reads
    _read_all(alone, ids)
    again = CliRunner().invoke(app, ["keys", "rotate"], env=cli_env)
    assert "0 datasleutel(s) opnieuw omhuld" in again.output


def test_generated_keys_are_fresh_32_byte_keys() -> None:
    keys = {new_master_key() for _ in range(5)}
    assert len(keys) == 5
    assert all(len(base64.b64decode(k)) == 32 for k in keys)


def test_signing_key_command_writes_a_private_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    out = tmp_path / "signing.pem"
    result = CliRunner().invoke(app, ["keys", "signing-key", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "PUBLIC KEY" in result.output
    assert "PRIVATE KEY" in out.read_text()
    assert os.stat(out).st_mode & 0o077 == 0


def test_pki_command_makes_a_ca_server_and_demo_partner_certificates(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pki", "init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("ca.pem", "server.pem", "server-key.pem", "duo.pem", "agii.pem"):
        assert (tmp_path / name).is_file(), name
    extra = CliRunner().invoke(app, ["pki", "partner", "gemeente-ede", "--dir", str(tmp_path)])
    assert extra.exit_code == 0, extra.output
    assert "vingerafdruk" in extra.output
