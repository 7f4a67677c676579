"""The store suite on PostgreSQL: the same writer tests as on SQLite, the migrations, and several
processes appending to one audit chain."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from hub.audit import verify
from hub.settings import ROOT, Settings
from hub.store import migrate
from hub.store.database import Writer, make_engine
from hub.store.tables import audit_events, audit_head, metadata, partners
from tests.test_store import (  # noqa: F401 - the SQLite suite, collected again here against PostgreSQL
    _partner_unit,
    test_a_failing_unit_leaves_no_trace_and_spares_its_batch,
    test_many_concurrent_units_are_committed_in_few_batches,
    writer,
)

pytestmark = pytest.mark.scale


@pytest.fixture
def settings(pg_settings: Settings) -> Settings:
    """The SQLite suite's store tests, imported above, run on PostgreSQL."""
    return pg_settings


def test_postgres_statements_carry_a_deadline(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "5s"
    finally:
        engine.dispose()


def test_migrations_match_the_declared_tables_on_postgres(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # a second start finds nothing to do
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


APPEND = """
import sys
from sqlalchemy import insert
from hub.audit import AuditEvent
from hub.settings import Settings
from hub.store import migrate
from hub.store.database import Writer, make_engine
from hub.store.tables import partners
settings = Settings(database_url=sys.argv[1])  # development keys: a helper process, not a hub
engine = make_engine(settings, writer=True)
migrate.upgrade(engine)
writer = Writer(engine, batch_max=16)
writer.start()
tag = sys.argv[2]
def unit(i):
    def run(tx):
        tx.conn.execute(insert(partners).values(id=f"{tag}-{i}", name=tag, role="gemeente", plateau=1,
                        adapter_config={}, codes=[], active=True, created_at=tx.now))
        tx.audit(AuditEvent("admin_changed", detail={"partner": f"{tag}-{i}"}))
    return run
futures = [writer.submit_future(unit(i)) for i in range(300)]
for f in futures:
    f.result(timeout=120)
writer.stop()
engine.dispose()
"""


def test_three_processes_migrate_and_append_to_one_audit_chain(settings: Settings) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", APPEND, settings.database_url, f"p{i}"], cwd=ROOT) for i in range(3)
    ]
    for p in procs:
        assert p.wait(180) == 0
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(partners)).scalar() == 900
            assert conn.execute(select(func.count()).select_from(audit_events)).scalar() == 900
            result = verify(conn)
            assert result.ok, result
    finally:
        engine.dispose()


def test_only_batches_with_audit_records_wait_for_the_chain_head(
    settings: Settings,
    writer: Writer,  # noqa: F811 - the fixture imported from tests.test_store
) -> None:
    writer.run_sync(_partner_unit("first"))  # the head row exists
    engine = make_engine(settings)
    try:
        with engine.connect() as other:
            other.execute(select(audit_head).where(audit_head.c.id == 1).with_for_update())  # another process flushing
            writer.run_sync(_partner_unit("plain", audited=False), timeout=5)  # not held up
            waiting = writer.submit_future(_partner_unit("audited"))
            time.sleep(0.5)
            assert not waiting.done()  # chained only once the head is free
            other.rollback()
        waiting.result(timeout=10)
        with engine.connect() as conn:
            assert verify(conn).ok
            assert conn.execute(select(func.count()).select_from(audit_events)).scalar() == 2
    finally:
        engine.dispose()
