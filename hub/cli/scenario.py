"""`knooppunt demo`: a realistic day in the chain, over real HTTP, printed as it happens."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from hub import demo as data
from hub.audit import verify
from hub.cli.runner import DEMO_PARTNERS, free_port, hub_server, seed_demo
from hub.demo import load_partners
from hub.service import Hub
from hub.settings import Settings


async def run_scenario(settings: Settings, per_flow: int, console: Console) -> int:
    """Start the hub and simulators, send every flow, wait for delivery, print where it went."""
    demo_ports = {p.partner.id: free_port() for p in load_partners(DEMO_PARTNERS) if p.simulator}
    port = free_port()
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "log_level": "warning"})
    setup = seed_demo(settings, ports=demo_ports)
    servers = [hub_server(settings, "127.0.0.1", port)]
    servers += [sim.server(pid) for pid, sim in setup.simulators.items()]
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random()  # noqa: S311 - fictitious demo persons, not secrets
    plan: list[tuple[str, str, dict[str, Any]]] = []
    for _ in range(per_flow):
        plan += [
            ("coa", "klantprofiel -> Utrecht", data.klantprofiel(rng, "0344")),
            ("duo", "inburgeringsplicht -> Utrecht", data.inburgeringsplicht(rng, "0344")),
            ("duo", "inburgeringsplicht -> Ede (portaal)", data.inburgeringsplicht(rng, "0228")),
            ("gemeente-utrecht", "PIP -> DUO", data.pip(rng, "0344")),
            ("agii", "aanmelding -> Gent", data.aanmelding(rng, "44021")),
        ]
    refused_doc = data.pip(rng, "0344")
    results: list[tuple[str, str, str, str]] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("berichten versturen", total=len(plan) + 2)
                for sender, label, doc in plan:
                    r = await client.post(
                        "/v1/berichten", json=doc, headers={"Authorization": f"Bearer {setup.tokens[sender]}"}
                    )
                    results.append((doc["messageId"], sender, label, str(r.status_code)))
                    progress.advance(task)
                # a resend of the same id: acknowledged again, stored once
                again = await client.post(
                    "/v1/berichten", json=plan[0][2], headers={"Authorization": f"Bearer {setup.tokens[plan[0][0]]}"}
                )
                progress.advance(task)
                # DUO may not send a PIP: no protocol allows it
                refused = await client.post(
                    "/v1/berichten", json=refused_doc, headers={"Authorization": f"Bearer {setup.tokens['duo']}"}
                )
                progress.advance(task)
            statuses = await _wait_delivered(client, results, setup.tokens, console)
            received = {}
            for pid, sim in setup.simulators.items():
                if sim.kind == "restpush":
                    received[pid] = (await client.get(sim.url)).json()
            lookup_lines = await lookups(client, setup)
    finally:
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)

    table = Table(title="Wat ging waarheen")
    for col in ("bericht", "van", "stroom", "HTTP", "aflevering"):
        table.add_column(col)
    for mid, sender, label, code in results:
        table.add_row(mid[:8], sender, label, code, statuses.get(mid, "?"))
    console.print(table)
    console.print(
        f"Opnieuw verzonden met hetzelfde id: HTTP {again.status_code} (zelfde antwoord, niet dubbel opgeslagen)"
    )
    problem = refused.json()
    console.print(f"DUO stuurt een PIP: HTTP {refused.status_code} — {problem.get('detail')}")
    sims = Table(title="Ontvangen door de gesimuleerde partners")
    sims.add_column("partner")
    sims.add_column("berichten")
    sims.add_column("dubbel")
    for pid, body in received.items():
        sims.add_row(pid, str(body["count"]), str(body["duplicates"]))
    console.print(sims)
    for line in lookup_lines:
        console.print(line)
    hub = Hub(settings)
    with hub.engine.connect() as conn:
        result = verify(conn)
    hub.engine.dispose()
    console.print(f"Auditketen: {'in orde' if result.ok else 'GEBROKEN'} ({result.checked} records)")
    # a message to a plateau-1 partner waits in its portal inbox until someone there reads it
    ok = result.ok and all(s in ("delivered", "in_inbox") for s in statuses.values()) and refused.status_code == 403
    return 0 if ok else 1


async def _wait_delivered(
    client: httpx.AsyncClient, results: list[tuple[str, str, str, str]], tokens: dict[str, str], console: Console
) -> dict[str, str]:
    statuses: dict[str, str] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("afleveren", total=len(results))
        for _ in range(100):
            done = 0
            for mid, sender, _, _ in results:
                r = await client.get(f"/v1/berichten/{mid}", headers={"Authorization": f"Bearer {tokens[sender]}"})
                deliveries = r.json().get("deliveries", [])
                state = ",".join(sorted({d["status"] for d in deliveries})) or "?"
                statuses[mid] = state
                done += state in ("delivered", "dead", "in_inbox")
            progress.update(task, completed=done)
            if done == len(results):
                break
            await asyncio.sleep(0.1)
    return statuses


async def lookups(client: httpx.AsyncClient, setup: Any) -> list[str]:
    """AgII asks MAGDA for a person and Discimus for enrolments, through the hub (audited as consulted)."""
    magda = setup.simulators.get("magda")
    discimus = setup.simulators.get("discimus")
    if magda is None or discimus is None:
        return []
    personas = (await client.get(f"http://127.0.0.1:{magda.port}/_control/state")).json()["personas"]
    nt2 = (await client.get(f"http://127.0.0.1:{discimus.port}/_control/state")).json()["personas"]["nt2"]
    headers = {"Authorization": f"Bearer {setup.tokens['agii']}"}
    purpose = "be-opvolging-inburgeraar"
    person = await client.post(
        "/v1/personen/_zoek", json={"insz": personas["regular"], "purpose": purpose}, headers=headers
    )
    enrolments = await client.post(
        "/v1/inschrijvingen/_zoek", json={"insz": nt2, "purpose": purpose, "van": "2010-01-01"}, headers=headers
    )
    lines = []
    if person.status_code == 200:
        data = person.json()["data"]
        where = (data.get("adres") or {}).get("gemeente", "?")
        lines.append(f"Opvraging via MAGDA (GeefPersoon) door AgII: {data.get('achternaam')}, woont in {where}")
    else:
        lines.append(f"Opvraging via MAGDA mislukte: HTTP {person.status_code}")
    if enrolments.status_code == 200:
        items = enrolments.json()["data"].get("inschrijvingen", [])
        nt2_count = sum(1 for e in items if e.get("nt2"))
        lines.append(
            f"Opvraging via Discimus (GeefHistoriekInschrijving): {len(items)} inschrijvingen, {nt2_count} NT2"
        )
    else:
        lines.append(f"Opvraging via Discimus mislukte: HTTP {enrolments.status_code}")
    return lines
