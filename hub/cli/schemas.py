"""`knooppunt schemas`: list, show, validate and convert messages of the information model.

Register in the main CLI with ``app.add_typer(schemas.app, name="schemas")``. The
schemas directory comes from ``--schemas`` or ``KNOOPPUNT_SCHEMAS_DIR`` (default:
the repository's ``schemas/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from lxml import etree
from rich.console import Console
from rich.table import Table

from hub import xmlsafe
from hub.errors import HubError, InvalidParam
from hub.infomodel import InfoModel, MessageType
from hub.settings import ROOT

app = typer.Typer(
    help="Het informatiemodel: berichttypes tonen, berichten valideren en omzetten.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

_MAX_BYTES = 10 * 1024 * 1024

SchemasOption = Annotated[
    Path,
    typer.Option("--schemas", envvar="KNOOPPUNT_SCHEMAS_DIR", help="Map met de schema's", show_default=True),
]


def _model(schemas: Path) -> InfoModel:
    try:
        return InfoModel(schemas)
    except HubError as exc:
        err.print(f"[red]schema's niet geladen:[/red] {exc.detail}")
        raise typer.Exit(2) from exc


def _default_schemas() -> Path:
    return ROOT / "schemas"


@app.command("list")
def list_types(schemas: SchemasOption = _default_schemas()) -> None:  # noqa: B008 - typer reads defaults
    """Alle berichttypes met versies, verzenders en ontvangers."""
    model = _model(schemas)
    table = Table(title="Berichttypes")
    for column in ("type", "versie", "titel", "verzenders", "ontvangers", "onderwerp", "downgrade", "deprecation"):
        table.add_column(column)
    for t in model.types():
        table.add_row(
            t.name,
            t.version,
            t.title,
            ", ".join(t.senders),
            ", ".join(t.receivers),
            t.subject_field or "(geaggregeerd)",
            t.downgrade,
            t.deprecation.isoformat() if t.deprecation else "-",
        )
    console.print(table)


@app.command()
def show(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="Berichttype, bv. pip")],
    version: Annotated[str | None, typer.Option("--version", "-v", help="Versie (standaard: de nieuwste)")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="fields, xsd of json")] = "fields",
    schemas: SchemasOption = _default_schemas(),  # noqa: B008
) -> None:
    """Eén berichttype: velden (standaard), de XSD of het JSON Schema."""
    model = _model(schemas)
    mtype = _resolve(model, type_name, version)
    if fmt == "xsd":
        typer.echo(model.standalone_xsd(mtype).decode())
        return
    if fmt == "json":
        typer.echo(json.dumps(model.json_schema(mtype), indent=2, ensure_ascii=False))
        return
    if fmt != "fields":
        err.print(f"[red]onbekend formaat {fmt!r}:[/red] fields, xsd of json")
        raise typer.Exit(2)
    console.print(f"[bold]{mtype.name} {mtype.version}[/bold] — {mtype.title}")
    console.print(f"element {mtype.element} in {mtype.namespace}")
    console.print(f"verzenders: {', '.join(mtype.senders)}; ontvangers: {', '.join(mtype.receivers)}")
    console.print(f"onderwerp: {mtype.subject_field or '(geaggregeerd)'}; downgrade: {mtype.downgrade}")
    table = Table(show_header=True)
    table.add_column("veld")
    table.add_column("aantal")
    for path, (low, high) in model.element_paths(mtype).items():
        table.add_row(path, f"{low}..{'n' if high is None else high}" if high != 1 else ("1" if low else "0..1"))
    console.print(table)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Bericht als XML of JSON")],
    type_name: Annotated[
        str | None, typer.Option("--type", "-t", help="Berichttype (XML: afgeleid van het element)")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="Versie (standaard: de nieuwste)")] = None,
    allow_test_numbers: Annotated[bool, typer.Option(help="MAGDA-testpersonen aanvaarden")] = False,
    schemas: SchemasOption = _default_schemas(),  # noqa: B008
) -> None:
    """Valideer een payload (XML of JSON) of een envelop; toont elke fout, exit 1 als ongeldig."""
    model = _model(schemas)
    body = file.read_bytes()
    try:
        if _is_json(file, body):
            data = _load_json(body)
            mtype, payload = _json_target(model, data, type_name, version, file)
            model.validate_json(mtype, payload, allow_test_numbers=allow_test_numbers)
        else:
            mtype, element = _xml_target(model, body, type_name, version)
            model.validate_payload(mtype, element, allow_test_numbers=allow_test_numbers)
    except HubError as exc:
        _print_errors(exc.detail, exc.invalid_params)
        raise typer.Exit(1) from exc
    console.print(f"[green]geldig[/green] {mtype.name} {mtype.version}")


@app.command()
def convert(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Payload als XML of JSON")],
    type_name: Annotated[
        str | None, typer.Option("--type", "-t", help="Berichttype (XML: afgeleid van het element)")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="Versie (standaard: de nieuwste)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Schrijf naar dit bestand")] = None,
    schemas: SchemasOption = _default_schemas(),  # noqa: B008
) -> None:
    """Zet een payload om: XML naar JSON of JSON naar XML (via dezelfde XSD)."""
    model = _model(schemas)
    body = file.read_bytes()
    try:
        if _is_json(file, body):
            data = _load_json(body)
            mtype, payload = _json_target(model, data, type_name, version, file)
            element = model.json_to_xml(mtype, payload)
            etree.indent(element, space="  ")
            text = etree.tostring(element, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()
        else:
            mtype, element = _xml_target(model, body, type_name, version)
            text = json.dumps(model.xml_to_json(mtype, element), indent=2, ensure_ascii=False) + "\n"
    except HubError as exc:
        _print_errors(exc.detail, exc.invalid_params)
        raise typer.Exit(1) from exc
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"geschreven: {output}")


@app.command()
def docs(
    check: Annotated[bool, typer.Option("--check", help="Alleen controleren; exit 1 als iets afwijkt")] = False,
    schemas: SchemasOption = _default_schemas(),  # noqa: B008
    doc: Annotated[Path, typer.Option(help="Het gegenereerde document")] = ROOT / "docs" / "information-model.md",
) -> None:
    """Genereer docs/information-model.md en de JSON-vormen van de voorbeelden uit de schema's."""
    from hub.infomodel_docs import main as docs_main

    code = docs_main(["--schemas", str(schemas), "--doc", str(doc), "--check" if check else "--write"])
    if code:
        raise typer.Exit(code)


# -- helpers --------------------------------------------------------------------


def _resolve(model: InfoModel, name: str, version: str | None) -> MessageType:
    try:
        versions = model.versions_of(name)
        return model.get(name, version or (versions[-1] if versions else "1.0"))
    except HubError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from exc


def _is_json(file: Path, body: bytes) -> bool:
    return file.suffix.lower() == ".json" or body.lstrip()[:1] in (b"{", b"[")


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        err.print(f"[red]JSON is niet leesbaar:[/red] {exc}")
        raise typer.Exit(1) from exc


def _json_target(
    model: InfoModel, data: Any, type_name: str | None, version: str | None, file: Path
) -> tuple[MessageType, Any]:
    """A bare payload needs --type; an envelope in JSON names its own type and version."""
    if isinstance(data, dict) and "payload" in data and "type" in data:
        return _resolve(model, str(data["type"]), version or str(data.get("version") or "") or None), data["payload"]
    if type_name is None:
        guessed = file.parent.name if model.versions_of(file.parent.name) else None
        if guessed is None:
            err.print("[red]geef het berichttype met --type[/red] (een JSON-payload noemt zijn type niet)")
            raise typer.Exit(2)
        type_name = guessed
    return _resolve(model, type_name, version), data


def _xml_target(
    model: InfoModel, body: bytes, type_name: str | None, version: str | None
) -> tuple[MessageType, etree._Element]:
    root = xmlsafe.parse(body, max_bytes=_MAX_BYTES)
    if root.tag == "{urn:knooppunt:envelope:1}Envelope":
        model.validate_envelope(root)
        header = root.find("{urn:knooppunt:envelope:1}header")
        payload = root.find("{urn:knooppunt:envelope:1}payload")
        if header is None or payload is None or not len(payload):
            err.print("[red]envelop zonder header of payload[/red]")
            raise typer.Exit(1)
        type_name = type_name or header.findtext("{urn:knooppunt:envelope:1}type")
        version = version or header.findtext("{urn:knooppunt:envelope:1}version")
        root = payload[0]
    if type_name is None:
        matches = [t for t in model.types() if t.qname == root.tag]
        if not matches:
            err.print(f"[red]geen berichttype met element {root.tag}[/red]")
            raise typer.Exit(2)
        type_name = matches[0].name
    return _resolve(model, type_name, version), root


def _print_errors(detail: str, params: list[InvalidParam]) -> None:
    err.print(f"[red]ongeldig:[/red] {detail}")
    for p in params:
        err.print(f"  {p.name}  [{p.code}]  {p.reason}", markup=False, highlight=False)
