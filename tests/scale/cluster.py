"""A scale-mode hub as real processes: API(s), worker(s), partner simulators, on PostgreSQL and
RabbitMQ reached through TCP fault proxies. Used by the scale and fault tests and by bench/scale.py.

The harness starts every process it may kill, so it can reap and restart them.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from hub.audit import VerifyResult, verify
from hub.cli.runner import seed_demo
from hub.loopback import free_port
from hub.settings import ROOT, BrokerSettings, DeliverySettings, LimitSettings, Settings
from hub.store.tables import audit_events, deliveries
from tests.conftest import TEST_AUDIT_KEY, TEST_PAYLOAD_KEY, TEST_SIGNING_KEY
from tests.faults.proxy import ProxyProcess
from tests.scale.services import PG_PORT, RABBIT_PORT, delete_namespace, pg_url, rabbit_url

SIMULATED = ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent", "taalschool-utrecht")
# The cluster measures the hub's own transport and faults: DUO and COA stand in as REST-push
# partners here (their signed Digikoppeling links are tested in tests/adapters_nl, tests/test_wus.py
# and, through a DUO outage, tests/faults/test_duo_outage.py).
RESTPUSH_STANDINS = ("duo", "coa")
SIM_SCRIPT = """
import asyncio, sys
from adapters.restpush import simulator
pairs = [a.split("=") for a in sys.argv[1:]]
async def main():
    await asyncio.gather(*(simulator.server(n, "127.0.0.1", int(p)).serve() for n, p in pairs))
asyncio.run(main())
"""


def _as_restpush(settings: Settings, ports: dict[str, int]) -> None:
    """Point these demo partners at a REST-push simulator instead of their own link."""
    from hub.partners import upsert_partner
    from hub.service import Hub

    hub = Hub(settings)
    hub.open_store()
    try:
        for partner in hub.partners.all():
            if partner.id in ports:
                url = f"http://127.0.0.1:{ports[partner.id]}"
                config = {"url": f"{url}/berichten", "health_url": f"{url}/health"}
                hub.writer.run_sync(
                    upsert_partner(replace(partner, adapter="rest-push", adapter_config=config), actor="test")
                )
    finally:
        hub.close_store()


def flows(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One realistic message and its sender (three receiving partners: Utrecht, DUO, Gent)."""
    from hub import demo

    pick = rng.randrange(4)
    if pick == 0:
        return "duo", demo.inburgeringsplicht(rng, "0344")
    if pick == 1:
        return "coa", demo.klantprofiel(rng, "0344")
    if pick == 2:
        return "gemeente-utrecht", demo.pip(rng, "0344")
    return "agii", demo.aanmelding(rng, "44021")


@dataclass
class SendResult:
    accepted: dict[str, list[str]] = field(default_factory=dict)  # message id -> receivers (from the 202)
    failures: int = 0  # attempts that did not get an answer (retried with the same id)
    refused: int = 0  # 4xx answers (must be none)
    seconds: float = 0.0


class Cluster:
    """Processes of one scale-mode hub; see the module docstring."""

    def __init__(
        self,
        database: str,
        namespace: str,
        *,
        lease_seconds: float = 30.0,
        log_dir: Path | None = None,
        proxied: bool = True,
        embedded: bool = False,
    ):
        """``proxied``: reach PostgreSQL and RabbitMQ through fault proxies; ``embedded``: the default
        mode instead (one process, SQLite, in-process transport), for comparison in the benchmark."""
        self.database = database
        self.namespace = namespace
        self.embedded = embedded
        self.pg_proxy = ProxyProcess(PG_PORT) if proxied else None
        self.rabbit_proxy = ProxyProcess(RABBIT_PORT) if proxied else None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="knooppunt-cluster-"))
        pg_port = self.pg_proxy.port if self.pg_proxy else PG_PORT
        rabbit_port = self.rabbit_proxy.port if self.rabbit_proxy else RABBIT_PORT
        self.settings = Settings(
            env="test",
            payload_key=TEST_PAYLOAD_KEY,
            audit_hmac_key=TEST_AUDIT_KEY,
            audit_signing_key=TEST_SIGNING_KEY,
            limits=LimitSettings(requests_per_second=1_000_000, burst=1_000_000),
            database_url=f"sqlite:///{self.log_dir / 'hub.db'}" if embedded else pg_url(database, pg_port),
            transport="memory" if embedded else "rabbitmq",
            rabbitmq_url=rabbit_url(rabbit_port),
            log_level="warning",
            delivery=DeliverySettings(
                max_attempts=50,
                backoff_base_seconds=0.2,
                backoff_max_seconds=2,
                poll_seconds=0.5,
                timeout_seconds=3,
                lease_seconds=lease_seconds,
            ),
            broker=BrokerSettings(namespace=namespace, timeout_seconds=5, heartbeat_seconds=5, reconnect_seconds=0.5),
        )
        self.direct_url = self.settings.database_url if embedded else pg_url(database)
        self.sim_ports = {pid: free_port() for pid in SIMULATED}
        self.tokens: dict[str, str] = {}
        self.apis: dict[int, subprocess.Popen[bytes]] = {}
        self.workers: list[subprocess.Popen[bytes] | None] = []
        self.sims: subprocess.Popen[bytes] | None = None
        self._log_files: list[Any] = []

    # -- processes ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        s = self.settings
        d, b = s.delivery, s.broker
        env = dict(os.environ)
        env.update(
            {
                "KNOOPPUNT_ENV": "test",
                "KNOOPPUNT_PAYLOAD_KEY": TEST_PAYLOAD_KEY,
                "KNOOPPUNT_AUDIT_HMAC_KEY": TEST_AUDIT_KEY,
                "KNOOPPUNT_AUDIT_SIGNING_KEY": TEST_SIGNING_KEY,
                "KNOOPPUNT_LIMITS__REQUESTS_PER_SECOND": "1000000",
                "KNOOPPUNT_LIMITS__BURST": "1000000",
                "KNOOPPUNT_DATABASE_URL": s.database_url,
                "KNOOPPUNT_TRANSPORT": s.transport,
                "KNOOPPUNT_RABBITMQ_URL": s.rabbitmq_url,
                "KNOOPPUNT_LOG_LEVEL": "warning",
                "KNOOPPUNT_DELIVERY__MAX_ATTEMPTS": str(d.max_attempts),
                "KNOOPPUNT_DELIVERY__BACKOFF_BASE_SECONDS": str(d.backoff_base_seconds),
                "KNOOPPUNT_DELIVERY__BACKOFF_MAX_SECONDS": str(d.backoff_max_seconds),
                "KNOOPPUNT_DELIVERY__POLL_SECONDS": str(d.poll_seconds),
                "KNOOPPUNT_DELIVERY__TIMEOUT_SECONDS": str(d.timeout_seconds),
                "KNOOPPUNT_DELIVERY__LEASE_SECONDS": str(d.lease_seconds),
                "KNOOPPUNT_BROKER__NAMESPACE": b.namespace,
                "KNOOPPUNT_BROKER__TIMEOUT_SECONDS": str(b.timeout_seconds),
                "KNOOPPUNT_BROKER__HEARTBEAT_SECONDS": str(b.heartbeat_seconds),
                "KNOOPPUNT_BROKER__RECONNECT_SECONDS": str(b.reconnect_seconds),
                "PYTHONPATH": str(ROOT),
            }
        )
        return env

    def _popen(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log_files.append(log)
        return subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def start(self, *, apis: int = 1, workers: int = 1) -> Cluster:
        direct = self.settings.model_copy(update={"database_url": self.direct_url})
        setup = seed_demo(direct, ports=self.sim_ports)
        self.tokens = setup.tokens
        _as_restpush(direct, {pid: self.sim_ports[pid] for pid in RESTPUSH_STANDINS})
        # the REST-push partners get a simulator (one process for all); the flows below reach no others
        pairs = [
            f"{pid}={sim.port}"
            for pid, sim in setup.simulators.items()
            if sim.kind == "restpush" or pid in RESTPUSH_STANDINS
        ]
        self.sims = self._popen("simulators", [sys.executable, "-c", SIM_SCRIPT, *pairs])
        for _ in range(apis):
            self.start_api(free_port())
        for _ in range(workers):
            self.start_worker()
        self.wait_ready()
        return self

    def start_api(self, port: int) -> None:
        # embedded: `knooppunt run` delivers in the same process; scale: `knooppunt api` only takes messages
        command = "run" if self.embedded else "api"
        cmd = [sys.executable, "-m", "hub.cli.main", command, "--port", str(port)]
        self.apis[port] = self._popen(f"api-{port}", cmd)

    def start_worker(self, index: int | None = None) -> None:
        proc = self._popen(f"worker-{index if index is not None else len(self.workers)}", self.worker_cmd())
        if index is None:
            self.workers.append(proc)
        else:
            self.workers[index] = proc

    @staticmethod
    def worker_cmd() -> list[str]:
        return [sys.executable, "-m", "hub.cli.main", "worker"]

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        proc = self.workers[index]
        if proc is not None:
            proc.send_signal(sig)
            proc.wait(30)

    def kill_api(self, port: int, sig: int = signal.SIGKILL) -> None:
        proc = self.apis[port]
        proc.send_signal(sig)
        proc.wait(30)

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.apis]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.urls()) | {f"http://127.0.0.1:{p}" for p in self.sim_ports.values()}
        while pending:
            for url in list(pending):
                path = "/health" if int(url.rsplit(":", 1)[1]) in self.sim_ports.values() else "/ready"
                try:
                    if httpx.get(url + path, timeout=2).status_code == 200:
                        pending.discard(url)
                except httpx.HTTPError:
                    pass
            if not pending:
                break
            for name, proc in [*self.apis.items(), ("sims", self.sims)]:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"process {name} exited with {proc.returncode}; logs in {self.log_dir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready: {sorted(pending)}; logs in {self.log_dir}")
            time.sleep(0.2)
        # workers: alive after start-up (they fail fast when broker or database are missing)
        time.sleep(0.5)
        for i, w in enumerate(self.workers):
            if w is not None and w.poll() is not None:
                raise RuntimeError(f"worker {i} exited with {w.returncode}; logs in {self.log_dir}")

    def stop(self) -> None:
        procs = [*self.apis.values(), *(w for w in self.workers if w is not None)]
        if self.sims is not None:
            procs.append(self.sims)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self._log_files:
            f.close()
        for proxy in (self.pg_proxy, self.rabbit_proxy):
            if proxy is not None:
                proxy.close()
        if not self.embedded:
            delete_namespace(self.namespace)

    # -- traffic -------------------------------------------------------------------------

    async def send(
        self,
        count: int,
        *,
        concurrency: int = 32,
        seed: int = 1,
        on_progress: Callable[[int], None] | None = None,
    ) -> SendResult:
        """Send ``count`` messages over all API processes; a request without an answer is sent again
        with the same message id (to the next API process) until it is answered."""
        rng = random.Random(seed)
        plan = [flows(rng) for _ in range(count)]
        result = SendResult()
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        done = 0
        started = time.monotonic()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

        async def worker(n: int, client: httpx.AsyncClient) -> None:
            nonlocal done
            while True:
                try:
                    sender, doc = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                attempt = n
                while True:
                    urls = self.urls()
                    url = urls[attempt % len(urls)]
                    attempt += 1
                    try:
                        r = await client.post(
                            f"{url}/v1/berichten", json=doc, headers={"Authorization": f"Bearer {self.tokens[sender]}"}
                        )
                    except httpx.HTTPError:
                        result.failures += 1
                        await asyncio.sleep(0.05)
                        continue
                    if r.status_code == 202:
                        result.accepted[doc["messageId"]] = list(r.json()["receivers"])
                        break
                    if r.status_code >= 500:
                        result.failures += 1
                        await asyncio.sleep(0.1)
                        continue
                    result.refused += 1
                    break
                done += 1
                if on_progress is not None:
                    on_progress(done)

        async with httpx.AsyncClient(timeout=httpx.Timeout(15.0), limits=limits) as client:
            await asyncio.gather(*(worker(i, client) for i in range(concurrency)))
        result.seconds = time.monotonic() - started
        return result

    # -- checks ---------------------------------------------------------------------------

    def undelivered(self) -> int:
        engine = create_engine(self.direct_url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count()).select_from(deliveries).where(deliveries.c.status != "delivered")
                    ).scalar_one()
                )
        finally:
            engine.dispose()

    def wait_delivered(self, timeout: float) -> float:
        """Wait until no delivery is left undelivered; returns when that happened (monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.undelivered()
            if left == 0:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(f"{left} deliveries still not delivered after {timeout} s; logs in {self.log_dir}")
            time.sleep(0.25)

    def received(self) -> dict[str, dict[str, Any]]:
        out = {}
        for pid, port in self.sim_ports.items():
            out[pid] = httpx.get(f"http://127.0.0.1:{port}/berichten", timeout=60).json()
        return out

    def audit(self) -> tuple[VerifyResult, dict[tuple[str, str], int]]:
        """The chain's verdict, and how many "delivered" records each (message, receiver) has."""
        engine = create_engine(self.direct_url)
        try:
            with engine.connect() as conn:
                result = verify(conn)
                rows = conn.execute(
                    select(audit_events.c.message_id, audit_events.c.receiver, func.count())
                    .where(audit_events.c.event == "delivered")
                    .group_by(audit_events.c.message_id, audit_events.c.receiver)
                ).all()
        finally:
            engine.dispose()
        return result, {(str(m), str(r)): int(n) for m, r, n in rows}

    def check_exactly_once(self, sent: SendResult) -> dict[str, int]:
        """Every accepted message reached each of its receivers, once in effect; the audit chain holds.

        Returns counts for the report: accepted, deliveries, and the duplicate POSTs the simulated
        partners absorbed (they deduplicate on X-Message-Id, as the partner contract asks).
        """
        assert sent.refused == 0
        received = self.received()
        verdict, delivered = self.audit()
        assert verdict.ok, verdict
        expected = {(m, r) for m, receivers in sent.accepted.items() for r in receivers}
        got = {(m["messageId"], pid) for pid, listing in received.items() for m in listing["messages"]}
        missing = expected - got
        assert not missing, f"{len(missing)} accepted deliveries never arrived, e.g. {sorted(missing)[:3]}"
        # the hub recorded each delivery exactly once
        assert all(delivered.get(k) == 1 for k in expected), "a delivery has no or several 'delivered' records"
        assert sum(delivered.values()) == len(got), "the hub recorded deliveries the partners never saw"
        return {
            "accepted": len(sent.accepted),
            "deliveries": len(expected),
            "partner_duplicates": sum(int(listing["duplicates"]) for listing in received.values()),
        }
