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
from hub.cli.runner import DEMO_PARTNERS, hub_server, seed_demo, simulator_servers
from hub.demo import load_partners
from hub.infomodel import InfoModel
from hub.loopback import free_port
from hub.service import Hub
from hub.settings import ROOT, Settings


async def run_scenario(settings: Settings, per_flow: int, console: Console) -> int:
    """Start the hub and simulators, send every flow, wait for delivery, print where it went."""
    demo_ports = {p.partner.id: free_port() for p in load_partners(DEMO_PARTNERS) if p.simulator}
    port = free_port()
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "log_level": "warning"})
    setup = seed_demo(settings, ports=demo_ports)
    servers = [hub_server(settings, "127.0.0.1", port)]
    servers += simulator_servers(settings, setup, f"http://127.0.0.1:{port}")
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random()  # noqa: S311 - fictitious demo persons, not secrets
    plan: list[tuple[str, str, dict[str, Any]]] = []
    for _ in range(per_flow):
        plan += [
            ("coa", "klantprofiel -> Utrecht (REST)", data.klantprofiel(rng, "0344")),
            ("duo", "inburgeringsplicht -> Utrecht (WUS)", data.inburgeringsplicht(rng, "0344")),
            ("duo", "inburgeringsplicht -> Ede (WUS, portaal)", data.inburgeringsplicht(rng, "0228")),
            ("gemeente-utrecht", "PIP -> DUO (WUS)", data.pip(rng, "0344")),
            ("agii", "aanmelding -> Gent", data.aanmelding(rng, "44021")),
        ]
    refused_doc = data.pip(rng, "0344")
    results: list[tuple[str, str, str, str]] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("berichten versturen", total=len(plan) + 2)
                for sender, label, doc in plan:
                    code = await send_as(client, setup, sender, doc)
                    results.append((doc["messageId"], sender, label, code))
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
                elif sim.kind in ("duo", "coa"):
                    books = (await client.get(f"{sim.base_url}/control/received")).json()
                    received[pid] = {"count": books["count"], "duplicates": books["duplicatesEliminated"]}
            chain_lines = await dutch_chain(client, setup)
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
    for line in chain_lines:
        console.print(line)
    for line in lookup_lines:
        console.print(line)
    hub = Hub(settings)
    with hub.engine.connect() as conn:
        result = verify(conn)
    hub.engine.dispose()
    console.print(f"Auditketen: {'in orde' if result.ok else 'GEBROKEN'} ({result.checked} records)")
    # a message to a plateau-1 partner waits in its portal inbox until someone there reads it
    ok = (
        result.ok
        and all(s in ("delivered", "in_inbox") for s in statuses.values())
        and refused.status_code == 403
        and bool(chain_lines)
        and not any("MISLUKT" in line for line in chain_lines)
    )
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


_MODEL: list[InfoModel] = []


def _payload_xml(doc: dict[str, Any]) -> str:
    """The payload of a canonical JSON message as XML (what DUO's WUS link carries)."""
    from lxml import etree

    if not _MODEL:
        _MODEL.append(InfoModel(ROOT / "schemas"))
    model = _MODEL[0]
    return etree.tostring(model.json_to_xml(model.get(doc["type"], doc["version"]), doc["payload"])).decode()


async def send_as(client: httpx.AsyncClient, setup: Any, sender: str, doc: dict[str, Any]) -> str:
    """Send a message as a demo partner over its own link; returns the hub's HTTP status.

    DUO signs it and sends it over WUS (its simulator's ``/control/send``), COA over
    Digikoppeling REST with its OIN; every other partner posts to ``/v1/berichten``.
    """
    sim = setup.simulators.get(sender)
    if sim is not None and sim.kind == "duo":
        body = {
            "type": doc["type"],
            "payloadXml": _payload_xml(doc),
            "subject": doc["subject"],
            "purpose": doc["purpose"],
            "messageId": doc["messageId"],
        }
        if doc.get("conversationId"):
            body["conversationId"] = doc["conversationId"]
        r = await client.post(f"{sim.base_url}/control/send", json=body)
        return str(r.json().get("httpStatus"))
    if sim is not None and sim.kind == "coa":
        r = await client.post(f"{sim.base_url}/control/send", json={"message": doc})
        return str(r.json().get("httpStatus"))
    r = await client.post("/v1/berichten", json=doc, headers={"Authorization": f"Bearer {setup.tokens[sender]}"})
    return str(r.status_code)


async def _until(check: Any, timeout: float = 20.0) -> bool:
    """Poll ``check()`` (async, returns bool) until it holds or the time is up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)


async def dutch_chain(client: httpx.AsyncClient, setup: Any) -> list[str]:
    """The Dutch chain through the hub, each partner on its own link, as printed lines.

    COA hands a klantprofiel over to Utrecht (Digikoppeling REST) and Utrecht confirms
    receipt; DUO signals inburgeringsplicht over WUS (signed; the hub verifies); Utrecht
    sends its PIP and then a change to it back to DUO (the hub signs; DUO verifies).
    """
    duo, coa, utrecht = (setup.simulators.get(p) for p in ("duo", "coa", "gemeente-utrecht"))
    if duo is None or coa is None or utrecht is None or (duo.kind, coa.kind) != ("duo", "coa"):
        return []
    rng = random.Random()  # noqa: S311 - fictitious demo persons, not secrets
    as_utrecht = {"Authorization": f"Bearer {setup.tokens['gemeente-utrecht']}"}
    lines = ["Nederlandse keten via het knooppunt (Digikoppeling):"]

    async def at_utrecht(message_id: str) -> bool:
        got = (await client.get(utrecht.url)).json()
        return any(m["messageId"] == message_id for m in got["messages"])

    async def at_duo(message_id: str) -> dict[str, Any] | None:
        got = (await client.get(f"{duo.base_url}/control/berichten")).json()
        return next((b for b in got["berichten"] if b["messageId"] == message_id), None)

    # 1. the warm handover: COA -> Utrecht, and Utrecht confirms receipt to COA
    profiel = data.klantprofiel(rng, "0344")
    profiel["conversationId"] = profiel["messageId"]
    code = await send_as(client, setup, "coa", profiel)
    arrived = code == "202" and await _until(lambda: at_utrecht(profiel["messageId"]))
    lines.append(
        f"  1. COA draagt warm over: klantprofiel {profiel['messageId'][:8]} (REST, X-OIN) -> gemeente-utrecht: "
        + ("afgeleverd" if arrived else f"MISLUKT (HTTP {code})")
    )
    ontvangst = data.klantprofiel_ontvangst(profiel)
    r = await client.post("/v1/berichten", json=ontvangst, headers=as_utrecht)

    async def confirmed() -> bool:
        state = (await client.get(f"{coa.base_url}/control/handovers")).json()
        return profiel["messageId"] in state["confirmed"]

    ok = r.status_code == 202 and await _until(confirmed)
    lines.append(
        "  2. gemeente-utrecht bevestigt de ontvangst -> COA: "
        + ("overdracht bevestigd bij COA" if ok else f"MISLUKT (HTTP {r.status_code})")
    )

    # 2. DUO establishes inburgeringsplicht and signals it over WUS, signed
    signal = data.inburgeringsplicht(rng, "0344")
    sent = await client.post(
        f"{duo.base_url}/control/send",
        json={
            "type": "inburgeringsplicht",
            "payloadXml": _payload_xml(signal),
            "subject": signal["subject"],
            "purpose": signal["purpose"],
            "messageId": signal["messageId"],
        },
    )
    answer = sent.json()
    arrived = answer.get("httpStatus") == 200 and await _until(lambda: at_utrecht(signal["messageId"]))
    if arrived:
        lines.append(
            f"  3. DUO meldt inburgeringsplicht {signal['messageId'][:8]} via WUS: handtekening, tijdstempel en OIN "
            "geverifieerd door de hub, gerouteerd naar gemeente-utrecht; "
            f"ontvangstbewijs {answer.get('status')} ondertekend door {answer.get('receiptSignedBy')}, "
            "geverifieerd door DUO"
        )
    else:
        lines.append(f"  3. DUO meldt inburgeringsplicht: MISLUKT ({answer.get('fault') or answer.get('error')})")

    # 3. Utrecht draws up the PIP for the same person and sends it to DUO; then changes it
    persoon = signal["payload"]["persoon"]
    pip = data.pip(rng, "0344")
    pip["subject"] = signal["subject"]
    pip["payload"]["persoon"] = {"identificatie": persoon["identificatie"], "achternaam": persoon["achternaam"]}
    for step, doc, what in (
        (4, pip, f"PIP (leerroute {pip['payload']['leerroute']})"),
        (5, data.pip_wijziging(pip, "Z" if pip["payload"]["leerroute"] != "Z" else "B1"), "PIP-wijziging"),
    ):
        r = await client.post("/v1/berichten", json=doc, headers=as_utrecht)
        found: dict[str, Any] | None = None

        async def kept(message_id: str = doc["messageId"]) -> bool:
            nonlocal found
            found = await at_duo(message_id)
            return found is not None

        if r.status_code == 202 and await _until(kept):
            lines.append(
                f"  {step}. gemeente-utrecht stuurt {what} -> DUO via WUS, ondertekend door het knooppunt "
                f"(OIN {found['signerOin'] if found else '?'}): handtekening geverifieerd door DUO"
            )
        else:
            lines.append(f"  {step}. gemeente-utrecht stuurt {what} -> DUO: MISLUKT (HTTP {r.status_code})")

    # 4. the notification function: Ede follows a person for notices only and is told of a signal
    if "gemeente-ede" in setup.tokens:
        lines.append(await _signaalmelding(client, setup, rng))
    return lines


async def _signaalmelding(client: httpx.AsyncClient, setup: Any, rng: random.Random) -> str:
    as_ede = {"Authorization": f"Bearer {setup.tokens['gemeente-ede']}"}
    signal = data.inburgeringsplicht(rng, "0344")
    r = await client.post(
        "/v1/repertorium/inschrijvingen",
        json={"subject": signal["subject"], "hoedanigheid": "meldingen"},
        headers=as_ede,
    )
    if r.status_code not in (200, 201):
        return f"  6. signaalmelding: MISLUKT (inschrijving HTTP {r.status_code})"
    code = await send_as(client, setup, "duo", signal)

    async def told() -> bool:
        items = (await client.get("/v1/inbox", headers=as_ede)).json()["items"]
        return any(
            i["type"] == "signaalmelding" and i["payload"]["signaalBericht"] == signal["messageId"] for i in items
        )

    if code == "200" and await _until(told):
        return (
            f"  6. gemeente-ede volgt de persoon voor meldingen: DUO-signaal {signal['messageId'][:8]} ging naar "
            "gemeente-utrecht, Ede kreeg een signaalmelding in zijn portaal-inbox (geen DUO-portaal afspeuren)"
        )
    return f"  6. signaalmelding aan gemeente-ede: MISLUKT (HTTP {code})"
