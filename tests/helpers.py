"""Small helpers for tests: counting rows, reading the audit log, building XML messages."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from hub.envelope import to_xml
from hub.settings import ROOT, Settings
from hub.store.tables import audit_events, messages


def count_messages(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())
    finally:
        engine.dispose()


def audit_rows(settings: Settings, event: str | None = None) -> list[dict[str, Any]]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            query = select(audit_events).order_by(audit_events.c.seq)
            if event:
                query = query.where(audit_events.c.event == event)
            return [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()


def xml_message(doc: dict[str, Any], infomodel: Any) -> bytes:
    """The XML form of a JSON demo message, converted through the info model."""
    from hub import envelope as env

    envelope, payload = env.from_json(doc)
    mtype = infomodel.get(envelope.type, envelope.version)
    return to_xml(envelope, infomodel.json_to_xml(mtype, payload))


@contextlib.contextmanager
def run_demo(tmp_path: Path, port: int, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`knooppunt run --demo --port PORT` as a user starts it, on a database in ``tmp_path``, its
    output in ``tmp_path / "run.log"``; stopped (SIGTERM, then SIGKILL) when the block ends."""
    from tests.conftest import TEST_AUDIT_KEY, TEST_PAYLOAD_KEY, TEST_SIGNING_KEY

    full = {
        **os.environ,
        "KNOOPPUNT_ENV": "test",
        "KNOOPPUNT_PAYLOAD_KEY": TEST_PAYLOAD_KEY,
        "KNOOPPUNT_AUDIT_HMAC_KEY": TEST_AUDIT_KEY,
        "KNOOPPUNT_AUDIT_SIGNING_KEY": TEST_SIGNING_KEY,
        "KNOOPPUNT_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
        "KNOOPPUNT_LOG_LEVEL": "warning",
        **env,
    }
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli.main", "run", "--demo", "--port", str(port)],
            env=full,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc, log
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_for_output(proc: subprocess.Popen[bytes], log: Path, *texts: str, timeout: float = 90.0) -> str:
    """Wait until the process has written one of ``texts`` (failing with its output if it ends
    or takes longer); -> the output so far."""
    deadline = time.monotonic() + timeout
    while True:
        shown = log.read_text()
        if any(text in shown for text in texts):
            return shown
        assert proc.poll() is None, shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.002)
