"""Starting the hub and, for the demo, its simulated partners, in one event loop."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from adapters.restpush import simulator
from hub.demo import load_partners
from hub.partners import Partner, issue_token, new_token, upsert_partner
from hub.service import Hub
from hub.settings import ROOT, Settings

DEMO_PARTNERS = ROOT / "config" / "demo-partners.yaml"
SIMULATOR_BASE_PORT = 9101


@dataclass(frozen=True)
class DemoSetup:
    """What the demo set up: partners with fresh tokens, and simulator ports."""

    tokens: dict[str, str]
    simulators: dict[str, int]
    partners: list[Partner]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_demo(settings: Settings, *, path: Path = DEMO_PARTNERS, ports: dict[str, int] | None = None) -> DemoSetup:
    """Configure the demo partners (pointing at their simulators) and issue fresh tokens."""
    hub = Hub(settings)
    hub.open_store()
    tokens: dict[str, str] = {}
    sims: dict[str, int] = {}
    partners = []
    try:
        for i, demo in enumerate(load_partners(path)):
            partner = demo.partner
            if demo.simulator:
                port = (ports or {}).get(partner.id, SIMULATOR_BASE_PORT + i)
                sims[partner.id] = port
                config = dict(partner.adapter_config)
                config.update(url=f"http://127.0.0.1:{port}/berichten", health_url=f"http://127.0.0.1:{port}/health")
                partner = replace(partner, adapter_config=config)
            hub.writer.run_sync(upsert_partner(partner, actor="demo"))
            token = new_token()
            hub.writer.run_sync(issue_token(partner.id, token, actor="demo"))
            tokens[partner.id] = token
            partners.append(partner)
    finally:
        hub.close_store()
    return DemoSetup(tokens=tokens, simulators=sims, partners=partners)


def hub_server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    from hub.api.app import create_app
    from hub.api.tls import uvicorn_options

    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", access_log=False, **uvicorn_options(settings)
    )
    return uvicorn.Server(config)


async def serve(settings: Settings, host: str, port: int, demo: DemoSetup | None) -> None:
    """Run the hub (and the demo's simulators) until interrupted."""
    servers = [hub_server(settings, host, port)]
    if demo is not None:
        servers += [simulator.server(pid, "127.0.0.1", p) for pid, p in demo.simulators.items()]
    await asyncio.gather(*(s.serve() for s in servers))
