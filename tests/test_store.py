"""The store: durable settings, group commit, one failing unit never takes the batch down,
and the Alembic migrations create exactly the tables the code declares."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, insert, select, text

from hub.audit import AuditEvent, verify
from hub.errors import Conflict
from hub.settings import Settings
from hub.store import migrate
from hub.store.database import Tx, Writer, make_engine
from hub.store.tables import audit_events, metadata, partners


@pytest.fixture
def writer(settings: Settings) -> Writer:
    engine = make_engine(settings, writer=True)
    migrate.upgrade(engine)
    w = Writer(engine, batch_max=64)
    w.start()
    yield w
    w.stop()
    engine.dispose()


def test_sqlite_runs_wal_with_synchronous_full(settings: Settings) -> None:
    engine = make_engine(settings)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def _partner_unit(pid: str, fail: bool = False, *, audited: bool = True):  # type: ignore[no-untyped-def]
    def unit(tx: Tx) -> str:
        tx.conn.execute(
            insert(partners).values(
                id=pid,
                name=pid,
                role="gemeente",
                plateau=1,
                adapter_config={},
                codes=[],
                active=True,
                created_at=tx.now,
            )
        )
        if audited:
            tx.audit(AuditEvent("admin_changed", detail={"partner": pid}))
        if fail:
            raise Conflict("deze eenheid faalt met opzet")
        return pid

    return unit


def test_many_concurrent_units_are_committed_in_few_batches(writer: Writer) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        value = writer.run_sync(_partner_unit(f"p-{i}"))
        with lock:
            results.append(value)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert writer.batches < 200  # group commit happened
    with writer.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(partners)).scalar() == 200
        assert verify(conn).ok


def _lingering_writer(settings: Settings, linger: float) -> Writer:
    engine = make_engine(settings, writer=True)
    migrate.upgrade(engine)
    w = Writer(engine, linger=linger)
    w.start()
    return w


@pytest.mark.parametrize("linger", [0.0, 0.5])
def test_a_busy_writer_lingers_so_units_on_their_way_share_one_batch(settings: Settings, linger: float) -> None:
    """Two units arriving 100 ms apart right after a batch: with a 500 ms linger they are
    written together; without one, each gets its own batch."""
    w = _lingering_writer(settings, linger)
    try:
        w.run_sync(_partner_unit("eerste"))  # the writer was idle: written at once
        before = w.batches
        second = w.submit_future(_partner_unit("tweede"))  # the writer is busy (just wrote)
        time.sleep(0.1)
        third = w.submit_future(_partner_unit("derde"))
        assert (second.result(timeout=5), third.result(timeout=5)) == ("tweede", "derde")
        assert w.batches - before == (1 if linger else 2)
    finally:
        w.stop()
        w.engine.dispose()


def test_an_idle_writer_does_not_linger(settings: Settings) -> None:
    w = _lingering_writer(settings, 2.0)
    try:
        w.run_sync(_partner_unit("warm"))
        time.sleep(2.2)  # idle for longer than the linger
        started = time.monotonic()
        w.run_sync(_partner_unit("meteen"))
        assert time.monotonic() - started < 1.0
    finally:
        w.stop()
        w.engine.dispose()


def test_a_failing_unit_leaves_no_trace_and_spares_its_batch(writer: Writer) -> None:
    futures = [writer.submit_future(_partner_unit(f"q-{i}", fail=(i == 5))) for i in range(10)]
    outcomes = []
    for f in futures:
        try:
            outcomes.append(f.result(timeout=10))
        except Conflict:
            outcomes.append("failed")
    assert outcomes.count("failed") == 1
    with writer.engine.connect() as conn:
        ids = {r[0] for r in conn.execute(select(partners.c.id))}
        assert "q-5" not in ids
        assert len(ids) == 9
        # the failed unit's audit record was rolled back with it, and the chain is whole
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar() == 9
        assert verify(conn).ok


def test_migrations_match_the_declared_tables(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}")
    engine = make_engine(settings)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def _buffered_partner_unit(pid: str):  # type: ignore[no-untyped-def]
    def unit(tx: Tx) -> str:
        tx.insert(
            partners,
            {
                "id": pid,
                "name": pid,
                "role": "gemeente",
                "plateau": 1,
                "adapter_config": {"url": "http://127.0.0.1:1/x", "n": [1, 2]},
                "codes": ["0228"],
                "active": True,
                "created_at": tx.now,
            },
        )
        return pid

    unit.pure = True  # type: ignore[attr-defined]
    return unit


def test_buffered_rows_read_back_as_sqlalchemy_wrote_them(writer: Writer) -> None:
    """The writer hands buffered rows to the driver itself on SQLite; JSON, booleans and
    timestamps must come back exactly as through SQLAlchemy."""
    assert writer.run_sync(_buffered_partner_unit("raw-1")) == "raw-1"
    writer.run_sync(_partner_unit("sa-1"))
    with writer.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(partners))}
    raw, via_sa = rows["raw-1"], rows["sa-1"]
    assert raw.adapter_config == {"url": "http://127.0.0.1:1/x", "n": [1, 2]}
    assert raw.codes == ["0228"]
    assert raw.active is True
    assert raw.plateau == 1
    assert type(raw.created_at) is type(via_sa.created_at)


def test_a_buffered_row_that_breaks_a_constraint_fails_only_its_own_unit(writer: Writer) -> None:
    writer.run_sync(_buffered_partner_unit("dup"))
    futures = [writer.submit_future(_buffered_partner_unit(pid)) for pid in ("b-1", "dup", "b-2")]
    outcomes = []
    for f in futures:
        try:
            outcomes.append(f.result(timeout=10))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes[0] == "b-1"
    assert outcomes[2] == "b-2"
    assert outcomes[1] in ("IntegrityError", "StoreError")
    with writer.engine.connect() as conn:
        assert {r[0] for r in conn.execute(select(partners.c.id))} == {"dup", "b-1", "b-2"}
        assert verify(conn).ok


def test_a_unit_that_crashes_fails_alone_and_the_writer_keeps_running(writer: Writer) -> None:
    from hub.errors import StoreError

    def crash(tx: Tx) -> None:
        raise RuntimeError("a bug in a unit of work")

    futures = [
        writer.submit_future(_partner_unit("c-1")),
        writer.submit_future(crash),
        writer.submit_future(_partner_unit("c-2")),
    ]
    assert futures[0].result(timeout=10) == "c-1"
    with pytest.raises(StoreError):
        futures[1].result(timeout=10)
    assert futures[2].result(timeout=10) == "c-2"
    assert writer.is_running()
    assert writer.run_sync(_partner_unit("c-3")) == "c-3"


def test_a_batch_larger_than_one_statement_allows_is_inserted_whole(writer: Writer) -> None:
    """Buffered rows go to SQLite as multi-row INSERTs, cut where SQLite's variable limit is."""

    def many(tx: Tx) -> int:
        for i in range(5000):
            tx.insert(
                partners,
                {
                    "id": f"m-{i}",
                    "name": f"m-{i}",
                    "role": "gemeente",
                    "plateau": 1,
                    "adapter_config": {},
                    "codes": [],
                    "active": i % 2 == 0,
                    "created_at": tx.now,
                },
            )
        return 5000

    many.pure = True  # type: ignore[attr-defined]
    assert writer.run_sync(many) == 5000
    with writer.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(partners)).scalar() == 5000
        assert conn.execute(select(func.count()).select_from(partners).where(partners.c.active)).scalar() == 2500
        assert conn.execute(select(partners.c.name).where(partners.c.id == "m-4999")).scalar() == "m-4999"


def test_the_writer_lingers_longer_on_postgresql_unless_told(tmp_path: Path) -> None:
    """A PostgreSQL batch costs a dozen round trips whatever its size; SQLite's an fsync."""
    from hub.settings import StoreSettings
    from tests.conftest import make_settings

    assert make_settings(tmp_path).writer_linger_seconds == 0.002
    pg = make_settings(tmp_path, database_url="postgresql+psycopg://localhost/test")
    assert pg.writer_linger_seconds == 0.008
    chosen = make_settings(tmp_path, database_url=pg.database_url, store=StoreSettings(linger_ms=0))
    assert chosen.writer_linger_seconds == 0.0
