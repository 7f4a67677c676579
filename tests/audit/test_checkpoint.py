from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import Engine

from hub.audit import verify
from hub.audit.checkpoint import (
    CheckpointError,
    CheckpointSigner,
    all_checkpoints,
    checkpoint_periodically,
    checkpoint_unit,
    integrity_status,
    latest_checkpoint,
    parse_note,
    verify_note,
)
from hub.audit.merkle import EMPTY_ROOT
from hub.audit.tree import AuditIntegrityError, TreeReader
from hub.errors import ConfigurationError
from hub.settings import Settings
from hub.store.database import Writer

from .conftest import fill


def test_a_checkpoint_signs_the_current_tree_head(engine: Engine, writer: Writer, signer: CheckpointSigner) -> None:
    fill(writer, 700)
    cp = writer.run_sync(checkpoint_unit(signer))
    assert cp.size == 700
    with engine.connect() as conn:
        assert cp.root == TreeReader(conn, use_cache=False).root(700)
        assert latest_checkpoint(conn) == cp
    lines = cp.note.split("\n")
    assert lines[0] == "knooppunt.local/audit"
    assert lines[1] == "700"
    assert base64.b64decode(lines[2]) == cp.root
    assert lines[5] == ""
    assert lines[6].startswith("\u2014 knooppunt.local/audit ")
    assert verify_note(cp.note, signer.public_raw).size == 700


def test_an_idle_log_gets_no_new_checkpoint_when_asked_only_if_grown(writer: Writer, signer: CheckpointSigner) -> None:
    first = writer.run_sync(checkpoint_unit(signer))
    assert (first.size, first.root) == (0, EMPTY_ROOT)
    assert writer.run_sync(checkpoint_unit(signer, only_if_grown=True)).id == first.id
    fill(writer, 3)
    assert writer.run_sync(checkpoint_unit(signer, only_if_grown=True)).size == 3


def test_a_tampered_note_or_another_key_is_refused(writer: Writer, signer: CheckpointSigner) -> None:
    fill(writer, 10)
    cp = writer.run_sync(checkpoint_unit(signer))
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(cp.note.replace("\n10\n", "\n11\n"), signer.public_raw)
    other = CheckpointSigner(Ed25519PrivateKey.generate().private_bytes_raw(), signer.name)
    with pytest.raises(CheckpointError, match="no signature"):
        verify_note(cp.note, other.public_raw)
    with pytest.raises(CheckpointError):
        parse_note("knooppunt.local/audit\nten\n")


def test_the_public_key_exports_as_pem_and_raw(signer: CheckpointSigner) -> None:
    doc = signer.public_key_document()
    assert base64.b64decode(doc["publicKey"]) == signer.public_raw
    pem_key = load_pem_public_key(doc["pem"].encode())
    assert pem_key.public_bytes_raw() == signer.public_raw  # type: ignore[union-attr]
    name, key_id, key = doc["verifierKey"].split("+")
    assert (name, key_id) == ("knooppunt.local/audit", doc["keyId"])
    assert base64.b64decode(key) == b"\x01" + signer.public_raw


def test_a_rewritten_log_is_never_signed(engine: Engine, writer: Writer, signer: CheckpointSigner) -> None:
    fill(writer, 300)
    writer.run_sync(checkpoint_unit(signer))
    with engine.begin() as conn:
        # Flip the first hex digit: a fixed prefix would leave the one hash
        # in 256 that already starts with it unchanged, and the test flaky.
        conn.exec_driver_sql(
            "UPDATE audit_events SET hash = "
            "CASE WHEN substr(hash, 1, 1) = '0' THEN '1' ELSE '0' END || substr(hash, 2) WHERE seq = 290"
        )
    fill(writer, 10, start=300)
    with pytest.raises(AuditIntegrityError, match="not an append-only extension"):
        writer.run_sync(checkpoint_unit(signer))


def test_a_new_checkpoint_over_an_old_tampered_block_still_fails_verify(
    engine: Engine, writer: Writer, signer: CheckpointSigner
) -> None:
    # Record 5 lies in a block whose subtree hash was cached at the first
    # checkpoint: the next one is signed from the cache (the original tree),
    # so it does not paper over the change, and verify names the record.
    fill(writer, 300)
    writer.run_sync(checkpoint_unit(signer))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_events SET status = 'x' WHERE seq = 5")
    fill(writer, 10, start=300)
    writer.run_sync(checkpoint_unit(signer))
    with engine.connect() as conn:
        result = verify(conn, public_key=signer.public_raw)
    assert (result.ok, result.first_bad_seq) == (False, 5)


def test_production_refuses_the_development_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    good = base64.b64encode(b"x" * 32).decode()
    other = base64.b64encode(b"y" * 32).decode()  # payload and audit keys must differ outside development
    with pytest.raises(ConfigurationError, match="AUDIT_SIGNING_KEY"):
        Settings(env="production", payload_key=good, audit_hmac_key=other)
    s = Settings(env="production", payload_key=good, audit_hmac_key=other, audit_signing_key=good)
    assert CheckpointSigner.from_settings(s).public_raw != CheckpointSigner.from_settings(Settings()).public_raw
    with pytest.raises(ValueError, match="32 bytes"):
        Settings(audit_signing_key=base64.b64encode(b"short").decode())


def test_periodic_checkpoints_follow_the_log(engine: Engine, writer: Writer, signer: CheckpointSigner) -> None:
    def sizes() -> list[int]:
        with engine.connect() as conn:
            return [cp.size for cp in all_checkpoints(conn)]

    async def until(want: list[int]) -> None:
        for _ in range(500):
            if sizes() == want:
                return
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        task = asyncio.create_task(checkpoint_periodically(writer, signer, 0.01))
        await until([0])
        await asyncio.sleep(0.05)  # an idle log gets no new checkpoints
        await asyncio.to_thread(fill, writer, 5)
        await until([0, 5])
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert sizes() == [0, 5]


def test_integrity_status_shows_the_unsigned_tail(writer: Writer, engine: Engine, signer: CheckpointSigner) -> None:
    fill(writer, 12)
    writer.run_sync(checkpoint_unit(signer))
    fill(writer, 3, start=12)
    with engine.connect() as conn:
        status = integrity_status(conn, signer)
    assert status["records"] == 15
    assert status["unsignedRecords"] == 3
    assert status["signatureValid"] is True
    assert status["checkpoint"]["treeSize"] == 12  # type: ignore[index]
