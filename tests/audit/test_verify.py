from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from hub.audit import verify
from hub.audit.chain import canonical, record_hash
from hub.audit.checkpoint import CheckpointSigner, create_checkpoint
from hub.audit.tree import TreeReader
from hub.store.database import Writer

from .conftest import fill

N = 600


@pytest.fixture
def log(engine: Engine, writer: Writer, signer: CheckpointSigner) -> Iterator[sqlite3.Connection]:
    """600 records with signed checkpoints at 300 and 600; yields a raw connection for tampering."""
    fill(writer, 300)
    writer.run_sync(lambda tx: create_checkpoint(tx.conn, signer))
    fill(writer, 300, start=300)
    writer.run_sync(lambda tx: create_checkpoint(tx.conn, signer))
    db = sqlite3.connect(str(engine.url.database), isolation_level=None)
    yield db
    db.close()


def check(engine: Engine, signer: CheckpointSigner):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return verify(conn, public_key=signer.public_raw)


def rehash_from(db: sqlite3.Connection, seq: int) -> None:
    """What a careful attacker does: recompute every hash from ``seq`` on, and the head."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(audit_events)")]
    prev = db.execute("SELECT hash FROM audit_events WHERE seq = ?", (seq - 1,)).fetchone()
    prev_hash = prev[0] if prev else "0" * 64

    for row in db.execute("SELECT * FROM audit_events WHERE seq >= ? ORDER BY seq", (seq,)).fetchall():
        rec = dict(zip(cols, row, strict=True))
        rec["detail"] = json.loads(rec["detail"])
        rec["occurred_at"] = datetime.fromisoformat(rec["occurred_at"]).replace(tzinfo=UTC)
        h = record_hash(prev_hash, rec)
        db.execute("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev_hash, h, rec["seq"]))
        prev_hash = h
    db.execute("UPDATE audit_head SET seq = (SELECT max(seq) FROM audit_events), hash = ?", (prev_hash,))


def test_an_untouched_log_verifies(log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner) -> None:
    result = check(engine, signer)
    assert result.ok, result.summary()
    assert result.checked == N
    assert result.checkpoints_checked == 2
    assert result.exit_code == 0
    assert result.checkpoint is not None
    assert result.checkpoint.size == N


def test_a_changed_record_is_named(log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner) -> None:
    log.execute("UPDATE audit_events SET receiver = 'ind' WHERE seq = 123")
    result = check(engine, signer)
    assert not result.ok
    assert result.first_bad_seq == 123
    assert result.exit_code == 1
    assert "content" in result.reason


def test_a_changed_detail_is_named(log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner) -> None:
    log.execute("""UPDATE audit_events SET detail = '{"n": 1}' WHERE seq = 2""")
    assert check(engine, signer).first_bad_seq == 2


def test_a_deleted_record_is_named(log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner) -> None:
    log.execute("DELETE FROM audit_events WHERE seq = 250")
    result = check(engine, signer)
    assert (result.ok, result.first_bad_seq) == (False, 250)
    assert "missing" in result.reason


def test_a_deleted_and_renumbered_record_is_named(
    log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner
) -> None:
    log.execute("DELETE FROM audit_events WHERE seq = 250")
    log.execute("UPDATE audit_events SET seq = seq - 1 WHERE seq > 250")
    assert check(engine, signer).first_bad_seq == 250


def test_an_inserted_record_is_named(log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner) -> None:
    # Make room at 400 and insert a forged record that chains correctly onto 399.
    cols = [r[1] for r in log.execute("PRAGMA table_info(audit_events)")]
    log.execute("UPDATE audit_events SET seq = -seq - 1 WHERE seq >= 400")
    log.execute("UPDATE audit_events SET seq = -seq WHERE seq < 0")

    row = dict(zip(cols, log.execute("SELECT * FROM audit_events WHERE seq = 399").fetchone(), strict=True))
    forged = {**row, "seq": 400, "receiver": "ind", "prev_hash": row["hash"]}
    rec = {
        **forged,
        "detail": json.loads(forged["detail"]),
        "occurred_at": datetime.fromisoformat(forged["occurred_at"]).replace(tzinfo=UTC),
    }
    forged["hash"] = record_hash(row["hash"], rec)
    log.execute(
        f"INSERT INTO audit_events ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", [forged[c] for c in cols]
    )
    result = check(engine, signer)
    assert not result.ok
    assert result.first_bad_seq == 400
    assert "inserted" in result.reason


def test_an_inserted_garbage_record_is_named(log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner) -> None:
    log.execute("UPDATE audit_events SET seq = -seq - 1 WHERE seq >= 10")
    log.execute("UPDATE audit_events SET seq = -seq WHERE seq < 0")
    log.execute(
        "INSERT INTO audit_events SELECT 10, event, occurred_at, status, trace_id, span_id, parent_span_id,"
        " message_id, message_type, sender, receiver, actor, protocol_id, subject_type, subject_hash, detail,"
        " prev_hash, hash FROM audit_events WHERE seq = 9"
    )
    assert check(engine, signer).first_bad_seq == 10


def test_reordered_records_are_named(log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner) -> None:
    log.execute("UPDATE audit_events SET seq = -1 WHERE seq = 77")
    log.execute("UPDATE audit_events SET seq = 77 WHERE seq = 78")
    log.execute("UPDATE audit_events SET seq = 78 WHERE seq = -1")
    result = check(engine, signer)
    assert (result.ok, result.first_bad_seq) == (False, 77)


def test_a_truncated_tail_is_caught_by_the_checkpoint(
    log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner
) -> None:
    log.execute("DELETE FROM audit_events WHERE seq > 590")
    log.execute("UPDATE audit_head SET seq = 590, hash = (SELECT hash FROM audit_events WHERE seq = 590)")
    result = check(engine, signer)
    assert not result.ok
    assert result.first_bad_seq == 591
    assert "truncated" in result.reason


def test_a_truncated_tail_is_caught_by_the_head(
    log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner
) -> None:
    log.execute("DELETE FROM audit_checkpoints")
    log.execute("DELETE FROM audit_events WHERE seq > 590")
    result = check(engine, signer)
    assert (result.ok, result.first_bad_seq) == (False, 591)


def test_a_consistent_rewrite_is_caught_by_the_signed_root(
    log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner
) -> None:
    # Hashes recomputed after the change: the chain is self-consistent, only the
    # signed root shows it. Records up to the checkpoint at 300 are proven good.
    log.execute("UPDATE audit_events SET receiver = 'ind' WHERE seq = 400")
    rehash_from(log, 400)
    result = check(engine, signer)
    assert not result.ok
    assert result.first_bad_seq == 301
    assert "rewritten" in result.reason


def test_the_subtree_cache_narrows_a_rewrite_to_its_block(
    engine: Engine, writer: Writer, signer: CheckpointSigner
) -> None:
    fill(writer, 300)
    writer.run_sync(lambda tx: create_checkpoint(tx.conn, signer))
    fill(writer, 800, start=300)
    writer.run_sync(lambda tx: create_checkpoint(tx.conn, signer))
    db = sqlite3.connect(str(engine.url.database), isolation_level=None)
    try:
        db.execute("UPDATE audit_events SET receiver = 'ind' WHERE seq = 800")
        rehash_from(db, 800)
        # Blocks 513..768 and 769..1024 are complete and cached: the second one differs.
        assert check(engine, signer).first_bad_seq == 769
        db.execute("DELETE FROM audit_tree")
        assert check(engine, signer).first_bad_seq == 301
    finally:
        db.close()


def test_a_forged_checkpoint_signature_is_refused(
    log: sqlite3.Connection, engine: Engine, signer: CheckpointSigner
) -> None:
    log.execute("UPDATE audit_checkpoints SET note = replace(note, 'timestamp 2', 'timestamp 1') WHERE id = 1")
    result = check(engine, signer)
    assert not result.ok
    assert "signature" in result.reason


def test_canonical_bytes_match_the_standard_library(writer: Writer, engine: Engine) -> None:

    fill(writer, 20)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events")).mappings().all()

    for row in rows:
        rec = dict(row)
        rec["occurred_at"] = datetime.fromisoformat(rec["occurred_at"]).replace(tzinfo=UTC)
        rec["detail"] = json.loads(rec["detail"])
        body = {
            k: rec[k]
            for k in (
                "seq",
                "event",
                "status",
                "trace_id",
                "span_id",
                "parent_span_id",
                "message_id",
                "message_type",
                "sender",
                "receiver",
                "actor",
                "protocol_id",
                "subject_type",
                "subject_hash",
                "detail",
            )
        }
        body["occurred_at"] = rec["occurred_at"].isoformat(timespec="microseconds")
        std = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert canonical(rec) == std


def test_tree_root_from_cache_equals_root_from_records(log: sqlite3.Connection, engine: Engine) -> None:
    with engine.connect() as conn:
        assert TreeReader(conn).root(N) == TreeReader(conn, use_cache=False).root(N)
        assert TreeReader(conn).root(517) == TreeReader(conn, use_cache=False).root(517)
