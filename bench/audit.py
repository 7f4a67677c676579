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
import json
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
from hub.audit.chain import GENESIS, record_hash
from hub.audit.checkpoint import CheckpointSigner, create_checkpoint
from hub.audit.export import export_range
from hub.audit.search import AuditQuery, search, subject_report
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


def bulk_fill(db_path: Path, n: int, *, persons: int, seed: int = 6) -> list[str]:
    """Append ``n`` chained records straight into SQLite; returns the subject hashes used."""
    rnd = random.Random(seed)
    hasher = SubjectHasher(b"b" * 32)
    subjects = [hasher("insz", f"{85000000000 + i:011d}") for i in range(persons)]
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
        detail = {"channel": "rest", "bytes": 800 + seq % 3000} if event == "received" else {}
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
            "subject_type": "insz",
            "subject_hash": subjects[rnd.randrange(persons)],
            "detail": detail,
        }
        h = record_hash(prev, row)
        row["prev_hash"], row["hash"] = prev, h
        prev = h
        # The bytes SQLAlchemy's SQLite dialect stores: naive UTC text, json.dumps detail.
        row["occurred_at"] = when.strftime("%Y-%m-%d %H:%M:%S.%f")
        row["detail"] = json.dumps(detail)
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


def run(records: int, db_path: Path) -> dict[str, float]:
    settings = Settings(env="test", database_url=f"sqlite:///{db_path}")
    engine: Engine = make_engine(settings)
    upgrade(engine)
    figures: dict[str, float] = {}

    t = time.perf_counter()
    subjects = bulk_fill(db_path, records, persons=max(10, records // 10))
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

        # Baseline for verify: the same rows fetched through the same raw cursor, one sha256 per row.
        t = time.perf_counter()
        sha = hashlib.sha256
        last, count = 0, 0
        while True:
            raw.execute(
                "SELECT seq, prev_hash, hash, actor, detail, event, message_id, message_type, occurred_at,"
                " parent_span_id, protocol_id, receiver, sender, span_id, status, subject_hash, subject_type,"
                " trace_id FROM audit_events WHERE seq > ? ORDER BY seq LIMIT 20000",
                (last,),
            )
            rows = raw.fetchall()
            if not rows:
                break
            for row in rows:
                sha(row[2].encode()).digest()
            last = rows[-1][0]
            count += len(rows)
        base_s = time.perf_counter() - t
        raw.close()
        result = verify(conn, public_key=signer.public_raw)
        if not result.ok:
            raise SystemExit(f"verify failed on a clean log: {result.summary()}")
        figures["verify_rps"] = result.records_per_second
        figures["verify_baseline_rps"] = count / base_s
        print(
            f"verify: {result.checked:,} records in {result.seconds:.2f} s = {result.records_per_second:,.0f} records/s"
            f"   [baseline fetch + one sha256 per row: {count / base_s:,.0f} rows/s]  target >= 200,000/s"
        )
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temporary one)")
    args = parser.parse_args()
    if args.db is not None:
        if args.db.exists():
            raise SystemExit(f"{args.db} exists; the benchmark fills a new database")
        run(args.records, args.db)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(args.records, Path(tmp) / "audit-bench.db")


if __name__ == "__main__":
    main()
