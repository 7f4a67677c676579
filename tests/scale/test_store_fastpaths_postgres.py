"""The store's PostgreSQL fast paths, on the real database: the writer's COPY stores exactly
what SQLAlchemy's executemany stores; HotReads answer what a pooled connection answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, Connection, Engine, TableClause, Text, bindparam, cast, func, insert, select, text

from hub.directory import FOLLOWERS
from hub.settings import Settings
from hub.store import database, migrate
from hub.store.database import HotReads, insert_rows, make_engine
from hub.store.tables import audit_events, data_keys, deliveries, messages, outbox, partners

pytestmark = pytest.mark.scale

WHEN = datetime(2026, 11, 24, 10, 30, 1, 123456, tzinfo=UTC)
ELSEWHERE = timezone(timedelta(hours=2))


@pytest.fixture
def engine(pg_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(pg_settings, writer=True)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(data_keys).values(id=1, protocol_id="p", period="2026-11", master_kid="k", created_at=WHEN))
    yield engine
    engine.dispose()


def _message(i: int) -> dict[str, Any]:
    return {
        "id": f"m-{i:04d}",
        "type": "Aanmelding",
        "version": "1.0",
        "sender": "agii",
        "receivers": ["duo", f"gemeente-{i}", "ë €"],
        "subject_type": None if i % 3 else "insz",
        "subject_hash": f"{i:064x}",
        "protocol_id": "p",
        "conversation_id": None,
        "traceparent": "00-abc-def-01" if i % 2 else None,
        "created_at": WHEN.astimezone(ELSEWHERE) + timedelta(seconds=i),
        "received_at": WHEN,
        "digest": "d" * 64,
        "channel": "rest",
        "data_key_id": 1,
        "nonce": bytes([i % 256]) * 12,
        "ciphertext": None if i % 5 == 0 else b"\x00\xff%s" + bytes([i % 256]),
        "payload_size": i,
    }


def _delivery(i: int) -> dict[str, Any]:
    return {
        "message_id": f"m-{i:04d}",
        "receiver": "duo",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None if i % 2 else "50% 'kapot'; %s %(x)s\t\\N \\ \r\n\"\x01 ",
        "delivered_at": None,
        "updated_at": WHEN,
    }


def _outbox(i: int) -> dict[str, Any]:
    return {"message_id": f"m-{i:04d}", "receiver": "duo", "available_at": WHEN, "published_at": None}


def _audit(i: int) -> dict[str, Any]:
    return {
        "seq": i + 1,
        "event": "received",
        "occurred_at": WHEN,
        "status": "ok",
        "trace_id": f"{i:032x}",
        "span_id": f"{i:016x}",
        "parent_span_id": None,
        "message_id": f"m-{i:04d}",
        "message_type": "Aanmelding",
        "sender": "agii",
        "receiver": None,
        "actor": "" if i % 2 else "ä\\N",
        "protocol_id": "p",
        "subject_type": None,
        "subject_hash": None,
        "detail": {"b": [1, 2.5, None, True], "a": {"ü": "x"}} if i % 2 else {},
        "prev_hash": "0" * 64,
        "hash": f"{i:064x}",
    }


TABLES: list[tuple[TableClause, Any]] = [
    (messages, _message),
    (deliveries, _delivery),
    (outbox, _outbox),
    (audit_events, _audit),
]


def _stored(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, _ in TABLES:
        # the serial ids come from sequences, which a rolled-back transaction does not rewind
        columns: list[Any] = [c for c in table.c if not (c.name == "id" and table in (deliveries, outbox))]
        plain = [c for c in columns if not isinstance(c.type, JSON)]
        # JSON columns keep the text they were given: compare that text too, not only its value
        texts = [cast(c, Text) for c in columns if isinstance(c.type, JSON)]
        out[table.name] = [tuple(row) for row in conn.execute(select(*columns, *texts).order_by(*plain))]
    return out


def _write(engine: Engine, count: int, inserter: Any) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        tx = conn.begin()
        for table, make in TABLES:
            inserter(conn, table, [make(i) for i in range(count)])
        stored = _stored(conn)
        tx.rollback()
    return stored


@pytest.mark.parametrize("count", [1, 3, 300])
def test_copy_stores_what_executemany_stores(engine: Engine, count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _write(engine, count, database._insert_with_sqlalchemy)
    fallbacks: list[str] = []
    real = database._insert_with_sqlalchemy
    monkeypatch.setattr(
        database,
        "_insert_with_sqlalchemy",
        lambda conn, table, rows: (fallbacks.append(table.name), real(conn, table, rows)),
    )
    got = _write(engine, count, insert_rows)
    assert fallbacks == []  # every table took the COPY path
    assert got == expected
    assert len(got["messages"]) == count
    assert got["messages"][0][4] == ["duo", "gemeente-0", "ë €"]


def test_rows_leaving_a_column_to_its_default_go_through_sqlalchemy(engine: Engine) -> None:
    defaulted = [{k: v for k, v in _delivery(i).items() if k != "attempts"} for i in range(3)]  # default=0
    with engine.connect() as conn, conn.begin():
        insert_rows(conn, messages, [_message(i) for i in range(3)])
        insert_rows(conn, deliveries, defaulted)
        rows = conn.execute(select(deliveries.c.message_id, deliveries.c.attempts)).all()
    assert sorted(rows) == [("m-0000", 0), ("m-0001", 0), ("m-0002", 0)]


def test_a_failing_copy_raises_sqlalchemy_s_integrity_error(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with engine.connect() as conn, conn.begin(), pytest.raises(IntegrityError):
        insert_rows(conn, messages, [_message(1), _message(1)])


def test_a_copy_on_a_lost_connection_invalidates_it(engine: Engine) -> None:
    from sqlalchemy.exc import DBAPIError

    with engine.connect() as conn:
        pid = conn.execute(select(func.pg_backend_pid())).scalar()
        conn.commit()
        with engine.connect() as other:
            other.execute(select(func.pg_terminate_backend(pid)))
        with pytest.raises(DBAPIError) as caught:
            insert_rows(conn, messages, [_message(1)])
        assert caught.value.connection_invalidated
        assert conn.invalidated


# -- HotReads on PostgreSQL: one autocommit connection per thread instead of a checkout per read ----------

_BY_ROLE = select(partners.c.id, partners.c.name, partners.c.plateau).where(partners.c.role == bindparam("role"))


def _add_partner(engine: Engine, pid: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(partners).values(
                id=pid, name=f"naam {pid}", role="gemeente", plateau=1, adapter_config={}, codes=[], created_at=WHEN
            )
        )


def test_hot_reads_answer_what_a_pooled_connection_answers(engine: Engine) -> None:
    for pid in ("a", "b"):
        _add_partner(engine, pid)
    reads = HotReads(engine)
    try:
        with engine.connect() as conn:
            for statement, params in [
                (_BY_ROLE, {"role": "gemeente"}),
                (_BY_ROLE, {"role": "niemand"}),
                (FOLLOWERS, {"id_hash": "x" * 64, "at": WHEN.date()}),
            ]:
                expected = [tuple(row) for row in conn.execute(statement, params)]
                assert sorted(reads.rows(statement, params)) == sorted(expected)
        assert sorted(reads.rows(_BY_ROLE, {"role": "gemeente"})) == [("a", "naam a", 1), ("b", "naam b", 1)]
    finally:
        reads.close()


def test_hot_reads_see_every_commit_and_hold_no_transaction_open(engine: Engine) -> None:
    reads = HotReads(engine)
    try:
        assert reads.rows(_BY_ROLE, {"role": "gemeente"}) == []
        _add_partner(engine, "later")
        assert [r[0] for r in reads.rows(_BY_ROLE, {"role": "gemeente"})] == ["later"]
        (pid,) = reads.rows(select(func.pg_backend_pid()), {})[0]
        with engine.connect() as conn:
            state = conn.execute(
                select(text("state")).select_from(text("pg_stat_activity")).where(text("pid = :pid")), {"pid": pid}
            ).scalar()
        assert state == "idle"  # not "idle in transaction"
    finally:
        reads.close()


def test_hot_reads_survive_a_lost_connection_and_return_none_to_the_pool(engine: Engine) -> None:
    reads = HotReads(engine)
    checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    try:
        (pid,) = reads.rows(select(func.pg_backend_pid()), {})[0]
        with engine.connect() as conn:
            conn.execute(select(func.pg_terminate_backend(pid)))
        _add_partner(engine, "na")
        assert [r[0] for r in reads.rows(_BY_ROLE, {"role": "gemeente"})] == ["na"]
        (other,) = reads.rows(select(func.pg_backend_pid()), {})[0]
        assert other != pid
        assert engine.pool.checkedout() == checked_out  # type: ignore[attr-defined]
    finally:
        reads.close()
    with engine.connect() as conn:
        alive = conn.execute(
            select(func.count()).select_from(text("pg_stat_activity")).where(text("pid = :pid")), {"pid": other}
        ).scalar()
    assert alive == 0  # close() closed it, it did not go back to the pool
