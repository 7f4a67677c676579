"""Benchmark the audit log at scale: DPO search, the 12-month person report, verify.

    python -m bench.audit                 # 1,000,000 records
    python -m bench.audit --records 100000 --db /tmp/audit.db

Fills SQLite through a bulk path (raw sqlite3 executemany, the same bytes the
writer stores and the same chained hashes), signs a checkpoint with the hub's
own function, then times each operation beside a baseline measured in the
same run on the same rows:

- search by data subject (first page) vs a bare ``SELECT count(*)`` on the index;
- the 12-month person report vs a bare indexed ``SELECT seq``;
- ``verify`` vs a plain fetch + sha256 loop over the same rows.

Targets (issue 6): search and report < 200 ms, verify >= 200,000 records/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from hub.audit import verify
from hub.audit.chain import GENESIS, json_text, record_hash
from hub.audit.checkpoint import CheckpointSigner, create_checkpoint
from hub.audit.export import export_range
from hub.audit.search import AuditQuery, search, subject_report
from hub.audit.verify import _COLUMNS as VERIFY_COLUMNS
from hub.crypto import SubjectHasher
from hub.settings import Settings
from hub.store.database import make_engine
from hub.store.migrate import upgrade

EVENTS = ("received", "routed", "delivered", "delivered", "consulted", "retry_scheduled", "refused")
PARTNERS = [f"gemeente-{i:03d}" for i in range(40)] + ["duo", "coa", "agii", "atlas", "in-gent", "vdab", "magda"]
TYPES = ("inburgeringsplicht", "pip", "klantprofiel", "map-voortgang", "b1-resultaat", "geefpersoon")
COLUMNS = (
    "seq", "event", "occurred_at", "status", "trace_id", "span_id", "parent_span_id", "message_id", "message_type",
    "sender", "receiver", "actor", "protocol_id", "subject_type", "subject_hash", "detail", "prev_hash", "hash",
)  # fmt: skip

END = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)


def _detail(event: str, seq: int, receiver: str) -> dict[str, object]:
    """What the hub writes per event (docs/audit-events.md), so verify parses real details."""
    if event == "received":
        return {"channel": "rest", "version": "1.0", "bytes": 800 + seq % 3000}
    if event == "routed":
        return {"receivers": [receiver]}
    if event == "delivered":
        return {"attempt": 1, "reference": f"ref-{seq}"}
    if event == "retry_scheduled":
        return {"attempt": 2, "error": "HTTP 503", "nextAttemptAt": "2026-11-01T10:00:00+00:00"}
    if event == "refused":
        return {"code": "not_allowed", "reason": "geen protocol", "channel": "soap"}
    return {"lookup": "GeefPersoon", "fields": ["naam", "adres"]}


def bulk_fill(db_path: Path, n: int, *, persons: int, seed: int = 6) -> list[str]:
    """Append ``n`` chained records straight into SQLite; returns the subject hashes used."""
    rnd = random.Random(seed)
    hasher = SubjectHasher(b"b" * 32)
    subjects = [hasher("INSZ", f"{85000000000 + i:011d}") for i in range(persons)]
    step = SPAN / n
    start = END - SPAN
    db = sqlite3.connect(str(db_path), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    prev = GENESIS
    sql = f"INSERT INTO audit_events ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"
    batch: list[tuple[object, ...]] = []
    for seq in range(1, n + 1):
        when = start + step * seq
        event = EVENTS[seq % len(EVENTS)]
        sender, receiver = rnd.sample(PARTNERS, 2)
        mtype = TYPES[seq % len(TYPES)]
        detail = _detail(event, seq, receiver)
        row = {
            "seq": seq,
            "event": event,
            "occurred_at": when,
            "status": "refused" if event == "refused" else "ok",
            "trace_id": f"{rnd.getrandbits(128):032x}",
            "span_id": f"{rnd.getrandbits(64):016x}",
            "parent_span_id": None,
            "message_id": f"{rnd.getrandbits(128):032x}",
            "message_type": mtype,
            "sender": sender,
            "receiver": receiver,
            "actor": None,
            "protocol_id": f"nl-{mtype}",
            "subject_type": "INSZ",
            # subjects[0] is a "heavy" person: one record in 500 (2,000 in a million).
            "subject_hash": subjects[0] if seq % 500 == 0 else subjects[rnd.randrange(1, persons)],
            "detail": detail,
        }
        h = record_hash(prev, row)
        row["prev_hash"], row["hash"] = prev, h
        prev = h
        # The bytes the writer stores on SQLite: naive UTC text, canonical JSON detail.
        row["occurred_at"] = when.strftime("%Y-%m-%d %H:%M:%S.%f")
        row["detail"] = json_text(detail)
        batch.append(tuple(row[c] for c in COLUMNS))
        if len(batch) == 50_000:
            db.executemany(sql, batch)
            batch.clear()
    if batch:
        db.executemany(sql, batch)
    db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (n, prev))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return subjects


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run(records: int, db_path: Path, *, reuse: bool = False) -> dict[str, float]:
    settings = Settings(database_url=f"sqlite:///{db_path}")
    engine: Engine = make_engine(settings)
    upgrade(engine)
    figures: dict[str, float] = {}
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    if reuse:
        with engine.connect() as conn:
            records = int(conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar_one())
            subjects = [r[0] for r in conn.exec_driver_sql("SELECT DISTINCT subject_hash FROM audit_events LIMIT 1000")]
            subjects.insert(
                0, conn.exec_driver_sql("SELECT subject_hash FROM audit_events WHERE seq = 500").scalar_one()
            )
        print(f"reusing {db_path}: {records:,} records")
    else:
        t = time.perf_counter()
        subjects = bulk_fill(db_path, records, persons=max(10, records // 50))
        figures["fill_s"] = time.perf_counter() - t
        print(f"filled {records:,} records in {figures['fill_s']:.1f} s")

    signer = CheckpointSigner.from_settings(settings)
    with engine.begin() as conn:
        t = time.perf_counter()
        cp = create_checkpoint(conn, signer)
        figures["checkpoint_cold_ms"] = (time.perf_counter() - t) * 1000
    print(f"first checkpoint (builds the subtree cache): {figures['checkpoint_cold_ms']:.0f} ms, size {cp.size:,}")
    with engine.begin() as conn:
        t = time.perf_counter()
        create_checkpoint(conn, signer)
        figures["checkpoint_warm_ms"] = (time.perf_counter() - t) * 1000
    print(f"next checkpoint (cache warm): {figures['checkpoint_warm_ms']:.1f} ms")

    rnd = random.Random(1)
    probes = [rnd.choice(subjects) for _ in range(30)]
    with engine.connect() as conn:
        raw = conn.connection.cursor()
        it = iter(probes * 10)
        base = timed(
            lambda: raw.execute("SELECT count(*) FROM audit_events WHERE subject_hash = ?", (next(it),)).fetchone(), 30
        )
        it = iter(probes * 10)
        ours = timed(lambda: search(conn, AuditQuery(subject_hash=next(it)), limit=100), 30)
        figures["search_subject_ms"], figures["search_subject_baseline_ms"] = ours, base
        print(
            f"search by data subject (page of 100): {ours:.2f} ms median"
            f"   [baseline bare COUNT on the index: {base:.2f} ms]  target < 200 ms"
        )

        it = iter(probes * 10)
        since = (END - timedelta(days=366)).strftime("%Y-%m-%d %H:%M:%S.%f")
        base = timed(
            lambda: raw.execute(
                "SELECT seq FROM audit_events WHERE subject_hash = ? AND occurred_at >= ?", (next(it), since)
            ).fetchall(),
            30,
        )
        it = iter(probes * 10)
        ours = timed(lambda: subject_report(conn, next(it), now=END), 30)
        figures["report_ms"], figures["report_baseline_ms"] = ours, base
        n_entries = len(subject_report(conn, probes[0], now=END).entries)
        print(
            f"12-month person report ({n_entries} entries): {ours:.2f} ms median"
            f"   [baseline bare indexed SELECT: {base:.2f} ms]  target < 200 ms"
        )

        heavy = subjects[0]
        ours = timed(lambda: search(conn, AuditQuery(subject_hash=heavy), limit=100), 10)
        report_ms = timed(lambda: subject_report(conn, heavy, now=END), 10)
        n_heavy = len(subject_report(conn, heavy, now=END).entries)
        figures["search_heavy_ms"], figures["report_heavy_ms"] = ours, report_ms
        print(
            f"heavy person ({records // 500:,} records): search {ours:.2f} ms, 12-month report"
            f" ({n_heavy} entries) {report_ms:.2f} ms  target < 200 ms"
        )

        partner = PARTNERS[3]
        ours = timed(lambda: search(conn, AuditQuery(partner=partner), limit=100), 10)
        figures["search_partner_ms"] = ours
        print(f"search by partner (page of 100): {ours:.2f} ms median")

        t = time.perf_counter()
        export = export_range(conn, 1, 1000, signer)
        figures["export_1000_ms"] = (time.perf_counter() - t) * 1000
        print(
            f"export of 1,000 records with inclusion proofs: {figures['export_1000_ms']:.0f} ms"
            f" ({len(export['records'])} records)"
        )

        # Baseline for verify: the same rows through the same kind of streaming
        # cursor verify uses, one sha256 per row and nothing else.
        sha = hashlib.sha256
        best_base = 0.0
        best, runs = 0.0, []
        for _ in range(3):
            t = time.perf_counter()
            cur = conn.connection.cursor()
            cur.execute(f"SELECT {VERIFY_COLUMNS} FROM audit_events ORDER BY seq")
            count = 0
            while True:
                rows = cur.fetchmany(1024)
                if not rows:
                    break
                for row in rows:
                    sha(row[2].encode()).digest()
                count += len(rows)
            cur.close()
            best_base = max(best_base, count / (time.perf_counter() - t))
            result = verify(conn, public_key=signer.public_raw)
            if not result.ok:
                raise SystemExit(f"verify failed on a clean log: {result.summary()}")
            runs.append(result.records_per_second)
            best = max(best, result.records_per_second)
        raw.close()
        figures["verify_rps"] = best
        figures["verify_rps_median"] = statistics.median(runs)
        figures["verify_baseline_rps"] = best_base
        print(
            f"verify: {result.checked:,} records, best of 3 {best:,.0f} records/s"
            f" (median {statistics.median(runs):,.0f})"
            f"   [baseline fetch + one sha256 per row: {best_base:,.0f} rows/s]  target >= 200,000/s"
        )
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="measure again on an existing --db, without filling")
    args = parser.parse_args()
    if args.db is not None:
        if args.db.exists() != args.reuse:
            raise SystemExit(f"{args.db}: give --reuse for an existing database, or a new path to fill")
        run(args.records, args.db, reuse=args.reuse)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(args.records, Path(tmp) / "audit-bench.db")


if __name__ == "__main__":
    main()
