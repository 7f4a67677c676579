"""bench/lookup: what a lookup through the hub costs over asking the source directly.

Both run in the same process against the same MAGDA simulator on 127.0.0.1:
the baseline posts the GeefPersoon SOAP request straight to the simulator; the
hub path is ``POST /v1/personen/_zoek`` (authentication, protocol check, the
MAGDA adapter, minimisation, the "consulted" audit record committed before the
answer). Sequential calls, so the figure is latency, not throughput.

The two paths alternate call by call (one direct, one through the hub), each on
its own keep-alive client, so a change in the machine's load during the run
touches both alike. Besides latency it prints the hub process's CPU time per
lookup (user + system, from ``/proc``; the API, the adapter and the writer
thread together), which does not depend on what else the machine runs, and
the load average before and after.

    python -m bench.lookup [--calls 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx

from adapters._magda.request import Afzender, geef_persoon, registreer_inschrijving
from bench.ingest import start_hub, wait_up
from hub.cli.runner import seed_demo
from hub.loopback import free_port
from hub.settings import Settings

TARGET_P50_MS = 3.0


def _timed(call: Callable[[], object], out: list[float]) -> None:
    started = time.perf_counter()
    call()
    out.append((time.perf_counter() - started) * 1000)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _pct(values: list[float], p: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(len(data) * p))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hub.db"
        settings = Settings(database_url=f"sqlite:///{db}")
        magda_port = free_port()
        ports = {"magda": magda_port}
        setup = seed_demo(settings, ports=ports)
        sim = subprocess.Popen([sys.executable, "-m", "adapters.magda.simulator", "--port", str(magda_port)])
        hub_port = free_port()
        hub = start_hub(db, hub_port)
        try:
            wait_up(hub_port, "/health", hub)
            wait_up(magda_port, "/_control/state", sim)
            state = httpx.get(f"http://127.0.0.1:{magda_port}/_control/state").json()
            insz = state["personas"]["regular"]
            url = f"http://127.0.0.1:{magda_port}/api/Magda-02.00/soap/WebService"
            afzender = Afzender("kb.vlaanderen.be/aiv/knooppunt", "1300")
            with (
                httpx.Client() as direct,
                httpx.Client(
                    base_url=f"http://127.0.0.1:{hub_port}", headers={"Authorization": f"Bearer {setup.tokens['agii']}"}
                ) as via,
            ):
                direct.post(
                    url,
                    content=registreer_inschrijving(afzender, insz, begin=date.today()).body,
                    headers={"Content-Type": "text/xml"},
                )
                body = {"insz": insz, "purpose": "be-opvolging-inburgeraar"}

                def ask_directly() -> None:
                    reply = direct.post(
                        url, content=geef_persoon(afzender, insz).body, headers={"Content-Type": "text/xml"}
                    )
                    reply.raise_for_status()

                def ask_the_hub() -> None:
                    via.post("/v1/personen/_zoek", json=body).raise_for_status()

                for _ in range(50):  # warm up both paths
                    ask_the_hub()
                    ask_directly()
                load_before = _load()
                base: list[float] = []
                hubbed: list[float] = []
                cpu_before = _cpu_seconds(hub.pid)
                for _ in range(args.calls):  # alternate, so both paths see the same machine
                    _timed(ask_directly, base)
                    _timed(ask_the_hub, hubbed)
                cpu_after = _cpu_seconds(hub.pid)
                load_after = _load()
        finally:
            for proc in (hub, sim):
                proc.terminate()
                proc.wait(timeout=20)
    b50, h50 = statistics.median(base), statistics.median(hubbed)
    print(f"bench/lookup: {args.calls} sequential GeefPersoon calls per path, alternating, 127.0.0.1")
    print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    print(f"baseline (simulator directly)  p50 {b50:6.2f} ms  p99 {_pct(base, 0.99):6.2f} ms")
    print(f"through the hub                p50 {h50:6.2f} ms  p99 {_pct(hubbed, 0.99):6.2f} ms")
    overhead = h50 - b50
    print(
        f"hub overhead p50: {overhead:.2f} ms  (target < {TARGET_P50_MS:.0f} ms: "
        f"{'met' if overhead < TARGET_P50_MS else 'NOT met'})"
    )
    if cpu_before is not None and cpu_after is not None:
        print(f"hub CPU time per lookup: {(cpu_after - cpu_before) / args.calls * 1000:.2f} ms (all threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
