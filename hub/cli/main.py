"""`knooppunt`: run the hub, drive the demo, manage partners, deliveries and the audit log.

Settings come from ``KNOOPPUNT_*`` environment variables (see hub/settings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from hub import logs
from hub.cli import lookup, schemas
from hub.cli.keys import app as keys_app
from hub.cli.pki import app as pki_app
from hub.cli.users import app as users_app
from hub.cli.users import seed_demo_user
from hub.errors import HubError
from hub.identifiers import IdentifierError, parse_kbo, parse_oin
from hub.partners import Partner, add_partner, issue_token, new_token
from hub.service import Hub
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.cli.runner import DemoSetup

app = typer.Typer(help="Knooppunt: het gegevensknooppunt van de inburgeringsketen.", no_args_is_help=True)
partners_app = typer.Typer(help="Partners beheren.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Afleveringen bekijken en opnieuw versturen.", no_args_is_help=True)
audit_app = typer.Typer(help="Het auditlog.", no_args_is_help=True)
retention_app = typer.Typer(help="Bewaartermijnen.", no_args_is_help=True)
dpo_app = typer.Typer(help="Functionarissen voor gegevensbescherming (toegang tot de audit-API).", no_args_is_help=True)
app.add_typer(partners_app, name="partners")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.add_typer(dpo_app, name="dpo")
app.add_typer(lookup.app, name="lookup")
app.add_typer(schemas.app, name="schemas")
app.command("check-partner")(lookup.check_partner)
app.command("reconcile")(lookup.reconcile)
app.command("mutations")(lookup.poll_mutations)
app.add_typer(pki_app, name="pki")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except HubError as exc:
        err.print(f"[red]configuratiefout:[/red] {exc.detail}")
        raise typer.Exit(2) from exc


def _open() -> Hub:
    logs.configure(json=True, level="warning")
    hub = Hub(_settings())
    hub.open_store()
    return hub


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Adres om op te luisteren")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Poort van de hub")] = 8000,
    demo: Annotated[bool, typer.Option(help="Demopartners en hun simulatoren starten")] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Aparte afleverprocessen (schaalmodus, vraagt KNOOPPUNT_TRANSPORT=rabbitmq); 0 = in dit proces",
        ),
    ] = 0,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="API-processen op dezelfde poort (ingebouwde standaard; standaard KNOOPPUNT_API_PROCESSES of 1)",
        ),
    ] = None,
) -> None:
    """Start de hub (API, SOAP, portaal, afleveringen) op de ingebouwde standaard: SQLite en in-process transport."""
    from hub.cli.runner import Stop, seed_demo, serve

    settings = _settings()
    count = processes if processes is not None else settings.api_processes
    supervisor = None
    if workers:
        from hub.cli.processes import WorkerSupervisor

        if settings.transport != "rabbitmq" or settings.is_sqlite:
            err.print("[red]--workers vraagt schaalmodus:[/red] KNOOPPUNT_TRANSPORT=rabbitmq en een PostgreSQL-URL")
            raise typer.Exit(2)
        settings = settings.model_copy(update={"run_workers": False})
        supervisor = WorkerSupervisor(workers)
    if settings.public_url == "http://127.0.0.1:8000" and (host, port) != ("127.0.0.1", 8000):
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    api = None
    sockets = None
    ready_dir = None
    if count > 1:
        if settings.transport != "memory":
            err.print(
                "[red]--processes is voor de ingebouwde standaard[/red] (KNOOPPUNT_TRANSPORT=memory); "
                "in schaalmodus: meer `knooppunt api`-processen achter een load balancer"
            )
            raise typer.Exit(2)
        from hub.cli.processes import ApiProcesses, port_is_free, reuseport_socket

        if not port_is_free(host, port):
            err.print(f"[red]poort {port} op {host} is al in gebruik[/red]")
            raise typer.Exit(1)
        ready_dir = Path(tempfile.mkdtemp(prefix="knooppunt-api-"))  # private: mode 0700
        settings, env = _leader_settings(settings, ready_dir)
        _migrate(settings)  # before any API process opens the database
        sockets = [reuseport_socket(host, port)]
        api = ApiProcesses(count - 1, host, port, env, ready_dir)
    setup = seed_demo(settings) if demo else None
    if api is not None:
        try:
            api.start()
        except RuntimeError as exc:
            api.stop()
            if ready_dir is not None:
                shutil.rmtree(ready_dir, ignore_errors=True)
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    base = f"{'https' if settings.tls.enabled else 'http'}://{host}:{port}"
    pids = ", ".join(str(p.pid) for p in api.procs if p is not None) if api is not None else None
    _banner(settings, base, setup, processes=(count, port, pids) if pids is not None else None)
    console.print("\nStoppen: Ctrl-C\n")
    if supervisor is not None:
        supervisor.start()
        console.print(f"{workers} afleverproces(sen) gestart")
    # SIGINT and SIGTERM stop the servers; the finally below then stops the child processes
    stop = Stop()
    try:
        with stop.installed():
            asyncio.run(serve(settings, host, port, setup, sockets=sockets, stop=stop))
    finally:
        if api is not None:
            api.stop()
        if ready_dir is not None:
            shutil.rmtree(ready_dir, ignore_errors=True)
        if supervisor is not None:
            supervisor.stop()


def _say(text: str) -> None:
    """One line of the start-up banner, never cut or wrapped by rich: URLs, tokens and curl
    commands must survive a copy from a narrow terminal or a log."""
    console.print(text, soft_wrap=True, highlight=False, markup=False)


def _banner(settings: Settings, base: str, setup: DemoSetup | None, *, processes: tuple[int, int, str] | None) -> None:
    """What `knooppunt run` prints once it is about to listen: where to look and, with --demo,
    the partners, their tokens (also written to a file to source) and commands to try."""
    console.rule("[bold]Knooppunt[/bold]")
    rows = [
        ("API", f"{base}/v1/berichten"),
        ("API-documentatie", f"{base}/v1/docs"),
        ("OpenAPI", f"{base}/v1/openapi.json"),
        ("SOAP (WSDL)", f"{base}/soap/berichten"),
        ("Gezondheid", f"{base}/health"),
        ("Portaal (plateau 1)", f"{base}/portaal  (gebruikers: knooppunt users add)"),
        ("Database", settings.database_url),
    ]
    if processes is not None:
        count, port, pids = processes
        rows.append(("Processen", f"{count} op poort {port}: deze hub (pid {os.getpid()}) en API-processen {pids}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        _say(f" {name:<{width}}  {value}")
    if setup is None:
        return
    console.print("\n[bold]Gesimuleerde partners[/bold] (partner, rol, ontvangt op, token)")
    id_width = max(len(p.id) for p in setup.partners)
    role_width = max(len(p.role) for p in setup.partners)
    where = {p.id: setup.simulators[p.id].url if p.id in setup.simulators else "portaal-inbox" for p in setup.partners}
    where_width = max(len(w) for w in where.values())
    for p in setup.partners:
        _say(f"  {p.id:<{id_width}}  {p.role:<{role_width}}  {where[p.id]:<{where_width}}  {setup.tokens[p.id]}")
    from hub.cli.runner import write_demo_tokens

    tokens_file = write_demo_tokens(settings, setup)
    _say(f"De tokens staan ook in {tokens_file}: source {tokens_file}  (dan bv. $KNOOPPUNT_TOKEN_DUO)")
    if demo_user := seed_demo_user(settings):
        _say(f"\nPortaal van gemeente Ede: {base}/portaal  gebruiker {demo_user[0]}  wachtwoord {demo_user[1]}")
    duo = setup.tokens["duo"]
    _say("\nStuur een bericht (DUO meldt een inburgeringsplicht aan Utrecht):")
    _say(
        f"  curl -s -X POST {base}/v1/berichten -H 'Authorization: Bearer {duo}' "
        "-H 'Content-Type: application/json' --data @examples/inburgeringsplicht.json"
    )
    _say(f"  curl -s {setup.simulators['gemeente-utrecht'].url}   # wat Utrecht ontving")
    _say(f"  curl -s {base}/v1/berichten/<messageId> -H 'Authorization: Bearer {duo}'")
    _say("\nVraag een persoon op via MAGDA (AgII, onder protocol be-opvolging-inburgeraar):")
    magda = setup.simulators.get("magda")
    state = f"http://127.0.0.1:{magda.port}/_control/state" if magda else "<MAGDA-simulator>/_control/state"
    _say(
        f"  curl -s -X POST {base}/v1/personen/_zoek -H 'Authorization: Bearer {setup.tokens['agii']}' "
        "-H 'Content-Type: application/json' "
        f"""-d '{{"insz": "<INSZ uit {state}>", "purpose": "be-opvolging-inburgeraar"}}'"""
    )


#: how often the leader's relay looks for messages the API processes accepted, unless
#: KNOOPPUNT_DELIVERY__POLL_SECONDS says otherwise (one small write transaction per poll)
MULTI_PROCESS_POLL_SECONDS = 0.1


def _leader_settings(settings: Settings, private_dir: Path) -> tuple[Settings, dict[str, str]]:
    """The leader's settings and the environment of its API processes, so that all agree.

    - Every process writes itself; their writers take turns on the database (hub.store.writelock).
    - A partner's rate limit holds for all processes together: they share its bucket in a file
      in ``private_dir`` (mode 0700; hub.limits).

    - A development hub without an OAuth signing key makes one per process; a token issued by
      one process must verify in the others, so the leader makes one key for all.
    - The API processes run no delivery workers and serve the leader's public URL.
    - The leader's relay polls every 0.1 s unless the poll interval was set: what an API process
      accepts reaches delivery only through that relay, which the API process rings after each
      commit (hub.doorbell) so it need not wait for the poll.
    """
    buckets = private_dir / "rate-buckets"
    doorbell = private_dir / "relay.sock"
    env = {
        **os.environ,
        "KNOOPPUNT_RUN_WORKERS": "false",
        "KNOOPPUNT_PUBLIC_URL": settings.public_url,
        "KNOOPPUNT_LIMITS__BUCKET_FILE": str(buckets),
        "KNOOPPUNT_DELIVERY__RELAY_SOCKET": str(doorbell),
    }
    limits = settings.limits.model_copy(update={"bucket_file": buckets})
    settings = settings.model_copy(update={"limits": limits})
    if settings.oauth.signing_key is None and settings.env == "development":
        from hub.auth import new_signing_key

        key = new_signing_key()
        settings = settings.model_copy(update={"oauth": settings.oauth.model_copy(update={"signing_key": key})})
        env["KNOOPPUNT_OAUTH__SIGNING_KEY"] = key
    delivery = settings.delivery.model_copy(update={"relay_socket": doorbell})
    if "poll_seconds" not in settings.delivery.model_fields_set:
        delivery = delivery.model_copy(update={"poll_seconds": MULTI_PROCESS_POLL_SECONDS})
    settings = settings.model_copy(update={"delivery": delivery})
    return settings, env


def _migrate(settings: Settings) -> None:
    from hub.store.database import make_engine
    from hub.store.migrate import upgrade

    engine = make_engine(settings)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@app.command("api-process", hidden=True)
def api_process(
    host: Annotated[str, typer.Option()],
    port: Annotated[int, typer.Option()],
    index: Annotated[int, typer.Option()],
    leader: Annotated[int, typer.Option(help="pid van het leidende `knooppunt run`-proces")],
    ready_file: Annotated[Path, typer.Option()],
) -> None:
    """Een extra API-proces van `knooppunt run --processes N` (start `knooppunt run` dat zelf)."""
    from hub.cli.runner import serve_api_process

    del index  # in the command line only, to tell the processes apart in `ps`
    settings = _settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_api_process(settings, host, port, leader=leader, ready_file=ready_file))


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Adres om op te luisteren")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Poort van de hub")] = 8000,
) -> None:
    """Start alleen de API (schaalmodus): berichten aannemen en publiceren, afleveren doen `knooppunt worker`s."""
    from hub.cli.runner import hub_server

    settings = _settings().model_copy(update={"run_workers": False})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(hub_server(settings, host, port).serve())


@app.command()
def worker(
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus-metrieken op <metrics-host>:<poort>")] = None,
    metrics_host: Annotated[str, typer.Option(help="Adres voor de metrieken (0.0.0.0 in een container)")] = "127.0.0.1",
) -> None:
    """Start een afleverproces (schaalmodus): claimt afleveringen en levert ze af; stopt op SIGTERM."""
    from hub.worker import run_worker

    settings = _settings()
    try:
        asyncio.run(run_worker(settings, metrics_port=metrics_port, metrics_host=metrics_host))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc


@app.command()
def demo(
    messages: Annotated[int, typer.Option(help="Aantal berichten per stroom")] = 3,
) -> None:
    """Speel een realistisch scenario af tegen een hub met gesimuleerde partners en toon wat waarheen ging."""
    from hub.cli.scenario import run_scenario

    settings = _settings()
    code = asyncio.run(run_scenario(settings, messages, console))
    raise typer.Exit(code)


# -- partners ---------------------------------------------------------------------


@partners_app.command("list")
def partners_list(as_json: Annotated[bool, typer.Option("--json", help="Als JSON")] = False) -> None:
    """Toon alle partners."""
    from hub.store.tables import partners

    hub = _open()
    try:
        with hub.engine.connect() as conn:
            tokens = {r.id: bool(r.token_hash) for r in conn.execute(select(partners.c.id, partners.c.token_hash))}
        if as_json:
            rows = [
                {
                    "id": p.id,
                    "name": p.name,
                    "role": p.role,
                    "plateau": p.plateau,
                    "adapter": p.adapter,
                    "codes": list(p.codes),
                    "oin": p.oin,
                    "kbo": p.kbo,
                    "active": p.active,
                    "token": tokens.get(p.id),
                }
                for p in hub.partners.all()
            ]
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        table = Table("id", "naam", "rol", "plateau", "adapter", "codes", "token")
        for p in hub.partners.all():
            table.add_row(
                p.id,
                p.name,
                p.role,
                str(p.plateau),
                p.adapter or "-",
                ",".join(p.codes),
                "ja" if tokens.get(p.id) else "nee",
            )
        console.print(table)
    finally:
        hub.close_store()


@partners_app.command("add")
def partners_add(
    partner_id: Annotated[str, typer.Argument(metavar="ID", help="Partner-id, bv. gemeente-utrecht")],
    name: Annotated[str, typer.Option(help="Volledige naam")],
    role: Annotated[str, typer.Option(help="Rol in de protocollen, bv. gemeente, duo, agentschap")],
    plateau: Annotated[int, typer.Option(min=1, max=3)] = 2,
    adapter: Annotated[str | None, typer.Option(help="Adapter, bv. rest-push (leeg op plateau 1)")] = None,
    url: Annotated[str | None, typer.Option(help="URL voor de adapter (rest-push)")] = None,
    code: Annotated[list[str] | None, typer.Option(help="Gemeentecode (herhaalbaar)")] = None,
    oin: Annotated[str | None, typer.Option()] = None,
    kbo: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Voeg een partner toe."""
    try:
        oin = parse_oin(oin) if oin else None
        kbo = parse_kbo(kbo) if kbo else None
    except IdentifierError as exc:
        err.print(f"[red]ongeldige invoer:[/red] {exc}")
        raise typer.Exit(2) from exc
    config = {"url": url} if url else {}
    partner = Partner(
        id=partner_id,
        name=name,
        role=role,
        plateau=plateau,
        adapter=adapter,
        adapter_config=config,
        codes=tuple(code or ()),
        oin=oin,
        kbo=kbo,
    )
    hub = _open()
    try:
        hub.writer.run_sync(add_partner(partner, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    console.print(f"partner {partner_id} toegevoegd; maak een token met: knooppunt partners token {partner_id}")


@partners_app.command("token")
def partners_token(partner_id: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Maak een nieuw toegangstoken voor een partner (het oude vervalt) en druk het af."""
    hub = _open()
    token = new_token()
    try:
        hub.writer.run_sync(issue_token(partner_id, token, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    print(token)


# -- deliveries ---------------------------------------------------------------------


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[str | None, typer.Option(help="pending | retrying | in_inbox | delivered | dead")] = None,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Toon afleveringen, nieuwste eerst."""
    from hub.store.tables import deliveries, messages

    hub = _open()
    try:
        query = (
            select(deliveries, messages.c.type, messages.c.sender)
            .join(messages, messages.c.id == deliveries.c.message_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(deliveries.c.status == status)
        with hub.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        table = Table("bericht", "type", "van", "naar", "status", "pogingen", "laatste fout")
        for r in rows:
            table.add_row(
                r["message_id"],
                r["type"],
                r["sender"],
                r["receiver"],
                r["status"],
                str(r["attempts"]),
                (r["last_error"] or "")[:60],
            )
        console.print(table)
    finally:
        hub.close_store()


@deliveries_app.command("replay")
def deliveries_replay(
    message_id: Annotated[str | None, typer.Option(help="Alleen dit bericht")] = None,
    receiver: Annotated[str | None, typer.Option(help="Alleen deze ontvanger")] = None,
    status: Annotated[str, typer.Option(help="Welke afleveringen: dead (standaard) of retrying")] = "dead",
) -> None:
    """Zet mislukte afleveringen terug in de outbox; de draaiende hub verstuurt ze opnieuw."""
    from hub.dispatch import replay_unit

    hub = _open()
    try:
        count = hub.writer.run_sync(replay_unit(actor="cli", message_id=message_id, receiver=receiver, status=status))
    finally:
        hub.close_store()
    console.print(f"{count} aflevering(en) opnieuw in de wachtrij")


# -- audit ---------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Loop de hashketen en de ondertekende controlepunten na.

    Exitcode 1 en het eerste foute record als ze gebroken is.
    """
    from hub.audit import verify
    from hub.audit.checkpoint import CheckpointSigner

    hub = _open()
    try:
        signer = CheckpointSigner.from_settings(hub.settings)
        with hub.engine.connect() as conn:
            result = verify(conn, public_key=signer.public_raw)
    finally:
        hub.close_store()
    if result.ok:
        console.print(f"[green]auditketen in orde[/green]: {result.summary()}")
        return
    err.print(f"[red]auditketen gebroken[/red] bij record {result.first_bad_seq}: {result.summary()}")
    raise typer.Exit(result.exit_code or 1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Onderteken nu een controlepunt (grootte en Merkle-wortel van het log) en druk het af."""
    from hub.audit.checkpoint import CheckpointSigner, checkpoint_unit

    hub = _open()
    try:
        checkpoint = hub.writer.run_sync(checkpoint_unit(CheckpointSigner.from_settings(hub.settings)))
    finally:
        hub.close_store()
    print(checkpoint.note)


@audit_app.command("export")
def audit_export(
    first: Annotated[int, typer.Option("--from", help="Eerste volgnummer")],
    last: Annotated[int, typer.Option("--to", help="Laatste volgnummer")],
    output: Annotated[str, typer.Option("--output", "-o", help="Bestand (standaard: stdout)")] = "-",
) -> None:
    """Exporteer een reeks records met inclusie- en consistentiebewijzen (offline te controleren met
    tools/verify_audit_export.py)."""
    from hub.audit.checkpoint import CheckpointSigner
    from hub.audit.export import export_json

    hub = _open()
    try:
        with hub.engine.connect() as conn:
            data = export_json(conn, first, last, CheckpointSigner.from_settings(hub.settings))
    finally:
        hub.close_store()
    if output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(output, "wb") as fh:
            fh.write(data)
        console.print(f"{len(data)} bytes geschreven naar {output}")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Toon alleen wat vernietigd zou worden")] = False,
) -> None:
    """Vernietig payloads voorbij de bewaartermijn van hun protocol (crypto-shredding: de sleutel gaat weg);
    de auditketen blijft controleerbaar; geaudit als 'purged'."""
    from hub.audit.retention import plan_purge, purge_unit, retention_of

    hub = _open()
    try:
        days = retention_of(hub.protocols.all())
        if dry_run:
            with hub.engine.connect() as conn:
                items = plan_purge(conn, days)
        else:
            items = hub.writer.run_sync(purge_unit(days))
    finally:
        hub.close_store()
    for item in items:
        console.print(item.as_json())
    console.print(f"{len(items)} sleutel(s) {'te vernietigen' if dry_run else 'vernietigd'}")


@dpo_app.command("add")
def dpo_add(
    dpo_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str, typer.Option(help="Naam van de functionaris")],
    organisation: Annotated[str, typer.Option(help="Organisatie")],
) -> None:
    """Maak een DPO-account en druk zijn toegangstoken af (alleen voor de audit-API)."""
    from hub.dpo import add_dpo_unit, new_dpo_token

    token = new_dpo_token()
    hub = _open()
    try:
        hub.writer.run_sync(add_dpo_unit(dpo_id, name, organisation, token, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    print(token)


@dpo_app.command("disable")
def dpo_disable(dpo_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Trek een DPO-account in."""
    from hub.dpo import disable_dpo_unit

    hub = _open()
    try:
        hub.writer.run_sync(disable_dpo_unit(dpo_id, actor="cli"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    finally:
        hub.close_store()
    console.print(f"DPO {dpo_id} ingetrokken")


def main() -> None:
    try:
        app()
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
