"""`knooppunt lookup` and `knooppunt check-partner`: ask a partner through the same adapter the hub uses.

Exit codes of lookup: 0 an answer, 3 the partner has no data, 4 another partner error, 2 bad input.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from dataclasses import replace
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from hub import logs
from hub.errors import HubError, InputError, NotAllowed, PartnerError
from hub.partners import Partner
from hub.protocols import PartnerRef
from hub.service import Hub
from hub.settings import Settings

app = typer.Typer(help="Opvragingen bij partners (persoon, inschrijvingen).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

OPERATOR = PartnerRef(id="operator", role="operator")
DEFAULT_PURPOSE = "be-opvolging-inburgeraar"
MAGDA_PARTNERS = {
    "magda": ("adapters.magda:MagdaAdapter", "dienstenintegrator"),
    "discimus": ("adapters.discimus:DiscimusAdapter", "onderwijs"),
}


def _hub(settings: Settings) -> Hub:
    logs.configure(json=True, level="warning")
    hub = Hub(settings)
    hub.open_store()
    if settings.magda_url:
        # KNOOPPUNT_MAGDA_URL: every MAGDA service at one endpoint, instead of the simulator
        for partner_id, (spec, role) in MAGDA_PARTNERS.items():
            known = hub.partners.get(partner_id)
            base = known or Partner(id=partner_id, name=partner_id, role=role, adapter=spec)
            config = {**base.adapter_config, "url": settings.magda_url, "insz_test_numbers": settings.insz_test_numbers}
            hub.partners.put(replace(base, adapter_config=config))
    return hub


async def _ask(settings: Settings, kind: str, insz: str, purpose: str, params: dict[str, str]) -> dict[str, Any]:
    hub = _hub(settings)
    try:
        async with httpx.AsyncClient() as http:
            hub.http = http
            return await hub.lookup(
                OPERATOR, kind, insz, purpose=purpose, params=params, actor=f"operator:{getpass.getuser()}"
            )
    finally:
        await hub.stop_adapters()
        hub.close_store()


def _run(kind: str, insz: str, purpose: str, params: dict[str, str], as_json: bool) -> None:
    try:
        answer = asyncio.run(_ask(Settings(), kind, insz, purpose, params))
    except (InputError, NotAllowed) as exc:
        err.print(f"[red]ongeldige vraag:[/red] {exc.detail}")
        for p in exc.invalid_params:
            err.print(f"  {p.name}: {p.reason}")
        raise typer.Exit(2) from exc
    except (PartnerError, HubError) as exc:
        err.print(f"[red]partnerfout:[/red] {exc.detail}")
        raise typer.Exit(4) from exc
    out = {**answer["data"], "waarschuwingen": answer["waarschuwingen"]}
    if as_json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        console.print_json(data=out)
    if not answer["found"]:
        err.print("de partner heeft geen gegevens over deze persoon")
        raise typer.Exit(3)


@app.command("persoon")
def persoon(
    insz: Annotated[str, typer.Argument(help="INSZ van de persoon")],
    purpose: Annotated[str, typer.Option(help="Protocol waaronder de opvraging gebeurt")] = DEFAULT_PURPOSE,
    as_json: Annotated[bool, typer.Option("--json", help="Als JSON")] = False,
) -> None:
    """Persoonsgegevens (MAGDA GeefPersoon), geaudit als raadpleging door de operator."""
    _run("persoon", insz, purpose, {}, as_json)


@app.command("inschrijvingen")
def inschrijvingen(
    insz: Annotated[str, typer.Argument(help="INSZ van de persoon")],
    van: Annotated[str | None, typer.Option(help="Begin (JJJJ-MM-DD)")] = None,
    tot: Annotated[str | None, typer.Option(help="Einde (JJJJ-MM-DD)")] = None,
    purpose: Annotated[str, typer.Option(help="Protocol waaronder de opvraging gebeurt")] = DEFAULT_PURPOSE,
    as_json: Annotated[bool, typer.Option("--json", help="Als JSON")] = False,
) -> None:
    """Onderwijsinschrijvingen (MAGDA GeefHistoriekInschrijving), NT2 inbegrepen."""
    params = {k: v for k, v in (("van", van), ("tot", tot)) if v}
    _run("inschrijvingen", insz, purpose, params, as_json)


async def _check(settings: Settings, partner_id: str) -> tuple[bool, dict[str, Any]]:
    hub = _hub(settings)
    try:
        partner = hub.partners.get(partner_id)
        if partner is None:
            return False, {"fout": f"onbekende partner {partner_id}"}
        if not partner.adapter:
            return True, {
                "plateau": partner.plateau,
                "adapter": None,
                "uitleg": "plateau 1: berichten gaan naar de portaalinbox",
            }
        async with httpx.AsyncClient() as http:
            hub.http = http
            adapter = hub.adapter_for(partner)
            if adapter is None:
                return False, {"fout": "geen adapter"}
            probe = getattr(adapter, "probe", None)
            status = await (probe() if callable(probe) else adapter.health())
            return status.ok, {"adapter": partner.adapter, "ok": status.ok, "detail": status.detail, **status.facts}
    finally:
        await hub.stop_adapters()
        hub.close_store()


def check_partner(partner_id: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Verbindingstest: wat werkt en wat niet (bereikbaarheid, TLS, een onschuldige oproep)."""
    ok, facts = asyncio.run(_check(Settings(), partner_id))
    for key, value in facts.items():
        console.print(f"{key:>14}: {value}")
    console.print("[green]in orde[/green]" if ok else "[red]niet in orde[/red]")
    raise typer.Exit(0 if ok else 1)


async def _reconcile(settings: Settings, partner_id: str, period: str) -> tuple[bool, list[dict[str, Any]]]:
    hub = _hub(settings)
    try:
        partner = hub.partners.get(partner_id)
        if partner is None:
            raise HubError(f"onbekende partner {partner_id}")
        async with httpx.AsyncClient() as http:
            hub.http = http
            adapter = hub.adapter_for(partner)
            ask = getattr(adapter, "reconcile", None)
            if adapter is None or not callable(ask):
                raise HubError(f"{partner_id} kent geen afstemming (reconcile) in zijn koppeling")
            theirs_received, theirs_sent = await ask(period)
        ours_received, ours_sent = hub.exchange_counts(partner_id, period)
    finally:
        await hub.stop_adapters()
        hub.close_store()
    rows = []
    for direction, ours, theirs in (
        (f"knooppunt -> {partner_id}", set(ours_sent), set(theirs_received.message_ids)),
        (f"{partner_id} -> knooppunt", set(theirs_sent.message_ids), set(ours_received)),
    ):
        sender_side, receiver_side = ours, theirs
        rows.append(
            {
                "richting": direction,
                "verstuurd": len(sender_side),
                "ontvangen": len(receiver_side),
                "ontbreekt": sorted(sender_side - receiver_side),
                "onverwacht": sorted(receiver_side - sender_side),
            }
        )
    return all(not r["ontbreekt"] and not r["onverwacht"] for r in rows), rows


def reconcile(
    partner: Annotated[str, typer.Option("--partner", help="Partner-id, bv. duo")],
    period: Annotated[str, typer.Option("--period", help="Periode JJJJ-MM of JJJJ-MM-DD")],
    as_json: Annotated[bool, typer.Option("--json", help="Als JSON")] = False,
) -> None:
    """Vergelijk aantallen en controlegetallen van wat beide kanten in een periode verstuurden en
    ontvingen; noem elk ontbrekend bericht. Exitcode 1 bij een gat."""
    try:
        complete, rows = asyncio.run(_reconcile(Settings(), partner, period))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(4) from exc
    if as_json:
        print(json.dumps({"partner": partner, "period": period, "compleet": complete, "richtingen": rows}, indent=2))
    else:
        for r in rows:
            console.print(f"{r['richting']}: verstuurd {r['verstuurd']}, ontvangen {r['ontvangen']}")
            for mid in r["ontbreekt"]:
                console.print(f"  [red]ontbreekt[/red] {mid}")
            for mid in r["onverwacht"]:
                console.print(f"  [yellow]onverwacht[/yellow] {mid}")
        console.print("[green]compleet[/green]" if complete else "[red]niet compleet[/red]")
    raise typer.Exit(0 if complete else 1)


async def _poll(settings: Settings, partner_id: str, receipt: str | None) -> dict[str, Any]:
    from hub.mutations import poll_mutations

    hub = _hub(settings)
    try:
        async with httpx.AsyncClient() as http:
            hub.http = http
            result = await poll_mutations(hub, partner_id, receipt)
    finally:
        await hub.stop_adapters()
        hub.close_store()
    return {
        "ontvangstReferte": result.receipt,
        "berichten": [a.as_json() for a in result.accepted],
        "overgeslagen": result.skipped,
    }


def poll_mutations(
    partner: Annotated[str, typer.Option("--partner", help="De authentieke bron")] = "rijksregister",
    receipt: Annotated[str | None, typer.Option("--referte", help="OntvangstReferte van de vorige batch")] = None,
) -> None:
    """Haal mutaties (verhuizing, overlijden, nieuw INSZ) op en stuur ze naar wie de persoon volgt."""
    try:
        out = asyncio.run(_poll(Settings(), partner, receipt))
    except (PartnerError, HubError) as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(4) from exc
    print(json.dumps(out, indent=2, ensure_ascii=False))
