"""`knooppunt pki`: a development CA with a server certificate and partner certificates (mutual TLS).

Only for demos and tests; the hub's TLS settings then point at the files::

    knooppunt pki init --dir var/pki
    KNOOPPUNT_TLS__CERTFILE=var/pki/server.pem KNOOPPUNT_TLS__KEYFILE=var/pki/server-key.pem \\
    KNOOPPUNT_TLS__CA_CERTS=var/pki/ca.pem KNOOPPUNT_PUBLIC_URL=https://127.0.0.1:8443 \\
        knooppunt run --demo --port 8443
    curl --cacert var/pki/ca.pem --cert var/pki/duo.pem --key var/pki/duo-key.pem https://127.0.0.1:8443/v1/inbox
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub import pki
from hub.demo import load_partners
from hub.settings import ROOT

app = typer.Typer(help="Ontwikkel-PKI voor mutual TLS (niet voor productie).", no_args_is_help=True)
console = Console()
DEFAULT_DIR = ROOT / "var" / "pki"


def _ca(directory: Path) -> pki.Issued:
    ca = pki.Issued(directory / "ca.pem", directory / "ca-key.pem")
    if not ca.cert.is_file():
        console.print(f"geen CA in {directory}: maak eerst `knooppunt pki init`")
        raise typer.Exit(1)
    return ca


@app.command("init")
def init(
    directory: Annotated[Path, typer.Option("--dir", help="Map voor CA, server- en partnercertificaten")] = DEFAULT_DIR,
    host: Annotated[list[str] | None, typer.Option(help="Naam of IP van de hub (herhaalbaar)")] = None,
    demo: Annotated[bool, typer.Option(help="Ook certificaten voor de demopartners")] = True,
) -> None:
    """Maak een ontwikkel-CA, een servercertificaat en (standaard) certificaten voor de demopartners."""
    ca = pki.create_ca(directory)
    server = pki.create_server(ca, directory, tuple(host or ("localhost", "127.0.0.1")))
    console.print(f"CA: {ca.cert}\nserver: {server.cert} ({server.key})")
    if demo:
        from hub.cli.runner import DEMO_PARTNERS

        for item in load_partners(DEMO_PARTNERS):
            p = item.partner
            issued = pki.create_partner(ca, directory, p.id, oin=p.oin, kbo=p.kbo, name=p.name)
            console.print(f"partner {p.id}: {issued.cert} (vingerafdruk {pki.fingerprint(issued.cert)})")


@app.command("partner")
def partner(
    partner_id: Annotated[str, typer.Argument(metavar="ID")],
    directory: Annotated[Path, typer.Option("--dir")] = DEFAULT_DIR,
    oin: Annotated[str | None, typer.Option(help="OIN (NL, 20 cijfers)")] = None,
    kbo: Annotated[str | None, typer.Option(help="KBO-nummer (BE, 10 cijfers)")] = None,
) -> None:
    """Maak een partnercertificaat met OIN of KBO-nummer; zonder beide: pin de vingerafdruk."""
    issued = pki.create_partner(_ca(directory), directory, partner_id, oin=oin, kbo=kbo)
    console.print(f"{issued.cert} ({issued.key}); vingerafdruk {pki.fingerprint(issued.cert)}")
