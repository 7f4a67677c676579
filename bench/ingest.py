"""bench/ingest: accepted messages per second on POST /v1/berichten, embedded default.

A bounded load on 127.0.0.1 (2 KB XML messages, 32 concurrent connections)
against the baseline (bench/baseline.py: parse + validate the same XML and
insert one row with group commit), then, in the same run, against the hub
started as a user starts it, ``knooppunt run --processes 1`` and
``knooppunt run --processes N`` (N = the number of cores unless given), each on
a fresh SQLite file. Prints messages/s, p50/p99 latency and CPU ms per message
(summed over all the hub's processes: the figure that does not depend on what
else the machine is doing), and the ratio hub/baseline.

    python -m bench.ingest [--messages 20000] [--concurrency 32] [--processes N] [--deliver]

Every server runs as its own process(es), so the load generator does not share
their interpreter. Delivery workers are off by default, so the figure is ingest
alone; ``--deliver`` turns them on (the receiver is a plateau-1 inbox, so no
partner process competes for the CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench import loadgen
from hub import demo
from hub.cli.runner import seed_demo
from hub.infomodel import InfoModel
from hub.loopback import free_port
from hub.settings import ROOT, Settings

TARGET_RATE, TARGET_P99, TARGET_RATIO = 2000.0, 50.0, 0.60


def message_template(model: InfoModel) -> bytes:
    """A 2 KB XML message (DUO -> gemeente Ede, a plateau-1 inbox) with a placeholder id."""
    from hub import envelope as env

    doc = demo.inburgeringsplicht(random.Random(1), "0228")
    doc["payload"]["reden"] = "Vastgesteld na verificatie van de verblijfsvergunning. " * 12
    envelope, payload = env.from_json(doc)
    xml = env.to_xml(envelope, model.json_to_xml(model.get("inburgeringsplicht", "1.0"), payload))
    body = xml.replace(str(envelope.message_id).encode(), b"@@ID@@")
    pad = 2048 - len(body)
    if pad > 0:
        body = body.replace(b"</reden>", b"x" * pad + b"</reden>")
    return body


def wait_up(port: int, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} did not start")


def hub_env(db: Path, *, deliver: bool = False) -> dict[str, str]:
    return {
        **os.environ,
        "KNOOPPUNT_DATABASE_URL": f"sqlite:///{db}",
        "KNOOPPUNT_LOG_LEVEL": "error",
        # one partner sends everything here: lift the per-partner rate limit for the benchmark
        "KNOOPPUNT_LIMITS__REQUESTS_PER_SECOND": "1000000",
        "KNOOPPUNT_LIMITS__BURST": "1000000",
        "KNOOPPUNT_RUN_WORKERS": "true" if deliver else "false",
    }


def start_hub(db: Path, port: int, *, deliver: bool = False) -> subprocess.Popen[bytes]:
    """The hub as one uvicorn process on the given SQLite file (shared by the benchmarks)."""
    command = ["-m", "uvicorn", "--factory", "hub.api.app:create_app", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        [sys.executable, *command, "--log-level", "error", "--no-access-log"], env=hub_env(db, deliver=deliver)
    )


def start_run(db: Path, port: int, processes: int, *, deliver: bool = False) -> subprocess.Popen[bytes]:
    """The hub as a user starts it: `knooppunt run --processes N` (its API processes are its children)."""
    command = ["-m", "hub.cli.main", "run", "--host", "127.0.0.1", "--port", str(port), "--processes", str(processes)]
    return subprocess.Popen(
        [sys.executable, *command], env=hub_env(db, deliver=deliver), stdout=subprocess.DEVNULL, cwd=ROOT
    )


def wait_processes(port: int, processes: int, proc: subprocess.Popen[bytes]) -> set[int]:
    """Wait until all N processes answer /health (new connections land on either); -> their pids."""
    wait_up(port, "/health", proc)
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < processes:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"hub on {port}: {len(seen)} of {processes} processes answered")
        try:
            seen.add(int(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["process"]["pid"]))
        except httpx.HTTPError:
            time.sleep(0.1)
    return seen


def accepted_by_process(port: int, processes: int) -> dict[int, int]:
    """pid -> messages accepted so far, from /health asked over new connections until every
    process answered (the kernel spreads connections, not load: the shares show how evenly)."""
    seen: dict[int, int] = {}
    for _ in range(200):
        body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        seen[int(body["process"]["pid"])] = int(body["process"]["accepted"])
        if len(seen) == processes:
            break
    return seen


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), a load-independent cost figure."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_children(pid: int) -> list[int]:
    """A process and its children (the API processes of `knooppunt run --processes N`)."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(stat.parent.name))
    return pids


def measure(
    port: int, template: bytes, token: str | None, args: argparse.Namespace, pid: int | None = None
) -> loadgen.Result:
    headers = {"Content-Type": "application/xml"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def body(_: int) -> bytes:
        return template.replace(b"@@ID@@", str(uuid.uuid4()).encode())

    # warm up, then measure
    asyncio.run(loadgen.run(port, "/v1/berichten", body, headers=headers, total=500, concurrency=args.concurrency))
    pids = with_children(pid) if pid else []
    before = sum(cpu_seconds(p) for p in pids)
    result = asyncio.run(
        loadgen.run(
            port,
            "/v1/berichten",
            body,
            headers=headers,
            total=args.messages,
            concurrency=args.concurrency,
            time_limit=args.time_limit,
        )
    )
    if pids and result.ok:
        result.cpu_ms_per_message = (sum(cpu_seconds(p) for p in pids) - before) * 1000 / result.ok
    return result


def measure_hub(
    tmp: Path, processes: int, template: bytes, args: argparse.Namespace
) -> tuple[loadgen.Result, dict[int, int]]:
    """`knooppunt run --processes N` on a fresh database, measured; -> the result and what each
    process (by pid) accepted."""
    db = tmp / f"hub-{processes}.db"
    settings = Settings(database_url=f"sqlite:///{db}")
    setup = seed_demo(settings, ports={p: free_port() for p in ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent")})
    port = free_port()
    hub = start_run(db, port, processes, deliver=args.deliver)
    try:
        wait_processes(port, processes, hub)
        result = measure(port, template, setup.tokens["duo"], args, hub.pid)
        return result, accepted_by_process(port, processes)
    finally:
        hub.terminate()
        hub.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument(
        "--processes", type=int, default=None, help="API processes of the multi-process hub (default: the cores, >= 2)"
    )
    parser.add_argument("--deliver", action="store_true", help="run the delivery workers during the load")
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    processes = args.processes if args.processes is not None else max(2, cores)
    how = "given" if args.processes is not None else "default: the number of cores, at least 2"

    model = InfoModel(ROOT / "schemas")
    template = message_template(model)
    print(
        f"bench/ingest: {args.messages} messages of {len(template.replace(b'@@ID@@', b'x' * 36))} bytes, "
        f"{args.concurrency} concurrent, 127.0.0.1, {cores} cores, load average {_load()} at the start"
    )
    print(f"hub x1: knooppunt run --processes 1; hub x{processes}: knooppunt run --processes {processes} ({how})")
    rows: dict[str, loadgen.Result] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base_port = free_port()
        baseline = subprocess.Popen([sys.executable, "-m", "bench.baseline", str(base_port), str(Path(tmp) / "b.db")])
        try:
            wait_up(base_port, "/", baseline)
            base = measure(base_port, template, None, args, baseline.pid)
            print(f"baseline  {base.summary()}  cpu {base.cpu_ms_per_message:.3f} ms/msg")
        finally:
            baseline.terminate()
            baseline.wait(timeout=20)
        for n in dict.fromkeys((1, processes)):
            result, accepted = measure_hub(Path(tmp), n, template, args)
            rows[f"hub x{n}"] = result
            cpu = f"cpu {result.cpu_ms_per_message:.3f} ms/msg"
            print(f"{f'hub x{n}':<9} {result.summary()}  {cpu}  (pids {sorted(accepted)})")
            total = sum(accepted.values())
            if n > 1 and total:
                # each process's share: SO_REUSEPORT spreads the 32 connections by hash, not by load
                shares = " / ".join(f"{v / total:.0%}" for v in sorted(accepted.values(), reverse=True))
                print(f"{'':<9} accepted per process: {shares}")
    best_name, best = max(rows.items(), key=lambda item: item[1].rate)
    for name, result in rows.items():
        print(f"ratio {name}/baseline: {result.rate / base.rate if base.rate else 0.0:.2f}")
    ratio = best.rate / base.rate if base.rate else 0.0
    p99 = best.percentile(0.99)
    print(
        f"targets, on the best hub row ({best_name}): "
        f">= {TARGET_RATE:.0f} msg/s [{'met' if best.rate >= TARGET_RATE else 'NOT met'}], "
        f"p99 < {TARGET_P99:.0f} ms [{'met' if p99 < TARGET_P99 else 'NOT met'}], "
        f">= {TARGET_RATIO:.0%} of baseline [{'met' if ratio >= TARGET_RATIO else 'NOT met'}]"
    )
    print(f"load average {_load()} at the end")
    return 0 if all(r.errors == 0 for r in rows.values()) else 1


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
