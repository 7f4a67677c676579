"""Fixtures for adapter tests: the shared MAGDA contracts and live simulators on loopback.

Simulators run in a real uvicorn server on 127.0.0.1 with a free port, in a
background thread (as httpx's own conftest does); adapters reach them over
real HTTP through an ``httpx.AsyncClient``. Each test starts from a reset
simulator (no faults, no registrations, no latency).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from adapters._magda.sim import SOAP_PATH, SimState
from adapters.discimus import simulator as discimus_simulator
from adapters.magda import simulator as magda_simulator
from adapters.rijksregister import simulator as rijksregister_simulator

REPO = Path(__file__).resolve().parents[2]


def _shared_dir() -> Path:
    """KNOOPPUNT_SHARED_DIR, else <repo>/../shared (a worktree one level deeper looks one further up)."""
    if "KNOOPPUNT_SHARED_DIR" in os.environ:
        return Path(os.environ["KNOOPPUNT_SHARED_DIR"])
    candidates = [REPO.parent / "shared", REPO.parent.parent / "shared"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED = _shared_dir()
MAGDA_CONTRACTS = SHARED / "contracts" / "magda"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def magda_contracts() -> Path:
    if not (MAGDA_CONTRACTS / "xsd").is_dir():
        raise RuntimeError(f"shared MAGDA contracts not found at {MAGDA_CONTRACTS} (set KNOOPPUNT_SHARED_DIR)")
    return MAGDA_CONTRACTS


class LiveServer:
    """A uvicorn server for one ASGI app on 127.0.0.1, port chosen by the OS."""

    def __init__(self, app: Any) -> None:
        self.app = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("simulator did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @property
    def soap_url(self) -> str:
        return self.base_url + SOAP_PATH

    @property
    def sim(self) -> SimState:
        state: SimState = self.app.state.sim
        return state


def _live(factory: Callable[..., Any]) -> Iterator[LiveServer]:
    with LiveServer(factory(timeout_seconds=2.0, huge_bytes=600 * 1024)) as server:
        yield server


@pytest.fixture(scope="session")
def magda_server() -> Iterator[LiveServer]:
    yield from _live(magda_simulator.create_app)


@pytest.fixture(scope="session")
def discimus_server() -> Iterator[LiveServer]:
    yield from _live(discimus_simulator.create_app)


@pytest.fixture(scope="session")
def rijksregister_server() -> Iterator[LiveServer]:
    yield from _live(rijksregister_simulator.create_app)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@dataclass
class Control:
    """Steers a simulator through its control endpoints, as a demo operator would."""

    server: LiveServer
    http: httpx.AsyncClient

    async def reset(self) -> None:
        (await self.http.post(self.server.base_url + "/_control/reset")).raise_for_status()

    async def fault(
        self, fault: str, insz: str | None = None, times: int | None = None, service: str | None = None
    ) -> None:
        body: dict[str, Any] = {"fault": fault}
        if service is not None:
            body["service"] = service
        if insz is not None:
            body["insz"] = insz
        if times is not None:
            body["times"] = times
        resp = await self.http.post(self.server.base_url + "/_control/faults", json=body)
        assert resp.status_code == 201, resp.text

    async def latency(self, seconds: float) -> None:
        (await self.http.post(self.server.base_url + "/_control/latency", json={"seconds": seconds})).raise_for_status()

    async def state(self) -> dict[str, Any]:
        resp = await self.http.get(self.server.base_url + "/_control/state")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data


def fast_config(url: str, **extra: Any) -> dict[str, Any]:
    """Adapter configuration with short timeouts and backoff, so failure paths stay fast."""
    config: dict[str, Any] = {
        "url": url,
        "afzender": {"identificatie": "knooppunt.vlaanderen.be/test", "hoedanigheid": "1300"},
        "connect_timeout": 1.0,
        "read_timeout": 0.5,
        "retries": 2,
        "backoff_base": 0.01,
        "backoff_max": 0.02,
        "breaker_threshold": 50,
        "breaker_reset": 60.0,
        "max_reply_bytes": 256 * 1024,
    }
    config.update(extra)
    return config


@pytest.fixture
async def magda_control(magda_server: LiveServer, http: httpx.AsyncClient) -> Control:
    control = Control(magda_server, http)
    await control.reset()
    return control


@pytest.fixture
async def discimus_control(discimus_server: LiveServer, http: httpx.AsyncClient) -> Control:
    control = Control(discimus_server, http)
    await control.reset()
    return control


@pytest.fixture
async def rijksregister_control(rijksregister_server: LiveServer, http: httpx.AsyncClient) -> Control:
    control = Control(rijksregister_server, http)
    await control.reset()
    return control
