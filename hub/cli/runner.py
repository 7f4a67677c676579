"""Starting the hub and, for the demo, its simulated partners, in one event loop."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from adapters.discimus import simulator as discimus_sim
from adapters.magda import simulator as magda_sim
from adapters.restpush import simulator
from adapters.rijksregister import simulator as rijksregister_sim
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
    simulators: dict[str, Simulated]
    partners: list[Partner]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Simulated:
    """How the demo serves one partner: which simulator, and the path its adapter calls."""

    kind: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SIM_PATHS[self.kind]}"

    def server(self, partner_id: str) -> uvicorn.Server:
        if self.kind == "restpush":
            return simulator.server(partner_id, "127.0.0.1", self.port)
        if self.kind == "magda":
            return magda_sim.server("127.0.0.1", self.port)
        if self.kind == "discimus":
            return discimus_sim.server("127.0.0.1", self.port)
        return rijksregister_sim.server("127.0.0.1", self.port)


SIM_PATHS = {
    "restpush": "/berichten",
    "magda": magda_sim.SOAP_PATH,
    "discimus": discimus_sim.SOAP_PATH,
    "rijksregister": rijksregister_sim.SOAP_PATH,
}
MAGDA_KINDS = {"magda", "discimus", "rijksregister"}


def seed_demo(settings: Settings, *, path: Path = DEMO_PARTNERS, ports: dict[str, int] | None = None) -> DemoSetup:
    """Configure the demo partners (pointing at their simulators) and issue fresh tokens."""
    hub = Hub(settings)
    hub.open_store()
    tokens: dict[str, str] = {}
    sims: dict[str, Simulated] = {}
    partners = []
    try:
        for i, demo in enumerate(load_partners(path)):
            partner = demo.partner
            config = dict(partner.adapter_config)
            if demo.simulator in MAGDA_KINDS and settings.magda_url:
                config.update(url=settings.magda_url)
            elif demo.simulator:
                sim = Simulated(demo.simulator, (ports or {}).get(partner.id, SIMULATOR_BASE_PORT + i))
                sims[partner.id] = sim
                config.update(url=sim.url)
                if demo.simulator == "restpush":
                    config.update(health_url=f"http://127.0.0.1:{sim.port}/health")
                if demo.simulator in MAGDA_KINDS:
                    config.update(insz_test_numbers=settings.insz_test_numbers)
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
        servers += [sim.server(pid) for pid, sim in demo.simulators.items()]
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    if demo is not None:
        await _show_lookups(servers, demo, host, port)
    await asyncio.gather(*tasks)


async def _show_lookups(servers: list[uvicorn.Server], demo: DemoSetup, host: str, port: int) -> None:
    """Once everything is up, show a person lookup and an enrolment lookup through the hub."""
    import httpx

    from hub.cli.scenario import lookups

    for _ in range(200):
        if all(s.started for s in servers):
            break
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
        try:
            for line in await lookups(client, demo):
                print(line, flush=True)
        except httpx.HTTPError as exc:
            print(f"opvragingen niet getoond: {exc.__class__.__name__}", flush=True)
