from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from hub.audit import AuditEvent
from hub.audit.checkpoint import CheckpointSigner
from hub.crypto import SubjectHasher
from hub.settings import Settings
from hub.store.database import Tx, Writer, make_engine
from hub.store.migrate import upgrade
from tests.conftest import make_settings

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HASHER = SubjectHasher(b"k" * 32)
INSZ_A = "85073003328"
INSZ_B = "90022712345"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # env "test" refuses the public development keys: bring the suite's own
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def writer(settings: Settings, engine: Engine) -> Iterator[Writer]:
    w_engine = make_engine(settings, writer=True)
    w = Writer(w_engine)
    w.start()
    yield w
    w.stop()
    w_engine.dispose()


@pytest.fixture
def signer(settings: Settings) -> CheckpointSigner:
    return CheckpointSigner.from_settings(settings)


def sample_event(i: int) -> AuditEvent:
    subject = INSZ_A if i % 3 == 0 else INSZ_B
    return AuditEvent(
        ["received", "routed", "delivered", "consulted", "failed"][i % 5],
        status="failed" if i % 5 == 4 else "ok",
        trace_id=f"{i:032x}",
        message_id=f"00000000-0000-4000-8000-{i:012d}",
        message_type=["inburgeringsplicht", "pip", "klantprofiel"][i % 3],
        sender=["duo", "coa", "gemeente-gent"][i % 3],
        receiver=["gemeente-gent", "duo", "agii"][i % 3],
        actor="=cmd|' /C calc'!A0" if i == 7 else None,
        protocol_id=["nl-inburgeringsplicht", "nl-pip", "nl-klantprofiel"][i % 3],
        subject_type="INSZ",
        subject_hash=HASHER("INSZ", subject),
        detail={"n": i, "note": "é\u2028\x01", "list": [1, None, True, 1.5]},
    )


def fill(writer: Writer, n: int, *, start: int = 0, step: timedelta = timedelta(hours=1)) -> None:
    """Append n sample events, 50 per unit, with occurred_at spread over time."""

    def unit_for(lo: int, hi: int) -> Callable[[Tx], None]:
        def unit(tx: Tx) -> None:
            for i in range(lo, hi):
                tx.chain.append(sample_event(i), T0 + step * i)

        return unit

    for lo in range(start, start + n, 50):
        writer.run_sync(unit_for(lo, min(lo + 50, start + n)))
