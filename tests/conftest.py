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
from lxml import etree
from playwright.sync_api import Browser, sync_playwright

from hub.cli.runner import DEMO_PARTNERS, DemoSetup, Simulated, demo_pki_dir, seed_demo
from hub.demo import load_partners
from hub.infomodel import InfoModel
from hub.partners import Partner, new_token, upsert_partner
from hub.service import Hub
from hub.settings import ROOT, DeliverySettings, Settings

SHARED = Path(os.environ.get("KNOOPPUNT_SHARED_DIR", ROOT.parent / "shared"))
# env "test" refuses the public development keys, as production does: tests bring their own.
TEST_PAYLOAD_KEY = base64.b64encode(b"knooppunt-test-suite-payload-key").decode()
TEST_AUDIT_KEY = base64.b64encode(b"knooppunt-test-suite-audit-hmac!").decode()
TEST_SIGNING_KEY = base64.b64encode(b"knooppunt-test-suite-audit-sign!").decode()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "payload_key": TEST_PAYLOAD_KEY,
        "audit_hmac_key": TEST_AUDIT_KEY,
        "audit_signing_key": TEST_SIGNING_KEY,
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


class ServerThread:
    """uvicorn servers in a thread of their own, with their own event loop.

    A server may come with a socket already bound (``sockets``), so its port is known
    before its app is built, without a race for a free port.
    """

    def __init__(self, servers: list[uvicorn.Server], sockets: dict[int, socket.socket] | None = None) -> None:
        self.servers = servers
        self.sockets = sockets or {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.gather(
                *(s.serve(sockets=[self.sockets[i]] if i in self.sockets else None) for i, s in enumerate(self.servers))
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


def bound_port(server: uvicorn.Server) -> int:
    """The port a server started on port 0 got from the OS (no race with other processes)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


@dataclass
class LiveHub:
    """A running hub with the demo partners and their simulators."""

    url: str
    settings: Settings
    setup: DemoSetup
    sim_urls: dict[str, str]
    thread: ServerThread
    sim_thread: ServerThread
    sims: dict[str, Simulated]

    def client(self, partner: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.setup.tokens[partner]}"} if partner else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def received(self, partner: str) -> dict[str, Any]:
        """What a simulated partner received, in the REST-push simulator's shape."""
        kind = self.sims[partner].kind
        if kind == "duo":
            # DUO's simulator keeps each verified WUS message's payload (XML): read it as canonical JSON
            got = httpx.get(f"{self.sim_urls[partner]}/control/berichten", timeout=5).json()
            books = httpx.get(f"{self.sim_urls[partner]}/control/received", timeout=5).json()
            model = _infomodel()
            messages = []
            for b in got["berichten"]:
                mtype = model.get(b["type"], "1.0")
                payload = model.xml_to_json(mtype, etree.fromstring(b["payloadXml"].encode()))
                messages.append({"messageId": b["messageId"], "message": {"type": b["type"], "payload": payload}})
            return {"count": len(messages), "duplicates": books["duplicatesEliminated"], "messages": messages}
        if kind == "coa":
            books = httpx.get(f"{self.sim_urls[partner]}/control/received", timeout=5).json()
            return {
                "count": books["count"],
                "duplicates": books["duplicatesEliminated"],
                "messages": [{"messageId": m} for m in books["messageIds"]],
            }
        result: dict[str, Any] = httpx.get(f"{self.sim_urls[partner]}/berichten", timeout=5).json()
        return result

    def control(self, partner: str, **body: Any) -> None:
        """Steer a simulator: REST-push ``mode=down|up|reject``; DUO and COA their own ``/control``."""
        path = "/control" if self.sims[partner].kind in ("duo", "coa") else "/_control"
        httpx.post(f"{self.sim_urls[partner]}{path}", json=body, timeout=5).raise_for_status()

    def wait_status(self, partner: str, message_id: str, want: set[str], timeout: float = 30) -> dict[str, Any]:
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

    def stop(self) -> None:
        self.thread.stop()
        self.sim_thread.stop()


SIMULATED = {p.partner.id: p.simulator for p in load_partners(DEMO_PARTNERS) if p.simulator}
_MODEL: list[InfoModel] = []


def _infomodel() -> InfoModel:
    if not _MODEL:
        _MODEL.append(InfoModel(ROOT / "schemas"))
    return _MODEL[0]


def start_live_hub(
    settings: Settings,
    sim_ports: dict[str, int] | None = None,
    *,
    extra: list[Partner] | None = None,
    hub_port: int = 0,
) -> LiveHub:
    """Simulators first (on ports the OS picks, or the given ones), then the hub pointing at them."""
    from hub.api.app import create_app

    # the hub must know its own URL (redirects, OIDC callbacks), and DUO's and COA's simulators
    # send in to it: bind its socket first
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", hub_port))
    hub_port = int(listener.getsockname()[1])
    # a simulator that sends in with a bearer token (COA) holds it before the hub issues it
    tokens = {pid: new_token() for pid, kind in SIMULATED.items() if kind == "coa"}
    sims = {
        pid: Simulated(kind, (sim_ports or {}).get(pid, 0)).server(
            pid, hub_url=f"http://127.0.0.1:{hub_port}", hub_token=tokens.get(pid), pki_dir=demo_pki_dir(settings)
        )
        for pid, kind in SIMULATED.items()
    }
    sim_thread = ServerThread(list(sims.values()))
    sim_thread.start()
    ports = {pid: bound_port(server) for pid, server in sims.items()}
    setup = seed_demo(settings, ports=ports, tokens=tokens)
    if extra:
        store = Hub(settings)
        store.open_store()
        for partner in extra:
            store.writer.run_sync(upsert_partner(partner, actor="test"))
        store.close_store()
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{hub_port}"})
    hub_server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=hub_port, log_level="warning")
    )
    thread = ServerThread([hub_server], {0: listener})
    thread.start()
    port = hub_port
    return LiveHub(
        url=f"http://127.0.0.1:{port}",
        settings=settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"}),
        setup=setup,
        sim_urls={pid: f"http://127.0.0.1:{p}" for pid, p in ports.items()},
        sims=setup.simulators,
        thread=thread,
        sim_thread=sim_thread,
    )


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveHub]:
    hub = start_live_hub(settings)
    try:
        yield hub
    finally:
        hub.stop()


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
