"""`knooppunt pki`: a development CA with a server certificate and partner certificates (mutual TLS).

Only for demos and tests; the hub's TLS settings then point at the files::

    knooppunt pki init --dir var/pki
    KNOOPPUNT_TLS__CERTFILE=var/pki/server.pem KNOOPPUNT_TLS__KEYFILE=var/pki/server-key.pem \\
    KNOOPPUNT_TLS__CA_CERTS=var/pki/ca.pem KNOOPPUNT_PUBLIC_URL=https://127.0.0.1:8443 \\
        knooppunt run --demo --port 8443
    curl --cacert var/pki/ca.pem --cert var/pki/duo.pem --key var/pki/duo-key.pem https://127.0.0.1:8443/v1/inbox

Outgoing two-way TLS (a partner simulator that asks the hub for a certificate)::

    knooppunt pki server magda-sim --host 127.0.0.1        # the simulator's server certificate
    knooppunt pki partner knooppunt --oin 00000001234567890000   # the hub's own client certificate
    KNOOPPUNT_OUTBOUND_TLS__MAGDA__CLIENT_CERT=var/pki/knooppunt.pem \\
    KNOOPPUNT_OUTBOUND_TLS__MAGDA__CLIENT_KEY=var/pki/knooppunt-key.pem \\
    KNOOPPUNT_OUTBOUND_TLS__MAGDA__CA_CERTS=var/pki/ca.pem ...   # and tls_profile "magda" on the partner

Revocation: ``knooppunt pki crl`` issues ``crl.pem`` (``KNOOPPUNT_TLS__CRL_FILES``) and
``knooppunt pki revoke ID`` adds a partner's certificate to it; a running hub reads the new
list within ``KNOOPPUNT_TLS__CRL_REFRESH_SECONDS``.
"""

from __future__ import annotations

from datetime import timedelta
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
    revocations = pki.create_crl(ca, _crl_path(directory))
    console.print(f"CA: {ca.cert}\nserver: {server.cert} ({server.key})\nCRL: {revocations}")
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


@app.command("server")
def server(
    name: Annotated[str, typer.Argument(metavar="NAAM", help="Bestandsnaam, bv. magda-sim")],
    directory: Annotated[Path, typer.Option("--dir")] = DEFAULT_DIR,
    host: Annotated[list[str] | None, typer.Option(help="Naam of IP van de server (herhaalbaar)")] = None,
) -> None:
    """Maak een servercertificaat voor een partnersimulator die de hub via een uitgaand TLS-profiel aanroept."""
    issued = pki.create_server(_ca(directory), directory, tuple(host or ("127.0.0.1",)), name=name)
    console.print(f"{issued.cert} ({issued.key})")


def _crl_path(directory: Path) -> Path:
    return directory / "crl.pem"


@app.command("crl")
def crl(
    directory: Annotated[Path, typer.Option("--dir")] = DEFAULT_DIR,
    days: Annotated[int, typer.Option(min=1, max=365, help="Geldig (nextUpdate) voor zoveel dagen")] = 7,
) -> None:
    """Geef de intrekkingslijst (crl.pem) opnieuw uit: ingetrokken certificaten blijven ingetrokken."""
    path = pki.create_crl(_ca(directory), _crl_path(directory), valid_for=timedelta(days=days))
    console.print(f"CRL: {path} (KNOOPPUNT_TLS__CRL_FILES='[\"{path}\"]'), geldig {days} dagen")


@app.command("revoke")
def revoke(
    partner_id: Annotated[str, typer.Argument(metavar="ID")],
    directory: Annotated[Path, typer.Option("--dir")] = DEFAULT_DIR,
) -> None:
    """Trek het certificaat van een partner in: een hub met deze CRL weigert het bij de handshake."""
    cert = directory / f"{partner_id}.pem"
    if not cert.is_file():
        console.print(f"geen certificaat {cert}")
        raise typer.Exit(1)
    path = pki.create_crl(_ca(directory), _crl_path(directory), (cert,))
    console.print(f"{partner_id} ingetrokken in {path}; een draaiende hub leest de lijst binnen crl_refresh_seconds")
