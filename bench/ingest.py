"""bench/ingest: accepted messages per second on POST /v1/berichten, embedded default.

A bounded load on 127.0.0.1 (2 KB XML messages, 32 concurrent connections)
against the hub, and in the same run against the baseline (bench/baseline.py:
parse + validate the same XML and insert one row with group commit). Prints
messages/s, p50/p99 latency and the ratio hub/baseline.

    python -m bench.ingest [--messages 20000] [--concurrency 32] [--deliver]

Both servers run as their own processes (one uvicorn worker each), so the
load generator does not share their interpreter. Delivery workers are off by
default, so the figure is ingest alone; ``--deliver`` turns them on (the
receiver is a plateau-1 inbox, so no partner process competes for the CPU).
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
from hub.cli.runner import free_port, seed_demo
from hub.infomodel import InfoModel
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


def start_hub(db: Path, port: int, *, deliver: bool = False) -> subprocess.Popen[bytes]:
    """The hub as its own uvicorn process on the given SQLite file (shared by the benchmarks)."""
    env = {
        **os.environ,
        "KNOOPPUNT_DATABASE_URL": f"sqlite:///{db}",
        "KNOOPPUNT_LOG_LEVEL": "error",
        # one partner sends everything here: lift the per-partner rate limit for the benchmark
        "KNOOPPUNT_LIMITS__REQUESTS_PER_SECOND": "1000000",
        "KNOOPPUNT_LIMITS__BURST": "1000000",
        "KNOOPPUNT_RUN_WORKERS": "true" if deliver else "false",
    }
    command = ["-m", "uvicorn", "--factory", "hub.api.app:create_app", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen([sys.executable, *command, "--log-level", "error", "--no-access-log"], env=env)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), a load-independent cost figure."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    before = cpu_seconds(pid) if pid else 0.0
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
    if pid and result.ok:
        result.cpu_ms_per_message = (cpu_seconds(pid) - before) * 1000 / result.ok
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--deliver", action="store_true", help="run the delivery workers during the load")
    args = parser.parse_args()

    model = InfoModel(ROOT / "schemas")
    template = message_template(model)
    print(
        f"bench/ingest: {args.messages} messages of {len(template.replace(b'@@ID@@', b'x' * 36))} bytes, "
        f"{args.concurrency} concurrent, 127.0.0.1, {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hub.db"
        settings = Settings(database_url=f"sqlite:///{db}")
        setup = seed_demo(
            settings, ports={p: free_port() for p in ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent")}
        )
        hub_port, base_port = free_port(), free_port()
        hub = start_hub(db, hub_port, deliver=args.deliver)
        baseline = subprocess.Popen([sys.executable, "-m", "bench.baseline", str(base_port), str(Path(tmp) / "b.db")])
        try:
            wait_up(hub_port, "/health", hub)
            wait_up(base_port, "/", baseline)
            base = measure(base_port, template, None, args, baseline.pid)
            print(f"baseline  {base.summary()}  cpu {base.cpu_ms_per_message:.3f} ms/msg")
            result = measure(hub_port, template, setup.tokens["duo"], args, hub.pid)
            print(f"hub       {result.summary()}  cpu {result.cpu_ms_per_message:.3f} ms/msg")
        finally:
            for proc in (hub, baseline):
                proc.terminate()
                proc.wait(timeout=20)
    ratio = result.rate / base.rate if base.rate else 0.0
    p99 = result.percentile(0.99)
    print(f"ratio hub/baseline: {ratio:.2f}")
    print(
        f"targets: >= {TARGET_RATE:.0f} msg/s [{'met' if result.rate >= TARGET_RATE else 'NOT met'}], "
        f"p99 < {TARGET_P99:.0f} ms [{'met' if p99 < TARGET_P99 else 'NOT met'}], "
        f">= {TARGET_RATIO:.0%} of baseline [{'met' if ratio >= TARGET_RATIO else 'NOT met'}]"
    )
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
