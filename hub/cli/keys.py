"""`knooppunt keys`: make keys, and rotate the payload master key without losing old data."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub import logs
from hub.auth import new_signing_key, public_pem
from hub.crypto import MasterKeys, key_id
from hub.errors import HubError
from hub.keys import master_key_usage, new_master_key, rewrap_unit
from hub.service import Hub
from hub.settings import Settings

app = typer.Typer(help="Sleutels maken en roteren (zie docs/security.md).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _hub() -> Hub:
    logs.configure(json=True, level="warning")
    try:
        hub = Hub(Settings())
    except HubError as exc:
        err.print(f"[red]configuratiefout:[/red] {exc.detail}")
        raise typer.Exit(2) from exc
    hub.open_store()
    return hub


@app.command("generate")
def generate() -> None:
    """Druk een nieuwe sleutel af (base64, 32 bytes) voor KNOOPPUNT_PAYLOAD_KEY of KNOOPPUNT_AUDIT_HMAC_KEY."""
    print(new_master_key())


@app.command("signing-key")
def signing_key(
    out: Annotated[Path, typer.Option(help="Bestand voor de private sleutel (PEM)")],
) -> None:
    """Maak een Ed25519-sleutel die OAuth2-toegangstokens tekent; de publieke sleutel gaat naar stdout."""
    pem = new_signing_key()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(pem, encoding="utf-8")
    out.chmod(0o600)
    print(public_pem(pem), end="")


@app.command("status")
def status() -> None:
    """Toon welke hoofdsleutel hoeveel datasleutels omhult."""
    hub = _hub()
    try:
        with hub.engine.connect() as conn:
            usage = master_key_usage(conn)
        active = key_id(hub.settings.payload_key_bytes)
        for kid, count in sorted(usage.items()):
            mark = " (actief)" if kid == active else ""
            console.print(f"{kid}{mark}: {count} datasleutel(s)")
        if not usage:
            console.print(f"{active} (actief): nog geen datasleutels")
    finally:
        hub.close_store()


@app.command("rotate")
def rotate() -> None:
    """Omhul alle datasleutels opnieuw met de actieve hoofdsleutel (KNOOPPUNT_PAYLOAD_KEY).

    Zet eerst de nieuwe sleutel in KNOOPPUNT_PAYLOAD_KEY en de vorige in KNOOPPUNT_PAYLOAD_OLD_KEYS;
    daarna mag de vorige sleutel weg.
    """
    hub = _hub()
    settings = hub.settings
    master = MasterKeys(settings.payload_key_bytes, [base64.b64decode(k) for k in settings.payload_old_keys])
    try:
        result = hub.writer.run_sync(rewrap_unit(master, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    console.print(
        f"{result.rewrapped} datasleutel(s) opnieuw omhuld met {master.active_kid}; "
        f"{result.already_current} waren al actueel, {result.shredded} vernietigd"
    )
