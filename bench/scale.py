"""Scale benchmark: end-to-end accepted -> delivered throughput.

Runs, in one go and on the same machine, the embedded default (one process,
SQLite, in-process transport) and scale mode (PostgreSQL + RabbitMQ, separate
API and worker processes) with 1, 2 and 4 worker processes. Each run sends the
same number of realistic messages over HTTP to the API process(es) with 32
concurrent senders, and clocks from the first request to the moment the last
delivery is recorded; the simulated partners are one separate process.

    python bench/scale.py [--messages 3000] [--apis 1] [--workers 1,2,4]

Prints a table; the figures measured on the project's machine are in
docs/performance.md ("Scale mode").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scale.cluster import Cluster  # noqa: E402
from tests.scale.services import temporary_database, temporary_namespace  # noqa: E402


@dataclass
class Row:
    mode: str
    apis: int
    workers: int
    messages: int
    ingest_per_s: float
    end_to_end_per_s: float
    drain_s: float


def measure(label: str, messages: int, *, apis: int, workers: int, embedded: bool) -> Row:
    with temporary_database() as db, temporary_namespace() as ns:
        cluster = Cluster(db, ns, proxied=False, embedded=embedded)
        try:
            cluster.start(apis=apis, workers=workers)
            asyncio.run(cluster.send(50, concurrency=8, seed=99))  # warm up: imports, caches, data keys
            cluster.wait_delivered(120)
            started = time.monotonic()
            sent = asyncio.run(cluster.send(messages, concurrency=32, seed=7))
            sent_at = time.monotonic()
            done_at = cluster.wait_delivered(900)
            if len(sent.accepted) != messages:
                raise SystemExit(f"{label}: only {len(sent.accepted)} of {messages} accepted")
            return Row(
                label,
                apis,
                workers,
                messages,
                messages / (sent_at - started),
                messages / (done_at - started),
                done_at - sent_at,
            )
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--apis", type=int, default=1, help="API processes in scale mode")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to measure")
    args = parser.parse_args()
    rows = [measure("embedded (SQLite, in-process)", args.messages, apis=1, workers=0, embedded=True)]
    for n in (int(x) for x in args.workers.split(",")):
        rows.append(measure("scale (PostgreSQL, RabbitMQ)", args.messages, apis=args.apis, workers=n, embedded=False))
    load = os.getloadavg()
    print(
        f"\n{args.messages} messages per run, 32 concurrent senders, {os.cpu_count()} cores, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}\n"
    )
    header = (
        f"{'mode':32} {'API':>4} {'workers':>8} {'ingest msg/s':>13} {'end-to-end msg/s':>17} {'drain after send':>17}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        workers = "in-proc" if r.workers == 0 else str(r.workers)
        print(
            f"{r.mode:32} {r.apis:>4} {workers:>8} {r.ingest_per_s:>13.0f} {r.end_to_end_per_s:>17.0f} "
            f"{r.drain_s:>16.1f}s"
        )


if __name__ == "__main__":
    main()
