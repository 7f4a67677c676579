"""Scale benchmark: end-to-end accepted -> delivered throughput.

Runs, in one go and on the same machine, the embedded default (one process,
SQLite, in-process transport) and scale mode (PostgreSQL + RabbitMQ, separate
API and worker processes) with 1, 2 and 4 worker processes. Each run sends the
same number of realistic messages over HTTP to the API process(es) with 32
concurrent senders, and clocks from the first request to the moment the last
delivery is recorded; the simulated partners are one separate process.

    python bench/scale.py [--messages 3000] [--apis 1] [--workers 1,2,4] [--rounds 1] [--no-embedded]

With ``--rounds N`` the worker counts are measured N times, interleaved (1, 2, 4, 1, 2, 4, ...),
so that a change in the machine's load hits every count alike; a summary gives the median per
count.

Prints a table, the CPU time each kind of process spent per message (user +
system, from /proc: load-independent, unlike msg/s on a shared machine), and
whether the targets are met; the figures measured on the project's machine are
in docs/performance.md ("Scale mode").
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench import loadgen  # noqa: E402
from tests.scale.cluster import Cluster, flows  # noqa: E402
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
    load: float  # 1-minute load average when the run started
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per message, per kind of process
    # each worker's part of the workers' CPU over the run, busiest first: with consumer priorities
    # (broker.fill_first) one worker takes a queue's jobs until its prefetch window is full
    worker_split: list[float] = field(default_factory=list)


TARGET_PER_S = 1500
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _backends(database: str) -> list[int]:
    """PostgreSQL server processes serving ``database`` (their title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            pids.append(int(entry.name))
    return pids


def _broker() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_snapshot(cluster: Cluster, database: str | None) -> dict[str, float]:
    """CPU seconds so far per kind of process of this run (the broker is the machine's, shared)."""
    out = {
        "api": sum(_cpu_seconds(p.pid) for p in cluster.apis.values()),
        "workers": sum(_cpu_seconds(w.pid) for w in cluster.workers if w is not None),
        "simulators": _cpu_seconds(cluster.sims.pid) if cluster.sims is not None else 0.0,
        "load generator": _self_cpu(),
    }
    if database is not None:
        out["postgres (this db)"] = sum(_cpu_seconds(p) for p in _backends(database))
        out["rabbitmq (whole broker)"] = sum(_cpu_seconds(p) for p in _broker())
    return out


def planned_requests(cluster: Cluster, messages: int, *, seed: int) -> list[tuple[str, bytes]]:
    """The measured messages (the same mix of flows as the fault tests), as the load generator's
    requests: built before the clock starts, sent by bench/loadgen's raw HTTP client. (httpx,
    which the fault tests use for its retries, spent 2.6 ms of CPU per message on the same 2 cores.)"""
    rng = random.Random(seed)
    out = []
    for _ in range(messages):
        sender, doc = flows(rng)
        headers = f"Authorization: Bearer {cluster.tokens[sender]}\r\nContent-Type: application/json\r\n"
        out.append((headers, orjson.dumps(doc)))
    return out


def measure(label: str, messages: int, *, apis: int, workers: int, embedded: bool) -> Row:
    with temporary_database() as db, temporary_namespace() as ns:
        cluster = Cluster(db, ns, proxied=False, embedded=embedded)
        try:
            cluster.start(apis=apis, workers=workers)
            asyncio.run(cluster.send(50, concurrency=8, seed=99))  # warm up: imports, caches, data keys
            cluster.wait_delivered(120)
            database = None if embedded else db
            requests = planned_requests(cluster, messages, seed=7)
            load = os.getloadavg()[0]
            before = cpu_snapshot(cluster, database)
            per_worker = [_cpu_seconds(w.pid) for w in cluster.workers if w is not None]
            started = time.monotonic()
            sent = asyncio.run(
                loadgen.drive(list(cluster.apis), "/v1/berichten", requests.__getitem__, total=messages, time_limit=600)
            )
            sent_at = time.monotonic()
            done_at = cluster.wait_delivered(900)
            after = cpu_snapshot(cluster, database)
            per_worker = [_cpu_seconds(w.pid) - b for w, b in zip(cluster.workers, per_worker, strict=False) if w]
            spent = sum(per_worker)
            split = sorted((c / spent for c in per_worker), reverse=True) if spent > 0 else []
            if sent.ok != messages:
                raise SystemExit(f"{label}: only {sent.ok} of {messages} accepted ({sent.statuses})")
            return Row(
                label,
                apis,
                workers,
                messages,
                messages / (sent_at - started),
                messages / (done_at - started),
                done_at - sent_at,
                load,
                {k: (after[k] - before[k]) * 1000 / messages for k in after},
                split,
            )
        finally:
            cluster.stop()


def summary(rows: list[Row]) -> list[Row]:
    """Per worker count, the median of its rows (msg/s and each CPU figure on its own), by count."""
    out = []
    for n in sorted({r.workers for r in rows}):
        mine = [r for r in rows if r.workers == n]
        cpu = {k: statistics.median(r.cpu_ms.get(k, 0.0) for r in mine) for k in mine[0].cpu_ms}
        out.append(
            Row(
                mine[0].mode,
                mine[0].apis,
                n,
                mine[0].messages,
                statistics.median(r.ingest_per_s for r in mine),
                statistics.median(r.end_to_end_per_s for r in mine),
                statistics.median(r.drain_s for r in mine),
                statistics.median(r.load for r in mine),
                cpu,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--apis", type=int, default=1, help="API processes in scale mode")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to measure")
    parser.add_argument("--rounds", type=int, default=1, help="measure the worker counts this often, interleaved")
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded default")
    args = parser.parse_args()
    rows = []
    if not args.no_embedded:
        rows.append(measure("embedded (SQLite, in-process)", args.messages, apis=1, workers=0, embedded=True))
    for _ in range(args.rounds):
        for n in (int(x) for x in args.workers.split(",")):
            rows.append(
                measure("scale (PostgreSQL, RabbitMQ)", args.messages, apis=args.apis, workers=n, embedded=False)
            )
    load = os.getloadavg()
    print(
        f"\n{args.messages} messages per run, 32 concurrent senders, {os.cpu_count()} cores, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}\n"
    )
    header = (
        f"{'mode':32} {'API':>4} {'workers':>8} {'ingest msg/s':>13} {'end-to-end msg/s':>17} "
        f"{'drain after send':>17} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        workers = "in-proc" if r.workers == 0 else str(r.workers)
        print(
            f"{r.mode:32} {r.apis:>4} {workers:>8} {r.ingest_per_s:>13.0f} {r.end_to_end_per_s:>17.0f} "
            f"{r.drain_s:>16.1f}s {r.load:>5.1f}"
        )
    kinds = sorted({k for r in rows for k in r.cpu_ms}, key=lambda k: list(rows[-1].cpu_ms).index(k))
    print("\nCPU ms per message (user + system; the broker is shared with the machine, so indicative only)\n")
    header = f"{'mode':32} {'workers':>8} " + " ".join(f"{k:>13.13}" for k in kinds) + f" {'hub total':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        workers = "in-proc" if r.workers == 0 else str(r.workers)
        cells = " ".join(f"{r.cpu_ms[k]:>13.2f}" if k in r.cpu_ms else f"{'-':>13}" for k in kinds)
        hub_total = r.cpu_ms.get("api", 0.0) + r.cpu_ms.get("workers", 0.0)
        print(f"{r.mode:32} {workers:>8} {cells} {hub_total:>10.2f}")
    scale = [r for r in rows if r.workers > 1]
    if scale:
        print("\nEach worker's part of the workers' CPU (busiest first): who did the deliveries\n")
        for r in scale:
            print(f"{r.workers:>3} workers: " + " / ".join(f"{share:.0%}" for share in r.worker_split))
    scale = [r for r in rows if r.workers > 0]
    by_workers = summary(scale)
    if args.rounds > 1:
        print(f"\nMedian of {args.rounds} interleaved rounds per worker count\n")
        header = (
            f"{'workers':>8} {'end-to-end msg/s':>17} {'load':>5} {'CPU ms/msg: workers':>20} "
            f"{'api':>6} {'postgres':>9} {'hub total':>10}"
        )
        print(header)
        print("-" * len(header))
        for r in by_workers:
            hub_total = r.cpu_ms.get("api", 0.0) + r.cpu_ms.get("workers", 0.0)
            print(
                f"{r.workers:>8} {r.end_to_end_per_s:>17.0f} {r.load:>5.1f} {r.cpu_ms['workers']:>20.2f} "
                f"{r.cpu_ms['api']:>6.2f} "
                f"{r.cpu_ms.get('postgres (this db)', 0.0):>9.2f} {hub_total:>10.2f}"
            )
    best = max((r.end_to_end_per_s for r in by_workers), default=0.0)
    verdict = "met" if best >= TARGET_PER_S else "NOT met"
    print(f"\ntarget >= {TARGET_PER_S} msg/s end to end: {verdict} (best {best:.0f})")
    slower = [
        f"{b.workers} ({b.end_to_end_per_s:.0f}) < {a.workers} ({a.end_to_end_per_s:.0f})"
        for a, b in itertools.pairwise(by_workers)
        if b.end_to_end_per_s < a.end_to_end_per_s
    ]
    print(f"more workers never slower: {'met' if not slower else 'NOT met: ' + ', '.join(slower)}")
    if args.rounds > 1:
        # the medians above flip on this machine's noise (every process's CPU per message moves
        # with it, the API's too, which does not depend on the workers); a count is clearly
        # slower only when every one of its rounds is below every round of the smaller count
        rates = {r.workers: [x.end_to_end_per_s for x in scale if x.workers == r.workers] for r in by_workers}
        clearly = [f"{b} < {a}" for a, b in itertools.pairwise(sorted(rates)) if max(rates[b]) < min(rates[a])]
        spread = "; ".join(f"{n}: {min(v):.0f}-{max(v):.0f}" for n, v in sorted(rates.items()))
        print(
            f"  slower in every round (beyond the spread of the rounds, {spread} msg/s): "
            f"{', '.join(clearly) if clearly else 'none'}"
        )
    cpu = ", ".join(f"{r.workers}: {r.cpu_ms['workers']:.2f}" for r in by_workers)
    print(f"worker CPU ms per message by worker count (load-independent): {cpu}")


if __name__ == "__main__":
    main()
