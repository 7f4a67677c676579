"""The audit chain: `knooppunt audit verify` finds tampering and names the first bad record."""

from __future__ import annotations

from sqlalchemy import create_engine, delete, text, update
from typer.testing import CliRunner

from hub.audit import AuditEvent
from hub.cli.main import app
from hub.settings import Settings
from hub.store import migrate
from hub.store.database import Tx, Writer, make_engine
from hub.store.tables import audit_events


def _fill(settings: Settings, n: int) -> None:
    engine = make_engine(settings, writer=True)
    migrate.upgrade(engine)
    w = Writer(engine)
    w.start()

    def unit(tx: Tx) -> None:
        for i in range(n):
            tx.audit(AuditEvent("consulted", actor="test", detail={"i": i}))

    w.run_sync(unit)
    w.stop()
    engine.dispose()


def _verify(settings: Settings) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify"], env={"KNOOPPUNT_DATABASE_URL": settings.database_url})
    return result.exit_code, result.output


def _tamper(settings: Settings, *statements: object) -> None:
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(sql)  # type: ignore[call-overload]
    engine.dispose()


def test_an_intact_chain_verifies(settings: Settings) -> None:
    _fill(settings, 20)
    code, out = _verify(settings)
    assert code == 0
    assert "20 records" in out


def test_a_changed_record_is_named(settings: Settings) -> None:
    _fill(settings, 20)
    _tamper(settings, update(audit_events).where(audit_events.c.seq == 7).values(actor="someone else"))
    code, out = _verify(settings)
    assert code == 1
    assert "record 7" in out


def test_a_deleted_record_is_named(settings: Settings) -> None:
    _fill(settings, 20)
    _tamper(settings, delete(audit_events).where(audit_events.c.seq == 12))
    code, out = _verify(settings)
    assert code == 1
    assert "record 12" in out


def test_reordered_records_are_detected(settings: Settings) -> None:
    _fill(settings, 20)
    _tamper(
        settings,
        text("UPDATE audit_events SET seq = -1 WHERE seq = 4"),
        text("UPDATE audit_events SET seq = 4 WHERE seq = 5"),
        text("UPDATE audit_events SET seq = 5 WHERE seq = -1"),
    )
    code, out = _verify(settings)
    assert code == 1
    assert "record 4" in out


def test_a_truncated_tail_is_detected(settings: Settings) -> None:
    _fill(settings, 20)
    _tamper(settings, delete(audit_events).where(audit_events.c.seq > 17))
    code, out = _verify(settings)
    assert code == 1
    assert "18" in out
