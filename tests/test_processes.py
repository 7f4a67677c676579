"""`knooppunt run --processes 2` as a user starts it: real processes sharing one port on 127.0.0.1,
one real SQLite file. Both processes take messages, the leader's relay delivers everything once
(also what the API process accepted), the audit chain holds, and an API process killed with
SIGKILL is started again without losing anything it had accepted."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from hub import demo
from hub.cli.main import app
from hub.cli.runner import DemoSetup, seed_demo
from hub.loopback import free_port
from hub.settings import ROOT, Settings
from hub.store.tables import deliveries, outbox
from tests.conftest import TEST_AUDIT_KEY, TEST_PAYLOAD_KEY, TEST_SIGNING_KEY, make_settings
from tests.helpers import audit_rows

pytestmark = pytest.mark.timeout(120)

RECEIVER = "gemeente-ede"  # plateau 1: deliveries land in its portal inbox, no partner process needed


class MultiHub:
    """`python -m hub.cli.main run --processes N` on a free port, and what a test asks of it."""

    def __init__(
        self, settings: Settings, setup: DemoSetup, processes: int, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.setup = setup
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "KNOOPPUNT_ENV": "test",
            "KNOOPPUNT_PAYLOAD_KEY": TEST_PAYLOAD_KEY,
            "KNOOPPUNT_AUDIT_HMAC_KEY": TEST_AUDIT_KEY,
            "KNOOPPUNT_AUDIT_SIGNING_KEY": TEST_SIGNING_KEY,
            "KNOOPPUNT_DATABASE_URL": settings.database_url,
            "KNOOPPUNT_LOG_LEVEL": "warning",
            "KNOOPPUNT_LIMITS__REQUESTS_PER_SECOND": "100000",
            "KNOOPPUNT_LIMITS__BURST": "100000",
            **(env or {}),
        }
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli.main", "run", "--port", str(self.port), "--processes", str(processes)],
            env=self.env,
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_started(self, timeout: float = 45) -> None:
        """The URLs are printed once every API process serves; then the leader's own server starts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if "Stoppen" in self.log.read_text():
                try:
                    if httpx.get(f"{self.base}/ready", timeout=2).status_code == 200 and len(self.processes()) == 2:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"hub did not start:\n{self.log.read_text()}")

    def processes(self, tries: int = 60) -> dict[int, dict[str, Any]]:
        """pid -> /health's "process" block, asked over new connections until both roles answered."""
        seen: dict[int, dict[str, Any]] = {}
        for _ in range(tries):
            body = httpx.get(f"{self.base}/health", timeout=5).json()
            assert body["status"] == "up", body
            seen[body["process"]["pid"]] = {
                **body["process"],
                "transport": body["checks"]["transport"],
                "writer": body["checks"]["writer"],
            }
            if {p["role"] for p in seen.values()} == {"hub", "api"}:
                break
        return seen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


@pytest.fixture
def multi(tmp_path: Path) -> Iterator[MultiHub]:
    settings = make_settings(tmp_path)
    ports = {p: free_port() for p in ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent")}
    setup = seed_demo(settings, ports=ports)
    hub = MultiHub(settings, setup, 2, tmp_path / "hub.log")
    try:
        hub.wait_started()
        yield hub
    finally:
        hub.stop()


async def send(
    hub: MultiHub, docs: list[dict[str, Any]], *, concurrency: int = 8, statuses: dict[str, int] | None = None
) -> dict[str, int]:
    """POST every message as DUO, each on a new connection (so the kernel spreads them over the
    processes); a connection that breaks is retried with the same message id. -> id: status."""
    token = hub.setup.tokens["duo"]
    statuses = {} if statuses is None else statuses
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=hub.base, limits=limits, timeout=20) as client:

        async def one(doc: dict[str, Any]) -> None:
            async with gate:
                for _ in range(100):
                    try:
                        r = await client.post("/v1/berichten", json=doc, headers={"Authorization": f"Bearer {token}"})
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)  # that process died under us: send it again
                        continue
                    statuses[doc["messageId"]] = r.status_code
                    return
                raise AssertionError(f"{doc['messageId']} never accepted")

        await asyncio.gather(*(one(d) for d in docs))
    return statuses


def messages(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [demo.inburgeringsplicht(rng, "0228") for _ in range(n)]


def wait_in_inbox(settings: Settings, ids: set[str], timeout: float = 30) -> None:
    engine = create_engine(settings.database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as conn:
                rows = conn.execute(select(deliveries.c.message_id, deliveries.c.status)).all()
                pending = conn.execute(select(outbox.c.message_id)).all()
            waiting = {r.message_id for r in rows if r.status == "in_inbox"}
            if ids <= waiting and not pending:
                break
            assert time.monotonic() < deadline, f"{len(ids - waiting)} not in the inbox, {len(pending)} in the outbox"
            time.sleep(0.1)
        # one delivery row per message, all to the plateau-1 receiver
        counted = Counter((r.message_id, r.status) for r in rows)
        assert all(c == 1 for c in counted.values())
        assert {r.message_id for r in rows} == ids
    finally:
        engine.dispose()


def fetch_inbox(hub: MultiHub) -> list[str]:
    """Read Ede's whole inbox over HTTP (which records receipt: each becomes delivered)."""
    got: list[str] = []
    after = 0
    with httpx.Client(base_url=hub.base, headers={"Authorization": f"Bearer {hub.setup.tokens[RECEIVER]}"}) as c:
        while True:
            page = c.get("/v1/inbox", params={"after": after, "limit": 200}).json()
            if not page["items"]:
                return got
            got += [item["messageId"] for item in page["items"]]
            after = page["items"][-1]["cursor"]


def check_delivered_once(hub: MultiHub, ids: set[str]) -> None:
    wait_in_inbox(hub.settings, ids)
    inbox = fetch_inbox(hub)
    assert sorted(inbox) == sorted(ids)  # each message in the inbox exactly once
    delivered = Counter(r["message_id"] for r in audit_rows(hub.settings, "delivered"))
    received = Counter(r["message_id"] for r in audit_rows(hub.settings, "received"))
    assert delivered == received == Counter(ids)  # audited once each: accepted once, delivered once


def audit_verify(hub: MultiHub) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "audit", "verify"],
        env=hub.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_two_processes_both_take_messages_and_each_is_delivered_once(multi: MultiHub) -> None:
    procs = multi.processes()
    assert sorted(p["role"] for p in procs.values()) == ["api", "hub"]
    [api] = [p for p in procs.values() if p["role"] == "api"]
    assert api["transport"] == {"ok": True, "name": "outbox", "relay": "leader"}
    assert multi.proc.pid in procs  # the leader is the process `knooppunt run` started

    docs = messages(300, 1)
    statuses = asyncio.run(send(multi, docs))
    assert set(statuses.values()) == {202}
    ids = set(statuses)

    # both processes took a share of the messages, and together all of them
    accepted = {pid: p["accepted"] for pid, p in multi.processes().items()}
    assert len(accepted) == 2
    assert all(n > 0 for n in accepted.values()), accepted
    assert sum(accepted.values()) == len(ids)
    # each process wrote what it accepted itself, its writer taking turns on the file's write lock
    for p in multi.processes().values():
        assert p["writer"]["units"] >= p["accepted"], p
        assert p["writer"]["lockTimeouts"] == 0, p

    check_delivered_once(multi, ids)
    verified = audit_verify(multi)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # stopping the leader stops its API process too
    multi.stop()
    assert multi.proc.returncode is not None
    deadline = time.monotonic() + 10
    while Path(f"/proc/{api['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{api['pid']}").exists()


def test_what_an_api_process_accepts_is_delivered_at_once_not_at_the_relays_next_poll(tmp_path: Path) -> None:
    # a relay that polls only every 30 s: only the API process's ring can bring its messages out sooner
    settings = make_settings(tmp_path)
    setup = seed_demo(settings, ports={p: free_port() for p in ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent")})
    hub = MultiHub(settings, setup, 2, tmp_path / "hub.log", env={"KNOOPPUNT_DELIVERY__POLL_SECONDS": "30"})
    try:
        hub.wait_started()
        time.sleep(1.0)  # past the relay's first poll after start-up
        docs = messages(60, 3)
        statuses = asyncio.run(send(hub, docs))
        assert set(statuses.values()) == {202}
        [api] = [p for p in hub.processes().values() if p["role"] == "api"]
        assert api["accepted"] > 0  # some went through the API process (new connections are spread)
        wait_in_inbox(settings, set(statuses), timeout=3)
    finally:
        hub.stop()


def test_an_api_process_killed_mid_load_is_restarted_and_loses_nothing(multi: MultiHub) -> None:
    [old] = [pid for pid, p in multi.processes().items() if p["role"] == "api"]
    docs = messages(600, 2)

    async def load_and_kill() -> dict[str, int]:
        answered: dict[str, int] = {}
        sending = asyncio.create_task(send(multi, docs, statuses=answered))
        while len(answered) < 100:  # in the middle of the load
            assert not sending.done()
            await asyncio.sleep(0.01)
        os.kill(old, signal.SIGKILL)
        return await sending

    statuses = asyncio.run(load_and_kill())
    # every message was acknowledged in the end (a resend of one that was stored is acknowledged again)
    assert set(statuses.values()) <= {200, 202}, Counter(statuses.values())
    assert len(statuses) == len(docs)

    # the leader started another API process, which takes messages as well
    deadline = time.monotonic() + 20
    while True:
        api = [pid for pid, p in multi.processes().items() if p["role"] == "api"]
        if api and api[0] != old:
            break
        assert time.monotonic() < deadline, "no new API process"
        time.sleep(0.2)
    more = messages(100, 3)
    assert set(asyncio.run(send(multi, more)).values()) == {202}
    assert multi.processes()[api[0]]["accepted"] > 0

    check_delivered_once(multi, set(statuses) | {d["messageId"] for d in more})
    verified = audit_verify(multi)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_processes_are_for_the_embedded_transport(settings: Settings) -> None:
    env = {"KNOOPPUNT_DATABASE_URL": settings.database_url, "KNOOPPUNT_TRANSPORT": "rabbitmq"}
    result = CliRunner().invoke(app, ["run", "--processes", "2"], env=env)
    assert result.exit_code == 2
    assert "ingebouwde standaard" in result.output


def test_processes_refuse_a_port_in_use(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"KNOOPPUNT_DATABASE_URL": settings.database_url}
        result = CliRunner().invoke(app, ["run", "--processes", "2", "--port", str(port)], env=env)
    assert result.exit_code == 1
    assert "al in gebruik" in result.output


def test_the_leader_gives_its_api_processes_one_oauth_key_and_polls_often(tmp_path: Path) -> None:
    from hub.cli.main import MULTI_PROCESS_POLL_SECONDS, _leader_settings

    settings = Settings(env="development", database_url=f"sqlite:///{tmp_path / 'hub.db'}")
    assert settings.oauth.signing_key is None  # each process would make its own
    leader, env = _leader_settings(settings, tmp_path)
    assert leader.oauth.signing_key is not None
    assert env["KNOOPPUNT_OAUTH__SIGNING_KEY"] == leader.oauth.signing_key
    assert env["KNOOPPUNT_RUN_WORKERS"] == "false"
    assert leader.delivery.poll_seconds == MULTI_PROCESS_POLL_SECONDS
    # the API processes ring the leader's relay through a socket in its private directory
    assert leader.delivery.relay_socket == tmp_path / "relay.sock"
    assert env["KNOOPPUNT_DELIVERY__RELAY_SOCKET"] == str(tmp_path / "relay.sock")
    # one rate bucket per partner for all, in a file in the leader's private directory
    assert leader.limits.bucket_file == tmp_path / "rate-buckets"
    assert env["KNOOPPUNT_LIMITS__BUCKET_FILE"] == str(tmp_path / "rate-buckets")
    # a poll interval that was set is kept
    chosen = make_settings(tmp_path)  # sets delivery (poll_seconds 0.05)
    assert _leader_settings(chosen, tmp_path)[0].delivery.poll_seconds == 0.05


def test_connections_on_the_shared_port_send_without_nagle_delay() -> None:
    """asyncio turns Nagle's algorithm off only on sockets that say they are TCP; without it a
    response written as head and body waited 40 ms for the client's delayed ACK."""
    from hub.cli.processes import reuseport_socket

    sock = reuseport_socket("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            got.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            value = await asyncio.wait_for(got, 5)
            writer.close()
            return value

    assert asyncio.run(accepted_nodelay()) != 0


def test_a_partner_gets_its_burst_once_across_the_processes(tmp_path: Path) -> None:
    """Each request on a new connection, so the kernel spreads them over both processes: with a
    bucket per process DUO would get its burst of 6 twice."""
    settings = make_settings(tmp_path)
    setup = seed_demo(settings, ports={p: free_port() for p in ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent")})
    limits = {
        "KNOOPPUNT_LIMITS__PARTNER_BURST": '{"duo": 6}',
        "KNOOPPUNT_LIMITS__PARTNER_REQUESTS_PER_SECOND": '{"duo": 0.01}',
    }
    hub = MultiHub(settings, setup, 2, tmp_path / "hub.log", env=limits)
    try:
        hub.wait_started()
        assert {p["role"] for p in hub.processes().values()} == {"hub", "api"}
        duo = {"Authorization": f"Bearer {setup.tokens['duo']}"}
        statuses = [httpx.get(f"{hub.base}/v1/inbox", headers=duo, timeout=10).status_code for _ in range(24)]
        refused = httpx.get(f"{hub.base}/v1/inbox", headers=duo, timeout=10)
        coa = httpx.get(f"{hub.base}/v1/inbox", headers={"Authorization": f"Bearer {setup.tokens['coa']}"}, timeout=10)
    finally:
        hub.stop()
    assert statuses.count(200) == 6, statuses
    assert statuses.count(429) == 18
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 60  # one token every 100 s
    assert coa.status_code == 200  # COA's bucket is its own
