"""The shared information model: loads ``schemas/`` and validates messages.

Layout::

    schemas/envelope/1.0/envelope.xsd
    schemas/<domain>/<M.m>/catalog.yaml     namespace, version, status, types
    schemas/<domain>/<M.m>/<type>.xsd       one root element per message type

XML is validated with lxml's XSD validator (all errors at once, each with
its XPath). The JSON form of a payload is derived from the same XSD through
xmlschema, so JSON and XML obey one set of rules and convert losslessly.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import xmlschema
import yaml
from lxml import etree

from hub.errors import ConfigurationError, ErrorCollector, InvalidParam, UnknownMessageType, ValidationFailed
from hub.identifiers import IdentifierError, parse_bsn, parse_insz
from hub.xmlsafe import parser as safe_parser

_PREFIXED_STEP = re.compile(r"(?:[A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)(\[(\d+)\])?")


@dataclass(frozen=True)
class MessageType:
    """One message type at one version."""

    name: str
    version: str
    namespace: str
    element: str
    title: str
    flow: str
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    subject_field: str
    file: Path
    status: str
    deprecation: date | None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def qname(self) -> str:
        return "{%s}%s" % (self.namespace, self.element)


@dataclass
class _Release:
    """A domain at one version: its catalogue and compiled schemas."""

    domain: str
    version: str
    namespace: str
    directory: Path
    status: str
    deprecation: date | None
    types: dict[str, MessageType]
    lxml_schema: etree.XMLSchema
    _xmlschema: xmlschema.XMLSchema | None = None

    def conversion_schema(self) -> xmlschema.XMLSchema:
        """The xmlschema form, built on first use (it is slow to build)."""
        if self._xmlschema is None:
            sources = [str(t.file) for t in self.types.values()]
            schema = xmlschema.XMLSchema(sources[0], build=False, allow="local")
            for extra in sources[1:]:
                schema.include_schema(extra)
            schema.build()
            self._xmlschema = schema
        return self._xmlschema


class InfoModel:
    """Every message type the hub knows, and how to check one."""

    def __init__(self, schemas_dir: Path) -> None:
        self.schemas_dir = schemas_dir
        envelope_xsd = schemas_dir / "envelope" / "1.0" / "envelope.xsd"
        if not envelope_xsd.is_file():
            raise ConfigurationError(f"envelope schema missing: {envelope_xsd}")
        self.envelope_schema = etree.XMLSchema(etree.parse(str(envelope_xsd), parser=safe_parser()))
        self._releases: dict[tuple[str, str], _Release] = {}
        self._by_type: dict[tuple[str, str], tuple[_Release, MessageType]] = {}
        for catalog in sorted(schemas_dir.glob("*/*/catalog.yaml")):
            self._load_release(catalog)
        if not self._by_type:
            raise ConfigurationError(f"no message types found under {schemas_dir}")

    def _load_release(self, catalog: Path) -> None:
        spec = yaml.safe_load(catalog.read_text(encoding="utf-8"))
        directory = catalog.parent
        domain, version = directory.parent.name, directory.name
        namespace = spec["namespace"]
        deprecation = spec.get("deprecation")
        types: dict[str, MessageType] = {}
        for name, t in (spec.get("types") or {}).items():
            types[name] = MessageType(
                name=name,
                version=version,
                namespace=namespace,
                element=t["element"],
                title=t.get("title", name),
                flow=t.get("flow", ""),
                senders=tuple(t.get("senders", ())),
                receivers=tuple(t.get("receivers", ())),
                subject_field=t.get("subjectField", "persoon/identificatie"),
                file=directory / t["file"],
                status=spec.get("status", "current"),
                deprecation=deprecation,
                extra={k: v for k, v in t.items() if k not in {"element", "file"}},
            )
        release = _Release(
            domain=domain,
            version=version,
            namespace=namespace,
            directory=directory,
            status=spec.get("status", "current"),
            deprecation=deprecation,
            types=types,
            lxml_schema=self._compile(directory, namespace, [t.file for t in types.values()]),
        )
        self._releases[(domain, version)] = release
        for name, mtype in types.items():
            if (name, version) in self._by_type:
                raise ConfigurationError(f"message type {name} {version} defined twice")
            self._by_type[(name, version)] = (release, mtype)

    @staticmethod
    def _compile(directory: Path, namespace: str, files: list[Path]) -> etree.XMLSchema:
        """One lxml schema per release: a generated driver that includes every type's file."""
        includes = "".join(f'<xs:include schemaLocation="{f.name}"/>' for f in files)
        driver = (
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            f'targetNamespace="{namespace}" elementFormDefault="qualified">{includes}</xs:schema>'
        )
        doc = etree.fromstring(driver.encode(), parser=safe_parser(), base_url=str(directory / "_driver.xsd"))
        try:
            return etree.XMLSchema(doc)
        except etree.XMLSchemaParseError as exc:
            raise ConfigurationError(f"schemas in {directory} do not compile: {exc}") from exc

    # -- lookup -----------------------------------------------------------------

    def types(self) -> list[MessageType]:
        return [mt for _, mt in sorted(self._by_type.values(), key=lambda rm: (rm[1].name, rm[1].version))]

    def versions_of(self, name: str) -> list[str]:
        return sorted(v for (n, v) in self._by_type if n == name)

    def get(self, name: str, version: str) -> MessageType:
        """The message type, or an error that says what does exist."""
        found = self._by_type.get((name, version))
        if found is not None:
            return found[1]
        versions = self.versions_of(name)
        if versions:
            raise UnknownMessageType(
                f"berichttype {name!r} bestaat niet in versie {version}; wel in: {', '.join(versions)}",
                invalid_params=[InvalidParam("version", f"ondersteunde versies: {', '.join(versions)}", "version")],
            )
        names = sorted({n for n, _ in self._by_type})
        hint = difflib.get_close_matches(name, names, n=1)
        suggestion = f" Bedoelde u {hint[0]!r}?" if hint else ""
        raise UnknownMessageType(
            f"onbekend berichttype {name!r}.{suggestion}",
            invalid_params=[InvalidParam("type", f"bekende types: {', '.join(names)}", "enum")],
        )

    def release_of(self, mtype: MessageType) -> _Release:
        return self._by_type[(mtype.name, mtype.version)][0]

    # -- validation -------------------------------------------------------------

    def validate_envelope(self, root: etree._Element) -> None:
        """Check the envelope's own structure (the payload is checked separately)."""
        if not self.envelope_schema.validate(root):
            raise ValidationFailed(
                "de envelop voldoet niet aan envelope.xsd",
                invalid_params=_xsd_errors(self.envelope_schema.error_log, root),
            )

    def validate_payload(
        self,
        mtype: MessageType,
        payload: etree._Element,
        *,
        allow_test_numbers: bool = False,
        pointer: str = "xpath",
    ) -> None:
        """Validate a payload element against its type: XSD and identifier check digits.

        Raises:
            ValidationFailed: listing every error, each with its XPath (or JSON pointer).
        """
        errors = ErrorCollector()
        if payload.tag != mtype.qname:
            errors.add(
                "/payload", f"verwacht element {mtype.element} in {mtype.namespace}, kreeg {payload.tag}", "root"
            )
            errors.raise_if_any(f"payload past niet bij {mtype.name} {mtype.version}")
        schema = self.release_of(mtype).lxml_schema
        if not schema.validate(payload):
            for param in _xsd_errors(schema.error_log, payload):
                errors.params.append(_as_pointer(param) if pointer == "json" else param)
        for element in payload.iter("{%s}insz" % mtype.namespace, "{%s}bsn" % mtype.namespace):
            value = (element.text or "").strip()
            try:
                if etree.QName(element).localname == "insz":
                    parse_insz(value, allow_test_numbers=allow_test_numbers)
                else:
                    parse_bsn(value)
            except IdentifierError as exc:
                path = _element_path(element)
                errors.add(_xpath_to_pointer(path) if pointer == "json" else path, str(exc), "identifier")
        errors.raise_if_any(f"de payload voldoet niet aan {mtype.name} {mtype.version}")

    def subject_of(self, mtype: MessageType, payload: etree._Element) -> tuple[str, str] | None:
        """The (type, id) of the person the payload is about, from its subject field."""
        holder = payload.find("/".join("{%s}%s" % (mtype.namespace, s) for s in mtype.subject_field.split("/")))
        if holder is None:
            return None
        for child in holder:
            if isinstance(child.tag, str):
                local = etree.QName(child).localname
                return ("INSZ" if local == "insz" else "BSN", (child.text or "").strip())
        return None

    # -- JSON <-> XML -----------------------------------------------------------

    def json_to_xml(self, mtype: MessageType, data: Any) -> etree._Element:
        """Convert a JSON payload to its XML element, through the type's XSD.

        Raises:
            ValidationFailed: when the JSON does not fit the schema (JSON pointers).
        """
        if not isinstance(data, dict):
            raise ValidationFailed(
                "de payload moet een JSON-object zijn",
                invalid_params=[InvalidParam("/payload", "verwacht een object", "type")],
            )
        schema = self.release_of(mtype).conversion_schema()
        try:
            result = schema.encode(
                data,
                path=mtype.qname,
                namespaces={"": mtype.namespace},
                validation="lax",
                indent=0,
                # JSON objects are unordered: put children in the XSD's sequence order
                converter=xmlschema.UnorderedConverter,
            )
        except (xmlschema.XMLSchemaException, ValueError, TypeError, KeyError) as exc:
            raise ValidationFailed(
                "de payload kan niet omgezet worden",
                invalid_params=[InvalidParam("/payload", str(exc).splitlines()[0], "type")],
            ) from exc
        encoded, errors = result if isinstance(result, tuple) else (result, [])
        if errors or encoded is None:
            params = [_xmlschema_error(e) for e in errors] or [InvalidParam("/payload", "leeg resultaat", "type")]
            raise ValidationFailed(f"de payload voldoet niet aan {mtype.name} {mtype.version}", invalid_params=params)
        element = etree.fromstring(
            ElementTree.tostring(encoded, default_namespace=mtype.namespace), parser=safe_parser()
        )
        for node in element.iter():
            # xmlschema indents what it encodes; that whitespace is not data
            if len(node) and node.text is not None and not node.text.strip():
                node.text = None
            if node.tail is not None and not node.tail.strip():
                node.tail = None
        return element

    def xml_to_json(self, mtype: MessageType, payload: etree._Element) -> Any:
        """The JSON form of a (valid) payload element."""
        schema = self.release_of(mtype).conversion_schema()
        return schema.decode(etree.tostring(payload).decode(), strip_namespaces=True, validation="skip")


def _element_path(element: etree._Element) -> str:
    parts = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            siblings = [s for s in parent if s.tag == node.tag]
            if len(siblings) > 1:
                name += f"[{siblings.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def _xsd_errors(log: etree._ListErrorLog, root: etree._Element) -> list[InvalidParam]:
    params = []
    for entry in log:
        node = _resolve_positional(root, entry.path or "")
        path = _element_path(node) if node is not None else _strip_prefixes(entry.path or "/")
        message = _NS_IN_MESSAGE.sub("", entry.message)
        params.append(InvalidParam(path, message, "schema"))
    return params


_NS_IN_MESSAGE = re.compile(r"\{(?:urn|https?):[^}]*\}")
_STEP = re.compile(r"^(?:\*|[\w.\-]+:[\w.\-]+|[\w.\-]+)(?:\[(\d+)\])?$")


def _resolve_positional(root: etree._Element, path: str) -> etree._Element | None:
    """Map libxml2's node path ('/*/*[1]/*[4]', used for default-namespace nodes) to the element.

    A step '*[k]' is the k-th element child; a named step 'p:name[k]' the k-th child of that name.
    """
    steps = [s for s in path.split("/") if s]
    if not steps:
        return None
    node = root
    for step in steps[1:]:
        m = _STEP.match(step)
        if m is None:
            return None
        index = int(m.group(1) or 1) - 1
        name = step.split("[")[0]
        children = [c for c in node if isinstance(c.tag, str)]
        if name != "*":
            local = name.split(":")[-1]
            children = [c for c in children if etree.QName(c).localname == local]
        if index >= len(children):
            return None
        node = children[index]
    return node


def _strip_prefixes(path: str) -> str:
    return "/".join(_PREFIXED_STEP.sub(lambda m: m.group(1) + (m.group(2) or ""), step) for step in path.split("/"))


def _xpath_to_pointer(path: str) -> str:
    """'/Pip/persoon/nationaliteit[2]' -> '/payload/persoon/nationaliteit/1'."""
    steps = [s for s in path.split("/") if s][1:]
    out = ["/payload"]
    for step in steps:
        m = _PREFIXED_STEP.fullmatch(step)
        if m is None:
            out.append(step)
            continue
        out.append(m.group(1))
        if m.group(3):
            out.append(str(int(m.group(3)) - 1))
    return "/".join(out)


def _as_pointer(param: InvalidParam) -> InvalidParam:
    return InvalidParam(_xpath_to_pointer(param.name), param.reason, param.code)


def _xmlschema_error(error: Any) -> InvalidParam:
    path = getattr(error, "path", None) or "/"
    reason = getattr(error, "reason", None) or str(error).splitlines()[0]
    return InvalidParam(_xpath_to_pointer(_strip_prefixes(str(path))), str(reason), "schema")
