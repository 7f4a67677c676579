"""Compiled converters between a message type's JSON form and its XML element.

The JSON form of a payload is what xmlschema's default converter makes of the
XML (see :mod:`hub.jsonschema_gen`). xmlschema's ``encode`` and ``decode`` walk
the schema's components for every message in pure Python, validating as they
go; on the ingest path that was three quarters of a JSON message's CPU. A
:class:`Converter` is derived once per message type from the same compiled XSD
components and at run time only walks the data:

    JSON -> XML   the lxml tree is built directly, children in XSD sequence
                  order (as xmlschema's ``UnorderedConverter`` orders them)
    XML -> JSON   one key per child element (local name), a list for every
                  element that may occur more than once, booleans and
                  integers as JSON values, dates as strings

What it handles is what ``schemas/`` uses: sequences (nested ones flattened),
choices of single elements, minOccurs/maxOccurs, simple types restricted from
xs:string, xs:boolean, xs:date and the integer types, with their facets, and
``fixed``. Anything else in a type (attributes, wildcards, mixed or simple
content, xs:all, repeated groups, other built-in types, defaults, nillable,
substitution groups, other namespaces) raises :class:`Unsupported` when the
type is compiled, and the caller keeps xmlschema for that type.

At run time the converter proves, for every value, that xmlschema would give
the same result without reporting an error: it calls the type's own facet
validators and pattern facets (the same objects xmlschema calls) and accepts
only the lexical forms it is sure of. Any other value raises :class:`Fallback`
and the caller converts that message with xmlschema. So the output is always
exactly what the xmlschema path produces; ``tests/infomodel/test_convert.py``
checks that against xmlschema for every example and for generated instances.

The fast JSON check (:func:`compile_json_check`) is the type's generated JSON
Schema compiled with fastjsonschema, with jsonschema's own format checker for
every ``format`` the schema uses, so formats are judged by the same code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import fastjsonschema
import jsonschema
from lxml import etree
from xmlschema import XMLSchemaValidationError
from xmlschema.validators import XsdAtomicRestriction, XsdElement

XSD_NS = "http://www.w3.org/2001/XMLSchema"

_INTEGERS = frozenset(
    {
        "integer",
        "nonNegativeInteger",
        "positiveInteger",
        "nonPositiveInteger",
        "negativeInteger",
        "long",
        "int",
        "short",
        "byte",
        "unsignedLong",
        "unsignedInt",
        "unsignedShort",
        "unsignedByte",
    }
)
_KINDS = {"string": "string", "boolean": "boolean", "date": "date", **dict.fromkeys(_INTEGERS, "integer")}

# characters an XML 1.0 document cannot carry; the xmlschema path fails on them when it
# re-parses what it serialised, so such a value is left to it
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DIGITS = re.compile(r"[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_SIMPLE_ERRORS = (XMLSchemaValidationError, ValueError, TypeError, ArithmeticError)


class Unsupported(Exception):
    """A type uses a construct the compiler does not handle; use xmlschema for it."""


class Fallback(Exception):
    """One value is outside what the converter is sure of; convert this message with xmlschema."""


def _local(name: str | None) -> str:
    return (name or "").rsplit("}", 1)[-1]


def _is_builtin(xsd_type: Any) -> bool:
    return bool(xsd_type.name) and str(xsd_type.name).startswith("{%s}" % XSD_NS)


@dataclass(slots=True)
class _Simple:
    """A simple type: its lexical kind and xmlschema's own checks of a value."""

    kind: str  # string | boolean | integer | date
    checks: tuple[Callable[[Any], Any], ...]  # facet validators, on the Python value
    patterns: tuple[Callable[[str], Any], ...]  # pattern facets, on the text
    to_python: Callable[[str], Any]  # the built-in's parser (dates)
    fixed: str | None

    def encode(self, value: Any) -> str:
        """The element text xmlschema writes for a JSON value (an XML parser's view of it)."""
        kind = self.kind
        python: Any
        if kind == "string":
            if type(value) is not str or _NOT_XML.search(value):
                raise Fallback("string value")
            text = python = value
        elif kind == "boolean":
            if type(value) is not bool:
                raise Fallback("boolean value")
            python, text = value, ("true" if value else "false")
        elif kind == "integer":
            if type(value) is not int:
                raise Fallback("integer value")
            python, text = value, str(value)
        else:
            if type(value) is not str or not _DATE.fullmatch(value):
                raise Fallback("date value")
            text = value
            python = self.to_python(value)
        for check in self.checks:
            check(python)
        for pattern in self.patterns:
            pattern(text)
        if self.fixed is not None and text != self.fixed:
            raise Fallback("fixed value")
        if "\r" in text:
            # what the xmlschema path serialised is parsed again, and XML parsers normalise line ends
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    def decode(self, text: str | None) -> Any:
        """The JSON value xmlschema decodes from an element's text (validation skipped)."""
        if not text:
            raise Fallback("empty element")
        kind = self.kind
        if kind == "string":
            return text
        if kind == "boolean":
            found = _BOOLEANS.get(text)
            if found is None:
                raise Fallback("boolean text")
            return found
        if kind == "integer":
            if not _DIGITS.fullmatch(text):
                raise Fallback("integer text")
            return int(text)
        if not _DATE.fullmatch(text):
            raise Fallback("date text")
        self.to_python(text)
        return text


@dataclass(slots=True)
class _Child:
    """One element particle of a content model, flattened."""

    key: str  # the JSON key: the element's local name
    tag: str  # Clark notation
    index: int  # position in the flattened sequence
    many: bool  # a JSON list (xmlschema: not is_single())
    min_occurs: int  # 0 for an alternative of a choice (the choice counts instead)
    max_occurs: int | None
    choice: int  # index of its choice group, -1 when in no choice
    simple: _Simple | None = None
    complex: _Complex | None = None


@dataclass(slots=True)
class _Complex:
    """A complex type with element-only content."""

    children: list[_Child] = field(default_factory=list)
    by_key: dict[str, _Child] = field(default_factory=dict)
    by_tag: dict[str, _Child] = field(default_factory=dict)
    choices: list[bool] = field(default_factory=list)  # per choice group: is one alternative required


def _encode_into(spec: _Complex, data: Any, parent: etree._Element) -> None:
    if type(data) is not dict:
        raise Fallback("object value")
    by_key = spec.by_key
    for key in data:
        if key not in by_key:
            raise Fallback("unknown key")
    chosen = [0] * len(spec.choices) if spec.choices else None
    sub = etree.SubElement
    for child in spec.children:
        if child.key not in data:
            if child.min_occurs:
                raise Fallback("required element missing")
            continue
        value = data[child.key]
        if child.many:
            if type(value) is not list or not value:
                # xmlschema takes an empty list for one (wrong) value, not for zero elements
                raise Fallback("list value")
            items: list[Any] = value
            count = len(items)
            if count < child.min_occurs or (child.max_occurs is not None and count > child.max_occurs):
                raise Fallback("occurrences")
        else:
            items = [value]
            count = 1
        if chosen is not None and child.choice >= 0 and count:
            chosen[child.choice] += 1
        simple = child.simple
        if simple is not None:
            for item in items:
                text = simple.encode(item)
                node = sub(parent, child.tag)
                if text:
                    node.text = text
        else:
            nested = child.complex
            if nested is None:  # pragma: no cover -- every child is compiled as one or the other
                raise Fallback("uncompiled child")
            for item in items:
                _encode_into(nested, item, sub(parent, child.tag))
    if chosen is not None:
        for count, required in zip(chosen, spec.choices, strict=True):
            if count > 1 or (required and not count):
                raise Fallback("choice")


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _decode_from(spec: _Complex, element: etree._Element) -> dict[str, Any]:
    if len(element.attrib) or not _blank(element.text):
        raise Fallback("attributes or text in element content")
    out: dict[str, Any] = {}
    by_tag = spec.by_tag
    last = -1
    counts: dict[int, int] = {}
    for node in element:
        if not _blank(node.tail):
            raise Fallback("text between elements")
        tag = node.tag
        if type(tag) is not str:
            if isinstance(node, etree._Comment):
                continue
            raise Fallback("processing instruction or entity")
        child = by_tag.get(tag)
        if child is None or child.index < last:
            raise Fallback("unknown or misplaced element")
        simple = child.simple
        if simple is not None:
            if len(node) or len(node.attrib):
                raise Fallback("element content in a simple element")
            value = simple.decode(node.text)
        elif child.complex is not None:
            value = _decode_from(child.complex, node)
        else:  # pragma: no cover
            raise Fallback("uncompiled child")
        if child.index == last:
            if not child.many:
                raise Fallback("repeated single element")
            out[child.key].append(value)
        else:
            out[child.key] = [value] if child.many else value
        counts[child.index] = counts.get(child.index, 0) + 1
        last = child.index
    if not out:
        raise Fallback("empty complex element")
    chosen = [0] * len(spec.choices)
    for child in spec.children:
        count = counts.get(child.index, 0)
        if count < child.min_occurs or (child.max_occurs is not None and count > child.max_occurs):
            raise Fallback("occurrences")
        if child.choice >= 0 and count:
            chosen[child.choice] += 1
    for count, required in zip(chosen, spec.choices, strict=True):
        if count > 1 or (required and not count):
            raise Fallback("choice")
    return out


class Converter:
    """JSON <-> XML for one message type, compiled from its root element declaration."""

    def __init__(self, tag: str, namespace: str, content: _Complex) -> None:
        self.tag = tag
        self.namespace = namespace
        self._content = content

    def to_xml(self, data: Any) -> etree._Element:
        """The payload element of a JSON payload that passed the type's JSON Schema.

        Raises:
            Fallback: a value the converter is not sure to convert as xmlschema would.
        """
        root = etree.Element(self.tag, nsmap={None: self.namespace})  # type: ignore[dict-item]
        try:
            _encode_into(self._content, data, root)
        except _SIMPLE_ERRORS as exc:
            raise Fallback(type(exc).__name__) from exc
        return root

    def to_json(self, element: etree._Element) -> dict[str, Any]:
        """The JSON form of a payload element (``<Tag>`` -> the object of its content).

        Raises:
            Fallback: the element holds something the converter is not sure to decode as xmlschema would.
        """
        if element.tag != self.tag:
            raise Fallback("root element")
        try:
            return _decode_from(self._content, element)
        except _SIMPLE_ERRORS as exc:
            raise Fallback(type(exc).__name__) from exc


class _Compiler:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.complex_types: dict[int, _Complex] = {}
        self.simple_types: dict[tuple[int, str | None], _Simple] = {}

    def complex(self, xsd_type: Any, where: str) -> _Complex:
        known = self.complex_types.get(id(xsd_type))
        if known is not None:
            return known
        if xsd_type.is_simple() or xsd_type.has_simple_content():
            raise Unsupported(f"{where}: simple content")
        if xsd_type.attributes:
            raise Unsupported(f"{where}: attributes")
        if xsd_type.mixed:
            raise Unsupported(f"{where}: mixed content")
        group = xsd_type.content
        if getattr(group, "model", None) not in {"sequence", "choice"}:
            raise Unsupported(f"{where}: content model {getattr(group, 'model', None)}")
        if (group.min_occurs, group.max_occurs) != (1, 1):
            raise Unsupported(f"{where}: a content group that is optional or repeats")
        spec = _Complex()
        self.complex_types[id(xsd_type)] = spec  # before the children: a type may contain itself
        if group.model == "choice":
            self._choice(group, spec, where)
        else:
            self._sequence(group, spec, where)
        return spec

    def _sequence(self, group: Any, spec: _Complex, where: str) -> None:
        for particle in group:
            if hasattr(particle, "model"):
                if particle.model == "sequence" and (particle.min_occurs, particle.max_occurs) == (1, 1):
                    self._sequence(particle, spec, where)
                elif particle.model == "choice" and particle.max_occurs == 1:
                    self._choice(particle, spec, where)
                else:
                    raise Unsupported(f"{where}: nested {particle.model} occurring {particle.occurs}")
            else:
                self._element(particle, spec, where, choice=-1)

    def _choice(self, group: Any, spec: _Complex, where: str) -> None:
        index = len(spec.choices)
        spec.choices.append(group.min_occurs >= 1)
        for particle in group:
            if hasattr(particle, "model") or (particle.min_occurs, particle.max_occurs) != (1, 1):
                raise Unsupported(f"{where}: a choice alternative that is a group, optional or repeated")
            self._element(particle, spec, where, choice=index)

    def _element(self, decl: Any, spec: _Complex, where: str, *, choice: int) -> None:
        if not isinstance(decl, XsdElement):
            raise Unsupported(f"{where}: wildcard or other particle {type(decl).__name__}")
        key = _local(decl.name)
        here = f"{where}/{key}"
        if decl.name != "{%s}%s" % (self.namespace, key):
            raise Unsupported(f"{here}: element outside the type's namespace")
        if decl.nillable or decl.abstract or decl.default is not None:
            raise Unsupported(f"{here}: nillable, abstract or default")
        if getattr(decl, "alternatives", None) or getattr(decl, "identities", None):
            raise Unsupported(f"{here}: type alternatives or identity constraints")
        if decl.maps.substitution_groups.get(decl.name):
            raise Unsupported(f"{here}: substitution group")
        if key in spec.by_key:
            raise Unsupported(f"{here}: element name used twice in one content model")
        many = not decl.is_single()
        if many != (decl.max_occurs is None or decl.max_occurs > 1):
            raise Unsupported(f"{here}: list form differs from maxOccurs")
        child = _Child(
            key=key,
            tag=decl.name,
            index=len(spec.children),
            many=many,
            min_occurs=0 if choice >= 0 else decl.min_occurs,
            max_occurs=decl.max_occurs,
            choice=choice,
        )
        if decl.type.is_simple():
            child.simple = self.simple(decl.type, decl.fixed, here)
        else:
            if decl.fixed is not None:
                raise Unsupported(f"{here}: fixed value on a complex element")
            child.complex = self.complex(decl.type, here)
        spec.children.append(child)
        spec.by_key[key] = child
        spec.by_tag[decl.name] = child

    def simple(self, xsd_type: Any, fixed: str | None, where: str) -> _Simple:
        known = self.simple_types.get((id(xsd_type), fixed))
        if known is not None:
            return known
        levels: list[Any] = []
        node = xsd_type
        while not _is_builtin(node):
            if not isinstance(node, XsdAtomicRestriction) or node.is_list() or node.is_union():
                raise Unsupported(f"{where}: simple type {type(node).__name__} (list, union or other)")
            levels.append(node)
            node = node.base_type
            if node is None or not node.is_simple():
                raise Unsupported(f"{where}: simple type without a simple base")
        kind = _KINDS.get(_local(node.name))
        if kind is None:
            raise Unsupported(f"{where}: built-in type {_local(node.name)}")
        builtin = node
        while node is not None and _is_builtin(node):
            levels.append(node)
            node = getattr(node, "base_type", None)
        checks: list[Callable[[Any], Any]] = []
        patterns: list[Callable[[str], Any]] = []
        for level in levels:
            if kind == "string" and level.white_space not in {None, "preserve"}:
                raise Unsupported(f"{where}: whiteSpace {level.white_space} on a string")
            checks.extend(level.validators or ())
            if level.patterns:
                patterns.append(level.patterns)
        if kind == "date" and len(levels) > 1 and (checks or patterns):
            raise Unsupported(f"{where}: facets on a date")
        simple = _Simple(
            kind=kind,
            checks=tuple(checks),
            patterns=tuple(patterns),
            to_python=builtin.to_python,
            fixed=None if fixed is None else str(fixed),
        )
        self.simple_types[(id(xsd_type), fixed)] = simple
        return simple


def compile_converter(root: Any, namespace: str) -> Converter:
    """The converter of a message type, from its xmlschema root element declaration.

    Raises:
        Unsupported: the type uses a construct the converter does not handle (the reason says which).
    """
    where = _local(root.name)
    if root.name != "{%s}%s" % (namespace, where):
        raise Unsupported(f"{where}: root element outside the type's namespace")
    if root.type.is_simple():
        raise Unsupported(f"{where}: a simple root element")
    return Converter(root.name, namespace, _Compiler(namespace).complex(root.type, where))


# -- fast JSON check -------------------------------------------------------------

_FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
_ANNOTATIONS = frozenset({"$id", "$schema", "title", "description", "x-knooppunt-rules"})


def _formats_in(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        if isinstance(node.get("format"), str):
            found.add(node["format"])
        for value in node.values():
            _formats_in(value, found)
    elif isinstance(node, list):
        for value in node:
            _formats_in(value, found)
    return found


def _for_fastjsonschema(node: Any) -> Any:
    """The schema as fastjsonschema reads it alike: ``$ref`` with siblings as ``allOf``, no annotations.

    fastjsonschema follows draft 7 in ignoring the keywords beside a ``$ref``; 2020-12
    applies them, so they are moved beside the ``$ref`` in an ``allOf``.
    """
    if isinstance(node, list):
        return [_for_fastjsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (v if k in {"properties", "$defs"} else _for_fastjsonschema(v))
        for k, v in node.items()
        if k not in _ANNOTATIONS
    }
    for key in ("properties", "$defs"):
        if key in out:
            out[key] = {name: _for_fastjsonschema(sub) for name, sub in out[key].items()}
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}, out]}
    return out


def _conforms(fmt: str, value: Any) -> bool:
    return bool(_FORMAT_CHECKER.conforms(value, fmt))


def compile_json_check(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A fast yes/no check of a payload against a generated JSON Schema.

    True means jsonschema's Draft202012Validator (with its format checker) finds no
    error either; False means "run the full validator to say what is wrong" (the
    fast check may refuse what jsonschema accepts, e.g. a string ending in a newline
    for an anchored pattern, never the other way round for the schemas the hub
    generates).
    """
    formats = {fmt: partial(_conforms, fmt) for fmt in _formats_in(schema, set())}
    validate = fastjsonschema.compile(_for_fastjsonschema(schema), formats=formats, use_default=False)

    def check(data: Any) -> bool:
        try:
            validate(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return check
