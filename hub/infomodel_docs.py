"""Generates ``docs/information-model.md`` (and the JSON forms of the examples) from ``schemas/``.

Usage::

    python -m hub.infomodel_docs --write    # regenerate the doc and examples/*/valid-*.json
    python -m hub.infomodel_docs --check    # exit 1 when either drifted from the schemas

Nothing in the document is written by hand: types, fields with cardinality and
type, code lists and the partner roles come from the XSDs and catalog.yaml files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from hub.infomodel import InfoModel
from hub.jsonschema_gen import XSD_NS
from hub.xmlsafe import parser as safe_parser

DOC_PATH = Path("docs") / "information-model.md"

_POLICY = """\
## Versies

- Eén namespace per domein en hoofdversie: `urn:knooppunt:inburgering:1`. Een nieuwe
  hoofdversie (`…:2`) is een nieuw model; partners stappen er bewust op over.
- Een minor-versie (1.1) voegt alleen optionele elementen en codelijsten toe: elk geldig
  1.0-bericht is een geldig 1.1-bericht, zodat geen enkele verzender hoeft te wijzigen.
  De hub weigert bij het opstarten een minor-versie die velden verwijdert, verplicht maakt
  of hun maximum verlaagt (`InfoModel.compatibility_problems`).
- Een minor-release bevat alleen de types die wijzigen; andere types blijven op hun versie.
- Een ontvanger die nog op 1.0 zit, krijgt een 1.1-bericht volgens het beleid van het type
  (`downgrade`): **drop** verwijdert de elementen die 1.1 toevoegde; **refuse** weigert het
  bericht wanneer het zulke elementen gebruikt, omdat weglaten de betekenis zou veranderen
  (`InfoModel.convert_version`).
- Elke versie van een type heeft een `deprecation`-datum waarna ze niet meer aanvaard wordt
  (leeg: geen opvolger, geen einddatum).
- De JSON-vorm en het JSON Schema worden uit dezelfde XSD afgeleid; een JSON- en een
  XML-bericht met dezelfde fout geven hetzelfde veld en dezelfde regel.

## Fouten

Elke fout noemt het veld (XPath voor XML, JSON pointer voor JSON), de regel (`code`) en
wat er mis is (`reason`); alle fouten komen tegelijk. Regels uit de XSD: `required`,
`unexpected`, `maxOccurs`, `choice`, `order` (alleen XML), `enumeration`, `pattern`,
`minLength`, `maxLength`, `minInclusive`, `maxInclusive`, `datatype`, `fixed`; daarnaast
`identifier` (controlegetal van INSZ, BSN, KBO, OIN) en de id van een bedrijfsregel
hieronder. Bedrijfsregels worden pas getoetst als het bericht aan de XSD voldoet.
"""


def _local(name: str | None) -> str:
    return (name or "").rsplit("}", 1)[-1]


def _cardinality(low: int, high: int | None) -> str:
    if high == 1:
        return "1" if low == 1 else "0..1"
    return f"{low}..{'n' if high is None else high}"


def _type_label(xsd_type: Any) -> str:
    if xsd_type.name and xsd_type.is_global():
        prefix = "xs:" if str(xsd_type.name).startswith("{%s}" % XSD_NS) else ""
        return f"{prefix}{_local(xsd_type.name)}"
    if not xsd_type.is_simple():
        return "(groep)"
    base = getattr(xsd_type, "base_type", None)
    parts = [_type_label(base) if base is not None else "xs:string"]
    if xsd_type.enumeration:
        parts.append("één van " + ", ".join(f"`{v}`" for v in xsd_type.enumeration))
    if xsd_type.patterns:
        parts.append("patroon `" + "|".join(xsd_type.patterns.regexps).replace("|", "\\|") + "`")
    for qname, facet in xsd_type.facets.items():
        key = _local(qname)
        if key in {"minLength", "maxLength", "minInclusive", "maxInclusive", "length"}:
            parts.append(f"{key} {facet.value}")
    return ", ".join(parts)


def _documentation(component: Any) -> str:
    annotation = getattr(component, "annotation", None)
    if annotation is None:
        return ""
    return " ".join(str(d.text or "").strip() for d in annotation.documentation).strip()


def _fields(xsd_type: Any, prefix: str, choice: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(path, cardinality, type, note) for every element under a complex type, in document order."""
    if xsd_type.is_simple():
        return
    yield from _group_fields(xsd_type.content, prefix, optional=False)


def _group_fields(group: Any, prefix: str, *, optional: bool) -> Iterator[tuple[str, str, str, str]]:
    names = [_local(p.name) for p in group if not hasattr(p, "model")]
    for particle in group:
        if hasattr(particle, "model"):
            yield from _group_fields(particle, prefix, optional=optional or particle.min_occurs == 0)
            continue
        low = 0 if optional or (group.model == "choice" and group.min_occurs == 0) else particle.min_occurs
        path = f"{prefix}{_local(particle.name)}"
        notes = []
        if group.model == "choice":
            notes.append("keuze: " + " \\| ".join(names))
        doc = _documentation(particle)
        if doc:
            notes.append(doc)
        if particle.fixed is not None:
            notes.append(f"vast: `{particle.fixed}`")
        yield path, _cardinality(low, particle.max_occurs), _type_label(particle.type), "; ".join(notes)
        if not particle.type.is_simple():
            yield from _fields(particle.type, path + "/")


def _file_comment(path: Path) -> str:
    root = etree.parse(
        str(path), parser=etree.XMLParser(remove_comments=False, resolve_entities=False, no_network=True)
    )
    for node in root.getroot().itersiblings(preceding=True):
        if isinstance(node, etree._Comment):
            return " ".join((node.text or "").split())
    return ""


def _code_lists(model: InfoModel) -> dict[str, tuple[str, list[str], list[str]]]:
    """name -> (documentation, values, versions) for every named enumeration."""
    out: dict[str, tuple[str, list[str], list[str]]] = {}
    for mtype in model.types():
        schema = model.release_of(mtype).conversion_schema()
        for qname, xsd_type in schema.types.items():
            enumeration: Any = getattr(xsd_type, "enumeration", None) if xsd_type.is_simple() else None
            if not enumeration:
                continue
            name = _local(qname)
            values = [str(v) for v in enumeration]
            doc, known, versions = out.get(name, (_documentation(xsd_type), values, []))
            if known != values:
                name = f"{name} ({mtype.version})"
            if mtype.version not in versions:
                versions = sorted({*versions, mtype.version})
            out[name] = (doc, values, versions)
    return dict(sorted(out.items()))


def render(model: InfoModel) -> str:
    """The whole document, as Markdown."""
    lines = [
        "# Informatiemodel inburgering",
        "",
        "<!-- Generated by `python -m hub.infomodel_docs --write` from schemas/. Do not edit by hand:"
        " tests/infomodel/test_docs.py fails when this file drifts from the schemas. -->",
        "",
        "Het gedeelde informatiemodel van de inburgeringsketen in Vlaanderen en Nederland. Elk"
        " berichttype heeft een XSD (de bron), een daaruit afgeleide JSON-vorm en JSON Schema, en"
        " geldige en ongeldige voorbeelden in `schemas/<domein>/<versie>/examples/`. Partners halen"
        " de schema's op via `GET /v1/schemas`.",
        "",
        "## Berichttypes",
        "",
        "| type | versie | titel | fase | verzenders | ontvangers | onderwerp | downgrade | deprecation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in model.types():
        subject = f"`{t.subject_field}`" if t.subject_field else "geen (geaggregeerd)"
        lines.append(
            f"| [{t.name}](#{t.name}-{t.version.replace('.', '')}) | {t.version} | {t.title} | {t.flow} | "
            f"{', '.join(t.senders)} | {', '.join(t.receivers)} | {subject} | {t.downgrade} | "
            f"{t.deprecation.isoformat() if t.deprecation else '—'} |"
        )
    lines += ["", _POLICY]
    for t in model.types():
        root = model.release_of(t).conversion_schema().elements[t.element]
        lines += [
            f"## {t.name} {t.version}",
            "",
            f"**{t.title}** — element `{t.element}` in `{t.namespace}`, bestand "
            f"`schemas/{t.file.parent.parent.name}/{t.version}/{t.file.name}`.",
            "",
        ]
        comment = _file_comment(t.file)
        if comment:
            lines += [comment, ""]
        lines += [
            f"- verzenders: {', '.join(t.senders)}; ontvangers: {', '.join(t.receivers)}",
            f"- onderwerp (betrokkene): {'`' + t.subject_field + '`' if t.subject_field else 'geen: geaggregeerd'}",
            f"- ontvanger op een oudere versie: {t.downgrade}",
            "",
            "| veld | aantal | type | toelichting |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{p}` | {c} | {ty} | {n} |" for p, c, ty, n in _fields(root.type, "")]
        lines.append("")
        if t.rules:
            lines += ["Regels (fouten met de regel-id als code):", ""]
            for rule in t.rules:
                where = f" in `{rule.context}`" if rule.context != "." else ""
                lines.append(f"- `{rule.id}`{where}, veld `{rule.field_name or '.'}`: {rule.message}")
            lines.append("")
    lines += ["## Codelijsten", ""]
    for name, (doc, values, versions) in _code_lists(model).items():
        lines.append(f"### {name}")
        lines.append("")
        if doc:
            lines += [doc, ""]
        lines += [f"Waarden: {', '.join(f'`{v}`' for v in values)} (versie {', '.join(versions)})", ""]
    return "\n".join(lines).rstrip() + "\n"


def example_jsons(model: InfoModel) -> dict[Path, str]:
    """The JSON form of every valid example, keyed by the .json path beside it."""
    out: dict[Path, str] = {}
    for mtype in model.types():
        folder = mtype.file.parent / "examples" / mtype.name
        for xml in sorted(folder.glob("valid-*.xml")):
            element = etree.parse(str(xml), parser=safe_parser()).getroot()
            data = model.xml_to_json(mtype, element)
            out[xml.with_suffix(".json")] = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schemas", type=Path, default=Path("schemas"))
    parser.add_argument("--doc", type=Path, default=DOC_PATH)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    model = InfoModel(args.schemas)
    wanted = {args.doc: render(model), **example_jsons(model)}
    drifted = [p for p, text in wanted.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in drifted:
            sys.stderr.write(f"{path} drifted from the schemas: run python -m hub.infomodel_docs --write\n")
        return 1 if drifted else 0
    for path in drifted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path], encoding="utf-8")
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
