"""bench/lookup: what a lookup through the hub costs over asking the source directly.

Both run in the same process against the same MAGDA simulator on 127.0.0.1:
the baseline posts the GeefPersoon SOAP request straight to the simulator; the
hub path is ``POST /v1/personen/_zoek`` (authentication, protocol check, the
MAGDA adapter, minimisation, the "consulted" audit record committed before the
answer). Sequential calls, so the figure is latency, not throughput.

    python -m bench.lookup [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

from adapters._magda.request import Afzender, geef_persoon, registreer_inschrijving
from bench.ingest import start_hub, wait_up
from hub.cli.runner import free_port, seed_demo
from hub.settings import Settings

TARGET_P50_MS = 3.0


def _timed(call: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        out.append((time.perf_counter() - started) * 1000)
    return out


def _pct(values: list[float], p: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(len(data) * p))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
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
                for _ in range(20):  # warm up both paths
                    via.post("/v1/personen/_zoek", json=body)
                    direct.post(url, content=geef_persoon(afzender, insz).body, headers={"Content-Type": "text/xml"})
                base = _timed(
                    lambda: direct.post(
                        url, content=geef_persoon(afzender, insz).body, headers={"Content-Type": "text/xml"}
                    ),
                    args.calls,
                )
                hubbed = _timed(lambda: via.post("/v1/personen/_zoek", json=body).raise_for_status(), args.calls)
        finally:
            for proc in (hub, sim):
                proc.terminate()
                proc.wait(timeout=20)
    b50, h50 = statistics.median(base), statistics.median(hubbed)
    print(f"bench/lookup: {args.calls} sequential GeefPersoon calls, 127.0.0.1")
    print(f"baseline (simulator directly)  p50 {b50:6.2f} ms  p99 {_pct(base, 0.99):6.2f} ms")
    print(f"through the hub                p50 {h50:6.2f} ms  p99 {_pct(hubbed, 0.99):6.2f} ms")
    overhead = h50 - b50
    print(
        f"hub overhead p50: {overhead:.2f} ms  (target < {TARGET_P50_MS:.0f} ms: "
        f"{'met' if overhead < TARGET_P50_MS else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
