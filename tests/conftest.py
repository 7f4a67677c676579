"""Shared fixtures: real SQLite in tmp_path, a real uvicorn hub on loopback, real simulators."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from adapters.restpush import simulator
from hub.cli.runner import DemoSetup, seed_demo
from hub.settings import ROOT, DeliverySettings, Settings

SHARED = Path(os.environ.get("KNOOPPUNT_SHARED_DIR", ROOT.parent / "shared"))
# env "test" refuses the public development keys, as production does: tests bring their own.
TEST_PAYLOAD_KEY = base64.b64encode(b"knooppunt-test-suite-payload-key").decode()
TEST_AUDIT_KEY = base64.b64encode(b"knooppunt-test-suite-audit-hmac!").decode()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "payload_key": TEST_PAYLOAD_KEY,
        "audit_hmac_key": TEST_AUDIT_KEY,
        "database_url": f"sqlite:///{tmp_path / 'hub.db'}",
        "log_level": "warning",
        "delivery": DeliverySettings(
            max_attempts=3, backoff_base_seconds=0.05, backoff_max_seconds=0.2, poll_seconds=0.05, timeout_seconds=2
        ),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port, held until the server takes it.

    Picking a free port and binding it later races with every other process on the
    machine; handing uvicorn the already-bound socket does not.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as uvicorn does: a restarted server may bind the port again despite TIME_WAIT connections
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    """uvicorn servers in a thread of their own, with their own event loop."""

    def __init__(self, servers: list[uvicorn.Server], sockets: list[socket.socket | None] | None = None) -> None:
        self.servers = servers
        self.sockets = sockets or [None] * len(servers)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.gather(
                *(s.serve(sockets=[sock] if sock else None) for s, sock in zip(self.servers, self.sockets, strict=True))
            )

        asyncio.run(main())

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not all(s.started for s in self.servers):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("servers did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        for s in self.servers:
            s.should_exit = True
        self.thread.join(timeout=20)
        for sock in self.sockets:
            if sock is not None:
                sock.close()


@dataclass
class LiveHub:
    """A running hub with the demo partners and their simulators."""

    url: str
    settings: Settings
    setup: DemoSetup
    sim_urls: dict[str, str]
    thread: ServerThread

    def client(self, partner: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.setup.tokens[partner]}"} if partner else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def received(self, partner: str) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.sim_urls[partner]}/berichten", timeout=5).json()
        return result

    def control(self, partner: str, **body: Any) -> None:
        httpx.post(f"{self.sim_urls[partner]}/_control", json=body, timeout=5).raise_for_status()

    def wait_status(self, partner: str, message_id: str, want: set[str], timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(partner) as c:
            while True:
                body: dict[str, Any] = c.get(f"/v1/berichten/{message_id}").json()
                states = {d["status"] for d in body.get("deliveries", [])}
                if states and states <= want:
                    return body
                if time.monotonic() > deadline:
                    raise AssertionError(f"deliveries of {message_id} still {states}, wanted {want}")
                time.sleep(0.05)


def start_live_hub(settings: Settings, sim_ports: dict[str, int] | None = None) -> LiveHub:
    from hub.api.app import create_app

    sim_sockets = {pid: bound_socket() for pid in ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent")}
    ports = sim_ports or {pid: sock.getsockname()[1] for pid, sock in sim_sockets.items()}
    setup = seed_demo(settings, ports=ports)
    hub_socket = bound_socket()
    port = hub_socket.getsockname()[1]
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    servers = [uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))]
    sims = [simulator.server(pid, "127.0.0.1", p) for pid, p in setup.simulators.items()]
    sockets: list[socket.socket | None] = [hub_socket]
    sockets += [None if sim_ports else sim_sockets[pid] for pid in setup.simulators]
    for pid, sock in sim_sockets.items():
        if sim_ports or pid not in setup.simulators:
            sock.close()
    thread = ServerThread(servers + sims, sockets)
    thread.start()
    return LiveHub(
        url=f"http://127.0.0.1:{port}",
        settings=settings,
        setup=setup,
        sim_urls={pid: f"http://127.0.0.1:{p}" for pid, p in setup.simulators.items()},
        thread=thread,
    )


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveHub]:
    hub = start_live_hub(settings)
    try:
        yield hub
    finally:
        hub.thread.stop()
