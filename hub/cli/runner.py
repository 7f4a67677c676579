"""Starting the hub and, for the demo, its simulated partners, in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import uvicorn

from adapters.coa import simulator as coa_sim
from adapters.discimus import simulator as discimus_sim
from adapters.duo import simulator as duo_sim
from adapters.magda import simulator as magda_sim
from adapters.restpush import simulator
from adapters.rijksregister import simulator as rijksregister_sim
from hub import pki
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


@dataclass(frozen=True)
class Simulated:
    """How the demo serves one partner: which simulator, and the path its adapter calls."""

    kind: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SIM_PATHS[self.kind]}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server(
        self,
        partner_id: str,
        *,
        hub_url: str = "",
        hub_token: str | None = None,
        pki_dir: Path | None = None,
        hub_ca: Path | None = None,
    ) -> uvicorn.Server:
        """The simulator's server; DUO and COA also send in, so they need the hub's URL (and COA a
        token; ``hub_ca``: the CA of the hub's HTTPS certificate, when it serves HTTPS)."""
        if self.kind == "restpush":
            return simulator.server(partner_id, "127.0.0.1", self.port)
        if self.kind == "duo":
            return duo_sim.server(
                "127.0.0.1",
                self.port,
                hub_url=f"{hub_url}/wus/{partner_id}" if hub_url else None,
                hub_ca=hub_ca,
                pki_dir=pki_dir or DEFAULT_PKI,
            )
        if self.kind == "coa":
            return coa_sim.server(
                "127.0.0.1",
                self.port,
                hub_url=f"{hub_url}/v1/berichten" if hub_url else None,
                hub_token=hub_token,
                hub_ca=hub_ca,
            )
        if self.kind == "magda":
            return magda_sim.server("127.0.0.1", self.port)
        if self.kind == "discimus":
            return discimus_sim.server("127.0.0.1", self.port)
        return rijksregister_sim.server("127.0.0.1", self.port)


SIM_PATHS = {
    "restpush": "/berichten",
    "duo": "/wus/duo",
    "coa": "/v1/berichten",
    "magda": magda_sim.SOAP_PATH,
    "discimus": discimus_sim.SOAP_PATH,
    "rijksregister": rijksregister_sim.SOAP_PATH,
}
MAGDA_KINDS = {"magda", "discimus", "rijksregister"}
DEFAULT_PKI = ROOT / "var" / "testpki"


def demo_pki_dir(settings: Settings) -> Path:
    """Where the demo's Digikoppeling test PKI lives: beside a SQLite database, else under var/."""
    if settings.is_sqlite and ":///" in settings.database_url:
        db = Path(settings.database_url.split(":///", 1)[1])
        if db.name and db.name != ":memory:":
            return db.parent / "testpki"
    return DEFAULT_PKI


def demo_tokens_file(settings: Settings) -> Path:
    """Where `knooppunt run --demo` writes the demo partners' tokens: beside the demo PKI."""
    return demo_pki_dir(settings).parent / "demo-tokens.env"


def write_demo_tokens(settings: Settings, setup: DemoSetup) -> Path:
    """Write the demo's fresh tokens as shell variables (``KNOOPPUNT_TOKEN_GEMEENTE_UTRECHT=...``),
    readable by the owner only, so a newcomer can ``source`` them instead of copying each one."""
    path = demo_tokens_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Tokens van de demopartners van `knooppunt run --demo` (bij elke start nieuw)."]
    for partner_id, token in sorted(setup.tokens.items()):
        name = "KNOOPPUNT_TOKEN_" + "".join(c if c.isalnum() else "_" for c in partner_id.upper())
        lines.append(f"export {name}={shlex.quote(token)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # an older file may have been readable by others
        out.write("\n".join(lines) + "\n")
    return path


def seed_demo(
    settings: Settings,
    *,
    path: Path = DEMO_PARTNERS,
    ports: dict[str, int] | None = None,
    tokens: dict[str, str] | None = None,
) -> DemoSetup:
    """Configure the demo partners (pointing at their simulators) and issue fresh tokens.

    ``tokens`` gives some partners a chosen token instead (a simulator started
    before the hub, such as COA's, already holds the one it sends in with).
    """
    hub = Hub(settings)
    hub.open_store()
    chosen = dict(tokens or {})
    tokens = {}
    sims: dict[str, Simulated] = {}
    partners = []
    pki_dir = demo_pki_dir(settings)
    try:
        for i, demo in enumerate(load_partners(path)):
            partner = demo.partner
            config = dict(partner.adapter_config)
            if demo.simulator in MAGDA_KINDS and settings.magda_url:
                config.update(url=settings.magda_url)
            elif demo.simulator:
                sim = Simulated(demo.simulator, (ports or {}).get(partner.id, SIMULATOR_BASE_PORT + i))
                sims[partner.id] = sim
                if demo.simulator == "duo":
                    config.update(duo_sim.adapter_config(sim.base_url, pki_dir))
                elif demo.simulator == "coa":
                    config.update(coa_sim.adapter_config(sim.base_url))
                else:
                    config.update(url=sim.url)
                if demo.simulator == "restpush":
                    config.update(health_url=f"http://127.0.0.1:{sim.port}/health")
                if demo.simulator in MAGDA_KINDS:
                    config.update(insz_test_numbers=settings.insz_test_numbers)
            partner = replace(partner, adapter_config=config)
            hub.writer.run_sync(upsert_partner(partner, actor="demo"))
            token = chosen.get(partner.id) or new_token()
            hub.writer.run_sync(issue_token(partner.id, token, actor="demo"))
            tokens[partner.id] = token
            partners.append(partner)
    finally:
        hub.close_store()
    return DemoSetup(tokens=tokens, simulators=sims, partners=partners)


def hub_server(settings: Settings, host: str, port: int, *, api_only: bool = False) -> uvicorn.Server:
    from hub.api.app import create_app
    from hub.api.tls import uvicorn_options

    config = uvicorn.Config(
        create_app(settings, api_only=api_only),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        **uvicorn_options(settings),
    )
    return uvicorn.Server(config)


async def serve(
    settings: Settings,
    host: str,
    port: int,
    demo: DemoSetup | None,
    *,
    sockets: list[socket.socket] | None = None,
    stop: Stop,
) -> None:
    """Run the hub (and the demo's simulators) until ``stop`` (installed by the caller) gets a
    signal; ``sockets``: the hub listens on these (bound by `knooppunt run --processes`) instead
    of binding host:port itself."""
    servers = [hub_server(settings, host, port)]
    if demo is not None:
        servers += simulator_servers(settings, demo, hub_base_url(settings, host, port))
    stop.watch(servers)
    tasks = [asyncio.create_task(servers[0].serve(sockets=sockets))]
    tasks += [asyncio.create_task(s.serve()) for s in servers[1:]]
    shown = asyncio.create_task(_show_lookups(servers, demo, settings, host, port)) if demo is not None else None
    await asyncio.gather(*tasks)
    if shown is not None:  # stopped while the demo was still showing its lookups
        shown.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await shown


class Stop:
    """SIGINT and SIGTERM for the uvicorn servers of one process (the hub and the demo's
    simulators): the first signal stops them all, a second SIGINT forces them, and a signal that
    comes before a server exists stops that server as soon as it is watched.

    Two things lost a SIGTERM during start-up, leaving `knooppunt run --demo` running. Each
    ``Server.serve`` installs its own handler and, on its way out, puts back the one it found:
    servers stopping in another order than they started put back the handler of a server that
    had already stopped. And a handler that raises (``KeyboardInterrupt``) raises wherever the
    main thread happens to be, which may be a garbage-collector callback that ignores it. This
    handler only sets flags."""

    def __init__(self) -> None:
        self.servers: list[uvicorn.Server] = []
        self.signals: list[int] = []

    def handle(self, sig: int, frame: FrameType | None) -> None:
        force = bool(self.signals) and sig == signal.SIGINT
        self.signals.append(sig)
        for server in self.servers:
            server.should_exit = True
            server.force_exit = server.force_exit or force

    def watch(self, servers: list[uvicorn.Server]) -> None:
        for server in servers:
            server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
            server.should_exit = server.should_exit or bool(self.signals)
        self.servers.extend(servers)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """This handler for SIGINT and SIGTERM while inside (signals reach the main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        found = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in found.items():
                signal.signal(sig, handler)


def hub_base_url(settings: Settings, host: str, port: int) -> str:
    """Where the demo's own clients (simulators sending in, the lookups shown) reach the hub:
    HTTPS when it serves TLS (`make run-tls`), on loopback when it listens on every address."""
    scheme = "https" if settings.tls.enabled else "http"
    return f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"  # noqa: S104 - compared, not bound


def _hub_ca(settings: Settings) -> Path | None:
    """The CA the demo's clients trust the hub's HTTPS certificate by (none: plain HTTP)."""
    return settings.tls.ca_certs if settings.tls.enabled else None


def simulator_servers(settings: Settings, demo: DemoSetup, hub_url: str) -> list[uvicorn.Server]:
    """The demo's simulators; DUO signs with the demo PKI and COA sends in with its own token."""
    hub_ca = _hub_ca(settings)
    return [
        sim.server(pid, hub_url=hub_url, hub_token=demo.tokens.get(pid), pki_dir=demo_pki_dir(settings), hub_ca=hub_ca)
        for pid, sim in demo.simulators.items()
    ]


async def _show_lookups(
    servers: list[uvicorn.Server], demo: DemoSetup, settings: Settings, host: str, port: int
) -> None:
    """Once everything is up, show the Dutch chain, a person lookup and an enrolment lookup through the hub."""
    import httpx

    from hub.cli.scenario import dutch_chain, lookups

    for _ in range(200):
        if all(s.started for s in servers):
            break
        await asyncio.sleep(0.05)
    verify = pki.trust(_hub_ca(settings))
    async with httpx.AsyncClient(base_url=hub_base_url(settings, host, port), timeout=10, verify=verify) as client:
        try:
            for line in await dutch_chain(client, demo):
                print(line, flush=True)
        except httpx.HTTPError as exc:
            print(f"Nederlandse keten niet getoond: {exc.__class__.__name__}", flush=True)
        try:
            for line in await lookups(client, demo):
                print(line, flush=True)
        except httpx.HTTPError as exc:
            print(f"opvragingen niet getoond: {exc.__class__.__name__}", flush=True)


async def serve_api_process(settings: Settings, host: str, port: int, *, leader: int, ready_file: Path) -> None:
    """One extra API process of `knooppunt run --processes N`: the API on host:port beside the
    leader (SO_REUSEPORT), without dispatcher or periodic jobs; it writes its pid to ``ready_file``
    once it serves, and stops when the leader is gone (no orphans)."""
    from hub.cli.processes import reuseport_socket

    sock = reuseport_socket(host, port)
    server = hub_server(settings, host, port, api_only=True)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise SystemExit(1)  # the app did not start (its lifespan logged why)
        await asyncio.sleep(0.05)
    ready_file.write_text(str(os.getpid()))
    while not task.done():
        if os.getppid() != leader:
            server.should_exit = True  # the leader died without stopping us
        await asyncio.wait({task}, timeout=1.0)
    await task
