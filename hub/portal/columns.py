"""CSV columns per message type, derived from the information model's XSD.

One column per leaf field, named by its path with dots
(``persoon.identificatie.bsn``); a repeating field gets numbered columns
(``persoon.nationaliteit.1``, ``opleiding.2.omschrijving``) up to
:data:`MAX_REPEATS` (more repeats: send an XML batch). Only the fields the
sender's protocol allows are offered. A row of cells becomes the payload
element in XSD order, so the same validator as the API judges it, and an
XPath in an error maps back to the column it came from.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from lxml import etree

from hub import xmlsafe
from hub.demo import make_bsn, make_insz
from hub.infomodel import InfoModel, MessageType

MAX_REPEATS = 3

_DUTCH_DATE = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
_EXACT_DIGITS = re.compile(r"^\\d\{(\d+)\}$")
_TRUE = {"ja", "j", "yes", "true", "1", "waar", "x"}
_FALSE = {"nee", "n", "no", "false", "0", "onwaar"}


@dataclass(frozen=True)
class Column:
    """One CSV column: where its value goes in the payload and what it may hold."""

    name: str
    steps: tuple[tuple[str, int], ...]
    required: bool
    base: str
    enumeration: tuple[str, ...]
    patterns: tuple[str, ...]
    documentation: str
    max_length: int | None

    @property
    def xpath(self) -> str:
        return "/".join(name for name, _ in self.steps)

    def hint(self) -> str:
        """What a valid value looks like, in plain Dutch."""
        if self.enumeration:
            return "een van: " + ", ".join(self.enumeration)
        if self.base == "boolean":
            return "ja of nee"
        if self.base == "date":
            return "datum JJJJ-MM-DD (of DD-MM-JJJJ)"
        if self.base in ("integer", "nonNegativeInteger", "positiveInteger", "int"):
            return "een geheel getal"
        if self.documentation:
            return self.documentation
        if self.max_length:
            return f"tekst, hoogstens {self.max_length} tekens"
        return "tekst"


def _simple_facts(xsd_type: Any) -> tuple[str, tuple[str, ...], tuple[str, ...], str, int | None]:
    base = xsd_type.primitive_type.local_name if getattr(xsd_type, "primitive_type", None) is not None else "string"
    # integer types keep their own name: xs:nonNegativeInteger is "decimal" at the root
    for t in (xsd_type, getattr(xsd_type, "base_type", None)):
        name = getattr(t, "local_name", None) or ""
        if name.endswith(("Integer", "integer", "int")) and getattr(t, "is_global", lambda: True)():
            base = name
            break
    enumeration = tuple(str(v) for v in (xsd_type.enumeration or ()))
    patterns: list[str] = []
    t = xsd_type
    while t is not None and hasattr(t, "patterns"):
        if t.patterns is not None:
            patterns.extend(str(p) for p in t.patterns.regexps)
        t = getattr(t, "base_type", None)
    doc = ""
    annotation = getattr(xsd_type, "annotation", None)
    if annotation is not None and annotation.documentation:
        doc = " ".join((d.text or "").strip() for d in annotation.documentation).strip()
    max_length = getattr(xsd_type, "max_length", None)
    return base, enumeration, tuple(patterns), doc, max_length


def _allowed(path: str, fields: tuple[str, ...] | None) -> bool:
    if fields is None:
        return True
    return any(path == f or path.startswith(f + "/") for f in fields)


def columns_for(infomodel: InfoModel, mtype: MessageType, fields: tuple[str, ...] | None = None) -> list[Column]:
    """The CSV columns of a message type, in XSD order, limited to the protocol's ``fields``."""
    schema = infomodel.release_of(mtype).conversion_schema()
    root = schema.elements[mtype.element]
    out: list[Column] = []

    def walk(element: Any, steps: tuple[tuple[str, int], ...], required: bool) -> None:
        for child in element.type.content.iter_elements():
            in_choice = getattr(child.parent, "model", "sequence") == "choice"
            child_required = required and child.min_occurs > 0 and not in_choice
            max_occurs = child.max_occurs if child.max_occurs is not None else MAX_REPEATS
            repeats = min(max_occurs, MAX_REPEATS)
            for i in range(1, repeats + 1):
                step = (child.local_name, i if max_occurs > 1 else 0)
                path = (*steps, step)
                xpath = "/".join(n for n, _ in path)
                if not _allowed(xpath, fields) and not any(f.startswith(xpath + "/") for f in fields or ()):
                    continue
                is_leaf = child.type.is_simple() or child.type.has_simple_content()
                if is_leaf:
                    if not _allowed(xpath, fields):
                        continue
                    base, enum, patterns, doc, max_length = _simple_facts(child.type)
                    out.append(
                        Column(
                            name=".".join(n if k == 0 else f"{n}.{k}" for n, k in path),
                            steps=path,
                            required=child_required and i == 1,
                            base=base,
                            enumeration=enum,
                            patterns=patterns,
                            documentation=doc,
                            max_length=max_length,
                        )
                    )
                else:
                    walk(child, path, child_required and i == 1)

    walk(root, (), True)
    return out


# -- a row of cells -> the payload element ---------------------------------------------


def normalise(column: Column, raw: str) -> str:
    """Undo what spreadsheets do to values: Dutch dates, ja/nee, dropped leading zeros."""
    value = raw.strip()
    if not value:
        return value
    if column.base == "boolean":
        low = value.lower()
        if low in _TRUE:
            return "true"
        if low in _FALSE:
            return "false"
    if column.base == "date" or any(p.startswith(r"\d{4}-") for p in column.patterns):
        m = _DUTCH_DATE.match(value)
        if m:
            return f"{m.group(3)}-{int(m.group(2)):02d}-{int(m.group(1)):02d}"
    for pattern in column.patterns:
        exact = _EXACT_DIGITS.match(pattern)
        if exact and value.isdigit() and len(value) < int(exact.group(1)):
            return value.zfill(int(exact.group(1)))
    return value


def build_payload(mtype: MessageType, columns: list[Column], cells: dict[str, str]) -> etree._Element:
    """The payload element of one row; empty cells are left out. Columns are in XSD order."""
    ns = mtype.namespace
    root = etree.Element("{%s}%s" % (ns, mtype.element), nsmap={None: ns})  # type: ignore[dict-item]
    made: dict[tuple[tuple[str, int], ...], etree._Element] = {(): root}
    for column in columns:
        value = normalise(column, cells.get(column.name, ""))
        if not value:
            continue
        parent = root
        for depth in range(1, len(column.steps) + 1):
            key = column.steps[:depth]
            node = made.get(key)
            if node is None:
                node = etree.SubElement(parent, "{%s}%s" % (ns, key[-1][0]))
                made[key] = node
            parent = node
        parent.text = value
    return root


_XPATH_STEP = re.compile(r"^(?:[\w.\-]+:)?([\w.\-]+)(?:\[(\d+)\])?$")


def column_of(xpath: str, columns: list[Column]) -> str:
    """'/Klantprofiel/opleiding[2]/land' -> 'opleiding.2.land' (the column the value came from)."""
    steps = [s for s in xpath.split("/") if s][1:]
    parts: list[str] = []
    by_name = {c.name for c in columns}
    for step in steps:
        m = _XPATH_STEP.match(step)
        if m is None:
            return xpath
        parts.append(m.group(1))
        candidate = ".".join(parts)
        if m.group(2) or (candidate + ".1" in by_name or any(n.startswith(candidate + ".1.") for n in by_name)):
            parts.append(m.group(2) or "1")
    return ".".join(parts)


# -- templates and examples -----------------------------------------------------------------


def _from_pattern(pattern: str) -> str:
    """The first string a (simple) XSD pattern accepts: enough for \\d, classes, groups, |, ?, {n,m}."""
    pos = 0

    def alternation() -> str:
        nonlocal pos
        first = sequence()
        while pos < len(pattern) and pattern[pos] == "|":
            pos += 1
            sequence()
        return first

    def atom() -> str:
        nonlocal pos
        ch = pattern[pos]
        if ch == "(":
            pos += 1
            out = alternation()
            pos += 1  # ')'
            return out
        if ch == "[":
            end = pattern.index("]", pos)
            body = pattern[pos + 1 : end]
            pos = end + 1
            return body[0] if body[0] != "\\" else "1"
        if ch == "\\":
            pos += 2
            return {"d": "1", "s": " ", "w": "a"}.get(pattern[pos - 1], pattern[pos - 1])
        pos += 1
        return ch if ch != "." else "a"

    def sequence() -> str:
        nonlocal pos
        out = ""
        while pos < len(pattern) and pattern[pos] not in "|)":
            piece = atom()
            if pos < len(pattern) and pattern[pos] in "?*+{":
                q = pattern[pos]
                if q == "{":
                    end = pattern.index("}", pos)
                    low = int(pattern[pos + 1 : end].split(",", maxsplit=1)[0])
                    pos = end + 1
                    piece *= low
                else:
                    pos += 1
                    piece = piece if q == "+" else ""
            out += piece
        return out

    return alternation()


def example_value(column: Column, rng: random.Random, codes: tuple[str, ...]) -> str:
    leaf = column.steps[-1][0]
    if leaf == "bsn":
        return make_bsn(rng)
    if leaf == "insz":
        return make_insz(rng)
    if column.enumeration:
        return column.enumeration[0]
    if column.base == "date":
        return date.today().isoformat()
    if column.base == "boolean":
        return "ja"
    if "Integer" in column.base or column.base in ("integer", "int"):
        return "1"
    if column.patterns:
        if leaf.lower() in ("gemeentecode", "niscode"):
            for code in codes:
                if all(re.fullmatch(p, code) for p in column.patterns):
                    return code
        if column.patterns == ("[A-Z]{2}",):
            return "NL" if any(len(c) == 4 for c in codes) else "BE"
        if column.patterns[0].startswith(r"\d{4}-"):
            return "1990-05-17"
        return _from_pattern(column.patterns[0])
    return "Voorbeeld"


def example_rows(columns: list[Column], *, codes: tuple[str, ...], count: int = 2) -> list[dict[str, str]]:
    """Example rows: every required column, plus the first of each optional one; one identifier kind only."""
    rng = random.Random(20261124)  # noqa: S311 - example data, not secrets
    dutch = any(len(c) == 4 for c in codes)
    kinds = {c.steps[-1][0] for c in columns} & {"bsn", "insz"}
    skip_id = ("insz" if dutch else "bsn") if len(kinds) == 2 else ""
    # the address is a choice too: fill the country's own branch only
    skip_address = "belgischAdres" if dutch else "nederlandsAdres"
    rows = []
    for _ in range(count):
        row: dict[str, str] = {}
        for column in columns:
            if column.steps[-1][0] == skip_id or any(step == skip_address for step, _ in column.steps):
                continue
            if column.required or all(k in (0, 1) for _, k in column.steps):
                row[column.name] = example_value(column, rng, codes)
        rows.append(row)
    # a domain without examples of its own (yet) gets generated rows
    return rows or example_rows(columns, codes=codes)


def _flatten(value: Any, key: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for name, inner in value.items():
            _flatten(inner, f"{key}.{name}" if key else str(name), out)
    elif isinstance(value, list):
        for i, item in enumerate(value, 1):
            _flatten(item, f"{key}.{i}", out)
    elif isinstance(value, bool):
        out[key] = "true" if value else "false"
    elif value is not None:
        out[key] = str(value)


def model_example_rows(
    model: InfoModel, mtype: MessageType, columns: list[Column], *, codes: tuple[str, ...] = ()
) -> list[dict[str, str]]:
    """Example rows from the information model's own valid examples (so every choice and business
    rule holds), cut to the template's columns, with the organisation's own code filled in.
    A type without examples in ``schemas/`` gets rows generated from its columns."""
    names = {c.name for c in columns}
    rows = []
    for example in model.examples(mtype):
        if not example.valid:
            continue
        flat: dict[str, str] = {}
        payload = etree.parse(str(example.path), parser=xmlsafe.parser()).getroot()
        _flatten(model.xml_to_json(mtype, payload), "", flat)
        row = {k: v for k, v in flat.items() if k in names}
        for name in ("gemeentecode", "nisCode"):
            own = [c for c in codes if len(c) == len(row.get(name, ""))]
            if name in row and own:
                row[name] = own[0]
        rows.append(row)
    # a domain without examples of its own (yet) gets generated rows
    return rows or example_rows(columns, codes=codes)
