from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from hub.audit import verify
from hub.audit.checkpoint import CheckpointSigner, checkpoint_unit
from hub.audit.retention import month_end, plan_purge, purge_unit, retention_of
from hub.audit.search import AuditQuery, search
from hub.protocols import retention_days
from hub.store.database import Tx, Writer
from hub.store.tables import data_keys, messages

from .conftest import fill

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def seed(tx: Tx) -> None:
    for key_id, protocol, period in [
        (1, "nl-pip", "2019-10"),  # P7Y: expired on 2026-11-01 + 7*365 days? see below
        (2, "nl-pip", "2025-01"),
        (3, "nl-klantprofiel", "2025-10"),  # P1Y -> past on 2026-11-01
        (4, "nl-klantprofiel", "2025-11"),  # P1Y -> month ends 2025-12-01, + 365 days = 2026-12-01: kept
        (5, "unknown-protocol", "2001-01"),  # no retention known: kept
    ]:
        tx.conn.execute(
            insert(data_keys).values(
                id=key_id, protocol_id=protocol, period=period, master_kid="k", wrapped_key=b"w" * 60, created_at=NOW
            )
        )
        for m in range(3):
            tx.conn.execute(
                insert(messages).values(
                    id=f"{key_id}-{m}",
                    type="pip",
                    version="1.0",
                    sender="duo",
                    receivers=["x"],
                    subject_type="INSZ",
                    subject_hash="h",
                    protocol_id=protocol,
                    created_at=NOW,
                    received_at=NOW,
                    digest="d",
                    channel="rest",
                    data_key_id=key_id,
                    nonce=b"n" * 12,
                    ciphertext=b"secret",
                    payload_size=6,
                )
            )


RETENTION = {"nl-pip": retention_days("P7Y"), "nl-klantprofiel": retention_days("P1Y")}


def test_month_end() -> None:
    assert month_end("2025-12") == datetime(2026, 1, 1, tzinfo=UTC)
    assert month_end("2026-02") == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_purge_shreds_expired_keys_and_keeps_the_chain_valid(
    engine: Engine, writer: Writer, signer: CheckpointSigner
) -> None:
    fill(writer, 30)
    writer.run_sync(checkpoint_unit(signer))
    writer.run_sync(seed)
    with engine.connect() as conn:
        plan = plan_purge(conn, RETENTION, now=NOW)
    assert [(p.data_key_id, p.messages) for p in plan] == [(1, 3), (3, 3)]

    def at(now: datetime):  # type: ignore[no-untyped-def]
        unit = purge_unit(RETENTION)
        return lambda tx: unit(Tx(tx.conn, tx.chain, now, tx.batch))

    purged = writer.run_sync(at(NOW))
    assert [p.data_key_id for p in purged] == [1, 3]
    fill(writer, 5, start=30)
    writer.run_sync(checkpoint_unit(signer))
    with engine.connect() as conn:
        keys = {r.id: r for r in conn.execute(select(data_keys))}
        assert keys[1].wrapped_key is None
        assert keys[1].destroyed_at is not None
        assert keys[3].wrapped_key is None
        assert all(keys[k].wrapped_key is not None for k in (2, 4, 5))
        texts = dict(conn.execute(select(messages.c.id, messages.c.ciphertext)).all())
        assert {k for k, v in texts.items() if v is None} == {"1-0", "1-1", "1-2", "3-0", "3-1", "3-2"}
        records = search(conn, AuditQuery(events=("purged",)), newest_first=False).records
        assert [(r.protocol_id, r.detail["dataKeyId"], r.detail["messages"]) for r in records] == [
            ("nl-pip", 1, 3),
            ("nl-klantprofiel", 3, 3),
        ]
        result = verify(conn, public_key=signer.public_raw)
    assert result.ok, result.summary()
    assert result.checked == 37
    # A second run finds nothing more to do and writes nothing.
    assert writer.run_sync(at(NOW)) == []


def test_retention_of_reads_protocols() -> None:
    class P:
        def __init__(self, id: str, days: int) -> None:
            self.id, self.retention_days = id, days

    assert retention_of([P("a", 10), P("b", 20)]) == {"a": 10, "b": 20}
