"""`knooppunt users`: portal accounts of plateau-1 organisations (add, disable, list, second factor)."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Annotated

import pyotp
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from hub import logs
from hub.errors import HubError
from hub.portal import accounts
from hub.service import Hub
from hub.settings import Settings

app = typer.Typer(help="Portaalgebruikers van organisaties beheren.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _open() -> Hub:
    logs.configure(json=True, level="warning")
    try:
        hub = Hub(Settings())
    except HubError as exc:
        err.print(f"[red]configuratiefout:[/red] {exc.detail}")
        raise typer.Exit(2) from exc
    hub.open_store()
    return hub


DEMO_USER = "demo@ede.nl"


def seed_demo_user(settings: Settings) -> tuple[str, str] | None:
    """For `knooppunt run --demo`: a portal user of gemeente-ede with a fresh password (printed once)."""
    hub = Hub(settings)
    hub.open_store()
    try:
        if accounts.find_user(hub.engine, DEMO_USER) is not None:
            return None
        password = secrets.token_urlsafe(12)
        unit = accounts.add_user(
            "gemeente-ede", DEMO_USER, "Demo Ede", password, totp=False, actor="demo", master=hub.keys.master
        )
        hub.writer.run_sync(unit)
        return DEMO_USER, password
    except HubError:
        return None
    finally:
        hub.close_store()


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(metavar="GEBRUIKERSNAAM", help="Meestal het e-mailadres")],
    partner: Annotated[str, typer.Option(help="De organisatie (partner-id), bv. gemeente-ede")],
    name: Annotated[str, typer.Option(help="Naam zoals het portaal hem toont")],
    totp: Annotated[bool, typer.Option("--totp", help="Stel meteen een tweede factor (TOTP) in")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Lees het wachtwoord van standaardinvoer (voor scripts)")
    ] = False,
) -> None:
    """Voeg een portaalgebruiker toe aan een organisatie."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Wachtwoord", hide_input=True, confirmation_prompt=True)
    hub = _open()
    try:
        secret = hub.writer.run_sync(
            accounts.add_user(partner, username, name, password, totp=totp, actor="cli", master=hub.keys.master)
        )
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    console.print(f"gebruiker {username.strip().lower()} toegevoegd aan {partner}")
    if secret:
        uri = pyotp.TOTP(secret).provisioning_uri(name=username.strip().lower(), issuer_name="Knooppunt")
        console.print("tweede factor: voeg deze sleutel toe aan een authenticator-app")
        print(secret)
        print(uri)


@app.command("disable")
def disable(username: Annotated[str, typer.Argument(metavar="GEBRUIKERSNAAM")]) -> None:
    """Zet een gebruiker uit en beëindig zijn sessies."""
    hub = _open()
    try:
        hub.writer.run_sync(accounts.disable_user(username, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    console.print(f"gebruiker {username.strip().lower()} uitgezet")


@app.command("require-totp")
def require_totp(
    partner: Annotated[str, typer.Argument(metavar="PARTNER")],
    off: Annotated[bool, typer.Option("--off", help="Niet langer verplichten")] = False,
) -> None:
    """Verplicht (of niet langer) een tweede factor voor alle gebruikers van een organisatie."""
    hub = _open()
    try:
        hub.writer.run_sync(accounts.set_require_totp(partner, not off, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    console.print(f"tweede factor voor {partner}: {'niet verplicht' if off else 'verplicht'}")


@app.command("notify")
def notify(
    partner: Annotated[str, typer.Argument(metavar="PARTNER")],
    email: Annotated[str | None, typer.Option(help="Functioneel adres, bv. inburgering@ede.nl")] = None,
    off: Annotated[bool, typer.Option("--off", help="Geen e-mails meer")] = False,
) -> None:
    """Stel in waar een organisatie een e-mail krijgt als er iets in haar inbox komt (zonder persoonsgegevens)."""
    if not off and (not email or "@" not in email):
        err.print("[red]geef --email ADRES of --off[/red]")
        raise typer.Exit(2)
    hub = _open()
    try:
        hub.writer.run_sync(accounts.set_notify_email(partner, None if off else email, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    console.print(f"meldingen voor {partner}: {'uit' if off else email}")


@app.command("list")
def list_users(
    partner: Annotated[str | None, typer.Option(help="Alleen deze organisatie")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Als JSON")] = False,
) -> None:
    """Toon de portaalgebruikers."""
    from hub.store.tables import portal_users

    hub = _open()
    try:
        query = select(portal_users).order_by(portal_users.c.partner_id, portal_users.c.username)
        if partner:
            query = query.where(portal_users.c.partner_id == partner)
        with hub.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
    finally:
        hub.close_store()
    if as_json:
        out = [
            {
                "username": r["username"],
                "name": r["display_name"],
                "partner": r["partner_id"],
                "active": bool(r["active"]),
                "totp": r["totp_secret"] is not None,
                "lockedUntil": str(r["locked_until"]) if r["locked_until"] else None,
            }
            for r in rows
        ]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return
    table = Table("gebruiker", "naam", "organisatie", "actief", "tweede factor", "geblokkeerd tot")
    for r in rows:
        table.add_row(
            r["username"],
            r["display_name"],
            r["partner_id"],
            "ja" if r["active"] else "nee",
            "ja" if r["totp_secret"] else "nee",
            str(r["locked_until"] or "-"),
        )
    console.print(table)
