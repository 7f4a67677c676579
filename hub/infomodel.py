"""The shared information model: loads ``schemas/`` and validates messages.

Layout::

    schemas/envelope/1.0/envelope.xsd
    schemas/<domain>/<M.m>/catalog.yaml     namespace, version, status, types
    schemas/<domain>/<M.m>/<type>.xsd       one root element per message type

XML is validated with lxml's XSD validator (all errors at once, each with
its XPath). The JSON form of a payload is derived from the same XSD through
xmlschema, so JSON and XML obey one set of rules and convert losslessly.

JSON <-> XML conversion runs through a converter compiled per type from the
XSD (:mod:`hub.infomodel_convert`), and JSON is checked first by the type's
JSON Schema compiled with fastjsonschema; the full jsonschema validator runs
only to report what is wrong. The xmlschema/jsonschema implementation stays
as the reference (``reference_*`` methods): the compiled path hands every
value it is not sure of to it, and the tests hold the two equal.
"""

from __future__ import annotations

import copy
import difflib
import functools
import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jsonschema
import structlog
import xmlschema
import yaml
from lxml import etree

from hub.errors import (
    ConfigurationError,
    ErrorCollector,
    InputError,
    InvalidParam,
    UnknownMessageType,
    ValidationFailed,
)
from hub.identifiers import IdentifierError, parse_bsn, parse_insz, parse_kbo, parse_oin
from hub.infomodel_convert import Converter, Fallback, Unsupported, compile_converter, compile_json_check
from hub.jsonschema_gen import XSD_NS, message_json_schema
from hub.xmlsafe import parser as safe_parser

log = structlog.get_logger(__name__)

_DOWNGRADE_POLICIES = frozenset({"drop", "refuse"})
_SUBJECT_KINDS = {"insz": "INSZ", "bsn": "BSN"}


@functools.cache
def _subject_lookup(namespace: str, subject_field: str) -> tuple[tuple[str, ...], dict[Any, str]]:
    """The tags along a type's subject field and its identifier tags -> kind (built once)."""
    steps = tuple("{%s}%s" % (namespace, step) for step in subject_field.split("/"))
    return steps, {"{%s}%s" % (namespace, name): kind for name, kind in _SUBJECT_KINDS.items()}


def _find_steps(node: etree._Element, steps: tuple[str, ...]) -> etree._Element | None:
    """``node.find("a/b/c")`` for a path of child tags, without ElementPath's cost per call: the
    first match in document order, looking under every ``a`` (and ``b``) in turn, as find does."""
    if not steps:
        return node
    for child in node.iterchildren(steps[0]):
        found = _find_steps(child, steps[1:])
        if found is not None:
            return found
    return None


class VersionRefused(InputError):
    """A receiver's version cannot take this message (policy ``refuse``, or another type)."""

    code = "version_refused"
    status = 422
    title = "Bericht past niet in de versie van de ontvanger"


_PREFIXED_STEP = re.compile(r"(?:[A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)(\[(\d+)\])?")


@dataclass(frozen=True)
class Rule:
    """A business rule the XSD cannot say, written as XPath 1.0 (Schematron style).

    For every node the ``context`` selects (relative to the payload root; prefix ``k:``
    is the type's namespace), ``test`` must be true; otherwise the error names
    ``context node/field`` with the rule's ``id`` as its code. Rules run only on
    payloads that pass the XSD, so they can rely on its structure.
    """

    id: str
    context: str
    test: str
    field_name: str
    message: str
    _context: etree.XPath = field(compare=False, repr=False)
    _test: etree.XPath = field(compare=False, repr=False)

    @classmethod
    def parse(cls, spec: dict[str, Any], namespace: str, where: str) -> Rule:
        missing = [k for k in ("id", "test", "message") if not spec.get(k)]
        if missing:
            raise ConfigurationError(f"{where}: rule without {', '.join(missing)}")
        context = str(spec.get("context", "."))
        try:
            compiled = (
                etree.XPath(context, namespaces={"k": namespace}, regexp=False),
                etree.XPath(f"boolean({spec['test']})", namespaces={"k": namespace}, regexp=False),
            )
        except etree.XPathSyntaxError as exc:
            raise ConfigurationError(f"{where}: rule {spec['id']}: {exc}") from exc
        return cls(
            id=str(spec["id"]),
            context=context,
            test=str(spec["test"]),
            field_name=str(spec.get("field", "")),
            message=str(spec["message"]),
            _context=compiled[0],
            _test=compiled[1],
        )

    def violations(self, payload: etree._Element) -> list[InvalidParam]:
        found = self._context(payload)
        nodes = found if isinstance(found, list) else []
        out = []
        for node in nodes:
            if isinstance(node, etree._Element) and not self._test(node):
                path = _element_path(node) + (f"/{self.field_name}" if self.field_name else "")
                out.append(InvalidParam(path, self.message, self.id))
        return out


def all_rules_hold(rules: tuple[Rule, ...], namespace: str) -> etree.XPath | None:
    """One XPath that is true when every rule holds: ``not((context)[not(test)]) and ...``.

    Valid messages, nearly all of them, are then checked in one evaluation instead of
    two per rule; only when it is false are the rules run one by one, to name the
    fields. None when there are no rules or a context is not a node-set expression
    (then the rules always run one by one).
    """
    if not rules:
        return None
    clauses = [f"not(({rule.context})[not({rule.test})])" for rule in rules]
    try:
        # regexp=False: no EXSLT functions registered per call; a rule could not reach them anyway,
        # since only the prefix k is bound
        return etree.XPath(" and ".join(clauses), namespaces={"k": namespace}, regexp=False)
    except etree.XPathSyntaxError:
        return None


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
    downgrade: str = "drop"
    rules: tuple[Rule, ...] = field(default=(), compare=False)
    #: all business rules as one XPath (true when every rule holds), or None: see all_rules_hold
    rules_hold: etree.XPath | None = field(default=None, compare=False, repr=False)

    @property
    def qname(self) -> str:
        return "{%s}%s" % (self.namespace, self.element)

    def deprecated_on(self, day: date) -> bool:
        """True once ``day`` is past this version's deprecation date (None: never)."""
        return self.deprecation is not None and day > self.deprecation

    @property
    def aggregated(self) -> bool:
        """True for aggregated exports (monitoring, rapportage): no data subject, no person in it."""
        return not self.subject_field


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
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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


@dataclass(frozen=True)
class Example:
    """One example of ``schemas/<domain>/<version>/examples/<type>/``.

    ``errors`` are the (XPath, rule) pairs an invalid example must give on the XML
    route, ``json_errors`` the (JSON pointer, rule) pairs on the JSON route (None when
    the error cannot be written in JSON); both empty for a valid example.
    """

    mtype: MessageType
    path: Path
    valid: bool
    description: str = ""
    errors: tuple[tuple[str, str], ...] = ()
    json_errors: tuple[tuple[str, str], ...] | None = ()

    @property
    def name(self) -> str:
        return self.path.stem


class InfoModel:
    """Every message type the hub knows, and how to check one."""

    def __init__(self, schemas_dir: Path) -> None:
        self.schemas_dir = schemas_dir
        envelope_xsd = schemas_dir / "envelope" / "1.0" / "envelope.xsd"
        if not envelope_xsd.is_file():
            raise ConfigurationError(f"envelope schema missing: {envelope_xsd}")
        self._envelope_lock = threading.Lock()
        self.envelope_schema = etree.XMLSchema(etree.parse(str(envelope_xsd), parser=safe_parser()))
        self._releases: dict[tuple[str, str], _Release] = {}
        self._json_schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._json_validators: dict[tuple[str, str], Any] = {}
        self._json_checks: dict[tuple[str, str], Callable[[Any], bool]] = {}
        self._converters: dict[tuple[str, str], Converter | None] = {}
        self._unsupported: dict[tuple[str, str], str] = {}
        self._compile_lock = threading.Lock()
        self._by_type: dict[tuple[str, str], tuple[_Release, MessageType]] = {}
        for catalog in sorted(schemas_dir.glob("*/*/catalog.yaml")):
            self._load_release(catalog)
        if not self._by_type:
            raise ConfigurationError(f"no message types found under {schemas_dir}")
        for name in sorted({n for n, _ in self._by_type}):
            versions = self.versions_of(name)
            for older, newer in itertools.pairwise(versions):
                problems = self.compatibility_problems(self.get(name, older), self.get(name, newer))
                if problems:
                    raise ConfigurationError(f"{name} {newer} breaks {older}: {'; '.join(problems)}")

    def _load_release(self, catalog: Path) -> None:
        spec = yaml.safe_load(catalog.read_text(encoding="utf-8"))
        directory = catalog.parent
        domain, version = directory.parent.name, directory.name
        namespace = spec["namespace"]
        deprecation = spec.get("deprecation")
        shared_rules = [Rule.parse(r, namespace, str(catalog)) for r in spec.get("sharedRules") or ()]
        types: dict[str, MessageType] = {}
        for name, t in (spec.get("types") or {}).items():
            downgrade = t.get("downgrade", "drop")
            if downgrade not in _DOWNGRADE_POLICIES:
                raise ConfigurationError(f"{catalog}: {name}: downgrade must be one of {sorted(_DOWNGRADE_POLICIES)}")
            rules = (*shared_rules, *(Rule.parse(r, namespace, f"{catalog}: {name}") for r in t.get("rules") or ()))
            types[name] = MessageType(
                name=name,
                version=version,
                namespace=namespace,
                element=t["element"],
                title=t.get("title", name),
                flow=t.get("flow", ""),
                senders=tuple(t.get("senders", ())),
                receivers=tuple(t.get("receivers", ())),
                subject_field=t.get("subjectField", "persoon/identificatie") or "",
                file=directory / t["file"],
                status=spec.get("status", "current"),
                deprecation=t.get("deprecation", deprecation),
                extra={k: v for k, v in t.items() if k not in {"element", "file", "rules"}},
                downgrade=downgrade,
                rules=rules,
                rules_hold=all_rules_hold(rules, namespace),
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
        """Every message type at every version, by name and then version (numerically: 1.9 before 1.10)."""
        return [
            mt for _, mt in sorted(self._by_type.values(), key=lambda rm: (rm[1].name, _version_key(rm[1].version)))
        ]

    def versions_of(self, name: str) -> list[str]:
        """The versions of a type, oldest first."""
        return sorted((v for (n, v) in self._by_type if n == name), key=_version_key)

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

    def ensure_accepted(self, mtype: MessageType, day: date) -> None:
        """Refuse a version past its deprecation date, naming the versions that are still accepted.

        Raises:
            VersionRefused: ``mtype`` is deprecated on ``day``.
        """
        if not mtype.deprecated_on(day):
            return
        current = [v for v in self.versions_of(mtype.name) if not self.get(mtype.name, v).deprecated_on(day)]
        raise VersionRefused(
            f"{mtype.name} {mtype.version} wordt sinds {mtype.deprecation} niet meer aanvaard; "
            f"gebruik {', '.join(current) or 'een nieuwere versie'}",
            invalid_params=[InvalidParam("version", f"verouderd sinds {mtype.deprecation}", "deprecated")],
        )

    def examples(self, mtype: MessageType | None = None) -> list[Example]:
        """The valid and invalid examples of one type (or all), with the errors each must give."""
        out: list[Example] = []
        for t in [mtype] if mtype is not None else self.types():
            folder = t.file.parent / "examples" / t.name
            for path in sorted(folder.glob("valid-*.xml")):
                out.append(Example(t, path, valid=True))
            for path in sorted(folder.glob("invalid-*.xml")):
                sidecar = path.with_suffix(".expect.yaml")
                if not sidecar.is_file():
                    raise ConfigurationError(f"{path} has no {sidecar.name}")
                spec = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
                errors = tuple((str(e["path"]), str(e["rule"])) for e in spec["errors"])
                json_spec = spec.get("json", [{"path": _xpath_to_pointer(p), "rule": r} for p, r in errors])
                json_errors = None if json_spec is None else tuple((str(e["path"]), str(e["rule"])) for e in json_spec)
                out.append(Example(t, path, False, str(spec.get("description", "")), errors, json_errors))
        return out

    def release_of(self, mtype: MessageType) -> _Release:
        return self._by_type[(mtype.name, mtype.version)][0]

    # -- validation -------------------------------------------------------------

    def validate_envelope(self, root: etree._Element) -> None:
        """Check the envelope's own structure (the payload is checked separately)."""
        with self._envelope_lock:
            ok = self.envelope_schema.validate(root)
            errors = [] if ok else _xsd_errors(self.envelope_schema.error_log, root)
        if not ok:
            raise ValidationFailed(
                "de envelop voldoet niet aan envelope.xsd",
                invalid_params=errors,
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

        Each error names the field (XPath, or JSON pointer with ``pointer="json"``), the
        rule as its ``code`` (``required``, ``unexpected``, ``maxOccurs``, ``choice``,
        ``order``, ``enumeration``, ``pattern``, ``minLength``, ``maxLength``,
        ``minInclusive``, ``maxInclusive``, ``datatype``, ``fixed``, ``identifier``, or
        the id of a business rule from the catalog) and what is wrong with the value.

        Raises:
            ValidationFailed: listing every error.
        """
        errors = ErrorCollector()
        if payload.tag != mtype.qname:
            errors.add(
                "/payload", f"verwacht element {mtype.element} in {mtype.namespace}, kreeg {payload.tag}", "root"
            )
            errors.raise_if_any(f"payload past niet bij {mtype.name} {mtype.version}")
        release = self.release_of(mtype)
        params: list[InvalidParam] = []
        # a schema keeps its error log on itself: one validation at a time per release
        with release.lock:
            if not release.lxml_schema.validate(payload):
                params.extend(_xsd_errors(release.lxml_schema.error_log, payload, release))
            elif mtype.rules and not _holds(mtype.rules_hold, payload):
                for rule in mtype.rules:
                    params.extend(rule.violations(payload))
        params.extend(_identifier_errors(payload, mtype.namespace, allow_test_numbers))
        for param in _dedupe(params):
            errors.params.append(_as_pointer(param) if pointer == "json" else param)
        errors.raise_if_any(f"de payload voldoet niet aan {mtype.name} {mtype.version}")

    def subject_of(self, mtype: MessageType, payload: etree._Element) -> tuple[str, str] | None:
        """The (type, id) of the person the payload is about, from its subject field.

        The subject field names either the identifier element itself (``ontheemde/insz``)
        or an element holding one (``persoon/identificatie``). Aggregated types have none.
        """
        if mtype.aggregated:
            return None
        steps, kinds = _subject_lookup(mtype.namespace, mtype.subject_field)
        node = _find_steps(payload, steps)
        if node is None:
            return None
        for child in (node, *node):
            kind = kinds.get(child.tag)
            if kind is not None:
                return (kind, (child.text or "").strip())
        return None

    # -- JSON <-> XML -----------------------------------------------------------

    def json_schema(self, mtype: MessageType) -> dict[str, Any]:
        """The JSON Schema of the type's JSON form, generated from its XSD (cached)."""
        key = (mtype.name, mtype.version)
        cached = self._json_schemas.get(key)
        if cached is None:
            root = self.release_of(mtype).conversion_schema().elements[mtype.element]
            cached = message_json_schema(
                root, schema_id=f"{mtype.namespace}:{mtype.name}:{mtype.version}", title=mtype.title
            )
            if mtype.rules:
                # business rules are XPath over the XML form; published so partners can check them too
                cached["x-knooppunt-rules"] = [
                    {"id": r.id, "context": r.context, "test": r.test, "field": r.field_name, "message": r.message}
                    for r in mtype.rules
                ]
            self._json_schemas[key] = cached
        return cached

    def json_errors(self, mtype: MessageType, data: Any, *, allow_test_numbers: bool = False) -> list[InvalidParam]:
        """Every error of a JSON payload (JSON pointers), with the same rule codes as the XML route.

        This is jsonschema's Draft202012Validator, which says where each error is; the
        conversions ask the fast check first and come here only when it refuses.
        """
        if not isinstance(data, dict):
            return [InvalidParam("/payload", "verwacht een JSON-object", "datatype")]
        key = (mtype.name, mtype.version)
        validator = self._json_validators.get(key)
        if validator is None:
            validator = jsonschema.Draft202012Validator(
                self.json_schema(mtype), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
            )
            self._json_validators[key] = validator
        params: list[InvalidParam] = []
        for error in validator.iter_errors(data):
            params.extend(_json_schema_error(error))
        params.extend(_json_identifier_errors(data, "/payload", allow_test_numbers))
        return _dedupe(params)

    def json_to_xml(self, mtype: MessageType, data: Any) -> etree._Element:
        """Convert a JSON payload to its XML element, through the type's XSD.

        The JSON is first checked against the type's generated JSON Schema, so a
        caller hears about every structural and value error at once (JSON pointers);
        identifier check digits are checked too when anything else is wrong, and
        otherwise by :meth:`validate_payload` on the result.

        Raises:
            ValidationFailed: when the JSON does not fit the schema (JSON pointers).
        """
        self._refuse_invalid_json(mtype, data, allow_test_numbers=False)
        return self._convert_json(mtype, data, allow_test_numbers=False)

    def validate_json(self, mtype: MessageType, data: Any, *, allow_test_numbers: bool = False) -> etree._Element:
        """Validate a JSON payload completely and return its XML element.

        Raises:
            ValidationFailed: every error, with JSON pointers and rule codes.
        """
        self._refuse_invalid_json(mtype, data, allow_test_numbers=allow_test_numbers)
        # structurally sound: convert, then identifiers and business rules as for XML
        element = self._convert_json(mtype, data, allow_test_numbers=allow_test_numbers)
        self.validate_payload(mtype, element, allow_test_numbers=allow_test_numbers, pointer="json")
        return element

    def xml_to_json(self, mtype: MessageType, payload: etree._Element) -> Any:
        """The JSON form of a payload element (validity is not checked here)."""
        converter = self.converter(mtype)
        if converter is not None:
            try:
                return converter.to_json(payload)
            except Fallback as exc:
                log.debug("conversion_fell_back", type=mtype.name, version=mtype.version, to="json", reason=str(exc))
        return self.reference_xml_to_json(mtype, payload)

    def conversion_report(self) -> dict[tuple[str, str], str]:
        """For every (type, version): ``compiled``, or why its conversion stays with xmlschema."""
        out = {}
        for mtype in self.types():
            key = (mtype.name, mtype.version)
            out[key] = "compiled" if self.converter(mtype) is not None else f"xmlschema: {self._unsupported[key]}"
        return out

    def _json_check(self, mtype: MessageType) -> Callable[[Any], bool]:
        key = (mtype.name, mtype.version)
        check = self._json_checks.get(key)
        if check is None:
            with self._compile_lock:
                check = self._json_checks.get(key)
                if check is None:
                    check = compile_json_check(self.json_schema(mtype))
                    self._json_checks[key] = check
        return check

    def converter(self, mtype: MessageType) -> Converter | None:
        """The compiled converter of a type, or None when the type uses a construct it does not handle."""
        key = (mtype.name, mtype.version)
        if key in self._converters:
            return self._converters[key]
        with self._compile_lock:
            if key not in self._converters:
                root = self.release_of(mtype).conversion_schema().elements[mtype.element]
                converter: Converter | None = None
                try:
                    converter = compile_converter(root, mtype.namespace)
                except Unsupported as exc:
                    self._unsupported[key] = str(exc)
                    log.warning("converter_not_compiled", type=mtype.name, version=mtype.version, reason=str(exc))
                self._converters[key] = converter
        return self._converters[key]

    def _refuse_invalid_json(self, mtype: MessageType, data: Any, *, allow_test_numbers: bool) -> None:
        """Raise what the JSON Schema route finds; identifier errors alone are left to the XML checks."""
        if isinstance(data, dict) and self._json_check(mtype)(data):
            return
        self._raise_json_schema_errors(mtype, data, allow_test_numbers=allow_test_numbers)

    def _raise_json_schema_errors(self, mtype: MessageType, data: Any, *, allow_test_numbers: bool) -> None:
        """The JSON Schema route's errors, raised unless they are identifier errors only."""
        params = self.json_errors(mtype, data, allow_test_numbers=allow_test_numbers)
        if any(p.code != "identifier" for p in params):
            raise ValidationFailed(f"de payload voldoet niet aan {mtype.name} {mtype.version}", invalid_params=params)

    def _convert_json(self, mtype: MessageType, data: Any, *, allow_test_numbers: bool) -> etree._Element:
        """A checked JSON payload as XML: compiled, or through xmlschema for a value the converter leaves."""
        converter = self.converter(mtype)
        if converter is not None:
            try:
                return converter.to_xml(data)
            except Fallback as exc:
                log.debug("conversion_fell_back", type=mtype.name, version=mtype.version, to="xml", reason=str(exc))
        # exactly the reference route, its full JSON Schema validation included
        self._raise_json_schema_errors(mtype, data, allow_test_numbers=allow_test_numbers)
        return self._xmlschema_encode(mtype, data)

    # -- the reference conversion: xmlschema and jsonschema -----------------------

    def reference_json_to_xml(self, mtype: MessageType, data: Any) -> etree._Element:
        """:meth:`json_to_xml` through jsonschema and xmlschema's encoder (slow; what the compiled path must equal).

        Raises:
            ValidationFailed: when the JSON does not fit the schema (JSON pointers).
        """
        params = self.json_errors(mtype, data)
        if any(p.code != "identifier" for p in params):
            raise ValidationFailed(f"de payload voldoet niet aan {mtype.name} {mtype.version}", invalid_params=params)
        return self._xmlschema_encode(mtype, data)

    def reference_xml_to_json(self, mtype: MessageType, payload: etree._Element) -> Any:
        """:meth:`xml_to_json` through xmlschema's decoder (slow; what the compiled path must equal)."""
        schema = self.release_of(mtype).conversion_schema()
        return schema.decode(etree.tostring(payload).decode(), strip_namespaces=True, validation="skip")

    def _xmlschema_encode(self, mtype: MessageType, data: Any) -> etree._Element:
        """xmlschema's encoding of a JSON payload that passed the JSON Schema."""
        schema = self.release_of(mtype).conversion_schema()
        json_schema = self.json_schema(mtype)
        data = _in_schema_order(data, json_schema, json_schema.get("$defs", {}))
        try:
            result: Any = schema.encode(
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
                invalid_params=[InvalidParam("/payload", str(exc).splitlines()[0], "datatype")],
            ) from exc
        encoded, errors = result if isinstance(result, tuple) else (result, [])
        if errors or encoded is None:
            params = [_xmlschema_error(e) for e in errors] or [InvalidParam("/payload", "leeg resultaat", "datatype")]
            raise ValidationFailed(f"de payload voldoet niet aan {mtype.name} {mtype.version}", invalid_params=params)
        try:
            element = etree.fromstring(
                ElementTree.tostring(encoded, default_namespace=mtype.namespace), parser=safe_parser()
            )
        except etree.XMLSyntaxError as exc:
            # a JSON string may hold characters XML 1.0 cannot carry (control characters)
            params = _xml_unsafe_strings(data, "/payload") or [
                InvalidParam("/payload", "niet om te zetten naar XML", "datatype")
            ]
            raise ValidationFailed(
                f"de payload bevat tekens die XML niet kan dragen ({mtype.name} {mtype.version})",
                invalid_params=params,
            ) from exc
        for node in element.iter():
            # xmlschema indents what it encodes; that whitespace is not data
            if len(node) and node.text is not None and not node.text.strip():
                node.text = None
            if node.tail is not None and not node.tail.strip():
                node.tail = None
        return element

    # -- publishing -------------------------------------------------------------

    def standalone_xsd(self, mtype: MessageType) -> bytes:
        """The type's XSD with every xs:include inlined, so it compiles on its own.

        This is what partners download: one file, no relative references.
        """
        seen: set[Path] = set()
        root = etree.parse(str(mtype.file), parser=safe_parser()).getroot()
        seen.add(mtype.file.resolve())
        _inline_includes(root, mtype.file.parent, seen)
        root.set("version", mtype.version)
        etree.indent(root, space="  ")
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    # -- versions ---------------------------------------------------------------

    def element_paths(self, mtype: MessageType) -> dict[str, tuple[int, int | None]]:
        """Every element path of the type ('persoon/identificatie/insz') with its (minOccurs, maxOccurs)."""
        root = self.release_of(mtype).conversion_schema().elements[mtype.element]
        out: dict[str, tuple[int, int | None]] = {}
        _collect_paths(root.type, "", out, 1)
        return out

    def compatibility_problems(self, older: MessageType, newer: MessageType) -> list[str]:
        """Why ``newer`` is not a compatible minor version of ``older`` (empty when it is).

        Within one major version (one namespace) a newer minor version may only add
        optional elements: every older path stays, with the same minimum and a maximum
        at least as large, so every message a 1.0 sender makes is still valid.
        """
        if older.namespace != newer.namespace:
            return [f"namespace {newer.namespace} differs from {older.namespace}: that is a new major version"]
        if older.element != newer.element:
            return [f"root element {newer.element} differs from {older.element}"]
        old, new = self.element_paths(older), self.element_paths(newer)
        problems = []
        for path, (low, high) in old.items():
            if path not in new:
                problems.append(f"{path} removed")
                continue
            new_low, new_high = new[path]
            if new_low > low:
                problems.append(f"{path} minOccurs raised from {low} to {new_low}")
            if new_high is not None and (high is None or new_high < high):
                problems.append(f"{path} maxOccurs lowered")
        for path, (low, _) in new.items():
            parent = path.rpartition("/")[0]
            if path not in old and (not parent or parent in old) and low > 0:
                problems.append(f"{path} added as required")
        return problems

    def convert_version(
        self, mtype_from: MessageType, mtype_to: MessageType, element: etree._Element
    ) -> etree._Element:
        """Convert a payload between two minor versions of one type (same namespace).

        Up (1.0 -> 1.1): a minor version only adds optional elements, so the payload
        is returned as it is. Down (1.1 -> 1.0): the policy of the newer version
        (``downgrade`` in its catalog) decides: ``drop`` removes the elements the
        newer version added; ``refuse`` refuses when the payload uses any of them
        (dropping would change its meaning) and returns it unchanged otherwise.
        The result is validated against the target version.

        Raises:
            VersionRefused: the policy is ``refuse`` and new elements are present,
                or the versions are of different types or namespaces.
            ValidationFailed: the result does not fit the target version.
        """
        if mtype_from.name != mtype_to.name or mtype_from.namespace != mtype_to.namespace:
            raise VersionRefused(
                f"{mtype_from.name} {mtype_from.version} kan niet omgezet worden "
                f"naar {mtype_to.name} {mtype_to.version}"
            )
        result = copy.deepcopy(element)
        if _version_key(mtype_to.version) < _version_key(mtype_from.version):
            known = self.element_paths(mtype_to)
            extra = [(path, node) for path, node in _payload_paths(result) if path not in known]
            outermost = [(p, n) for p, n in extra if not any(p.startswith(q + "/") for q, _ in extra if q != p)]
            if outermost and mtype_from.downgrade == "refuse":
                fields = sorted({p for p, _ in outermost})
                raise VersionRefused(
                    f"{mtype_from.name} {mtype_from.version} gebruikt velden die {mtype_to.version} niet kent "
                    f"({', '.join(fields)}); het beleid van dit type is weigeren",
                    invalid_params=[
                        InvalidParam("/" + mtype_to.element + "/" + p, "onbekend in " + mtype_to.version, "version")
                        for p in fields
                    ],
                )
            for _, node in outermost:
                parent = node.getparent()
                if parent is not None:
                    parent.remove(node)
        self.validate_payload(mtype_to, result, allow_test_numbers=True)
        return result


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


_VALUE_RULES = {
    "SCHEMAV_CVC_ENUMERATION_VALID": "enumeration",
    "SCHEMAV_CVC_PATTERN_VALID": "pattern",
    "SCHEMAV_CVC_MINLENGTH_VALID": "minLength",
    "SCHEMAV_CVC_MAXLENGTH_VALID": "maxLength",
    "SCHEMAV_CVC_LENGTH_VALID": "length",
    "SCHEMAV_CVC_MININCLUSIVE_VALID": "minInclusive",
    "SCHEMAV_CVC_MAXINCLUSIVE_VALID": "maxInclusive",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "datatype",
    "SCHEMAV_CVC_ELT_5_2_2_2_2": "fixed",
    "SCHEMAV_CVC_ELT_5_2_2_2_1": "fixed",
}


def _xsd_errors(log: etree._ListErrorLog, root: etree._Element, release: _Release | None = None) -> list[InvalidParam]:
    """lxml's errors as invalid params; with the release, structure errors are restated per field."""
    params: list[InvalidParam] = []
    parents_done: set[int] = set()
    for entry in log:
        node = _resolve_positional(root, entry.path or "")
        path = _element_path(node) if node is not None else _strip_prefixes(entry.path or "/")
        message = _NS_IN_MESSAGE.sub("", entry.message)
        if release is None:
            params.append(InvalidParam(path, message, "schema"))
            continue
        if entry.type_name == "SCHEMAV_ELEMENT_CONTENT" and node is not None:
            parent = node if "Missing child" in entry.message else node.getparent()
            if parent is None or id(parent) in parents_done:
                continue
            parents_done.add(id(parent))
            found = _structure_errors(release, parent, root)
            params.extend(found or [InvalidParam(path, message, "order")])
            continue
        rule = _VALUE_RULES.get(entry.type_name, "schema")
        if rule == "datatype" and any(p.name == path and p.code != "datatype" for p in params):
            continue  # libxml2 restates a facet error as a datatype error
        params.append(InvalidParam(path, message, rule))
    return params


def _xsd_element_for(release: _Release, node: etree._Element, root: etree._Element) -> Any:
    """The xmlschema element declaration that governs an lxml element of a payload (``root``)."""
    chain: list[str] = []
    cursor: etree._Element | None = node
    while cursor is not None:
        chain.append(etree.QName(cursor).localname)
        if cursor is root:
            break
        cursor = cursor.getparent()
    chain.reverse()
    schema = release.conversion_schema()
    decl: Any = schema.elements.get(chain[0])
    for name in chain[1:]:
        if decl is None or decl.type.is_simple():
            return None
        decl = next((e for e in decl.type.content.iter_elements() if etree.QName(e.name).localname == name), None)
    return decl


def _slots(group: Any, optional: bool = False) -> list[tuple[str, list[tuple[str, int, int | None]], bool]]:
    """A content model flattened: ('element', [(name, min, max)], required) or ('choice', alternatives, required)."""
    out: list[tuple[str, list[tuple[str, int, int | None]], bool]] = []
    if group.model == "choice":
        alts = [(etree.QName(p.name).localname, p.min_occurs, p.max_occurs) for p in group]
        out.append(("choice", alts, group.min_occurs >= 1 and not optional))
        return out
    for particle in group:
        if hasattr(particle, "model"):
            out.extend(_slots(particle, optional or particle.min_occurs == 0))
        else:
            name = etree.QName(particle.name).localname
            out.append(
                (
                    "element",
                    [(name, particle.min_occurs, particle.max_occurs)],
                    particle.min_occurs >= 1 and not optional,
                )
            )
    return out


def _structure_errors(release: _Release, parent: etree._Element, root: etree._Element) -> list[InvalidParam]:
    """Missing, unknown, too many and conflicting children of one element, each named by field."""
    decl = _xsd_element_for(release, parent, root)
    if decl is None or decl.type.is_simple():
        return []
    base = _element_path(parent)
    counts: dict[str, int] = {}
    for child in parent:
        if isinstance(child.tag, str):
            counts[etree.QName(child).localname] = counts.get(etree.QName(child).localname, 0) + 1
    params: list[InvalidParam] = []
    declared: set[str] = set()
    for kind, particles, required in _slots(decl.type.content):
        names = [n for n, _, _ in particles]
        declared.update(names)
        present = [n for n in names if counts.get(n)]
        if kind == "choice":
            if required and not present:
                params.append(InvalidParam(base, f"één van {', '.join(names)} is verplicht", "choice"))
            if len(present) > 1:
                params.append(InvalidParam(base, f"slechts één van {', '.join(names)} is toegestaan", "choice"))
        elif required and not present:
            params.append(InvalidParam(f"{base}/{names[0]}", f"verplicht element {names[0]} ontbreekt", "required"))
        for name, _, high in particles:
            if high is not None and counts.get(name, 0) > high:
                params.append(InvalidParam(f"{base}/{name}", f"{name} komt hoogstens {high} keer voor", "maxOccurs"))
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).localname not in declared:
            params.append(InvalidParam(_element_path(child), "element is hier niet toegestaan", "unexpected"))
    return params


_IDENTIFIERS = ("insz", "bsn", "kbo", "oin")


def _check_identifier(kind: str, value: str, allow_test_numbers: bool) -> str | None:
    try:
        if kind == "insz":
            parse_insz(value, allow_test_numbers=allow_test_numbers)
        elif kind == "bsn":
            parse_bsn(value)
        elif kind == "kbo":
            parse_kbo(value)
        else:
            parse_oin(value)
    except IdentifierError as exc:
        return str(exc)
    return None


def _holds(check: etree.XPath | None, payload: etree._Element) -> bool:
    """True when the combined rule check says every rule holds (False: run them one by one)."""
    if check is None:
        return False
    try:
        return check(payload) is True
    except etree.XPathEvalError:
        return False


@functools.cache
def _identifier_tags(namespace: str) -> dict[str, str]:
    """Tag -> identifier kind (its local name) of the identifier elements of a namespace (built once)."""
    return {"{%s}%s" % (namespace, k): k for k in _IDENTIFIERS}


def _identifier_errors(payload: etree._Element, namespace: str, allow_test_numbers: bool) -> list[InvalidParam]:
    params = []
    kinds = _identifier_tags(namespace)
    for element in payload.iter(*kinds):
        reason = _check_identifier(kinds[element.tag], (element.text or "").strip(), allow_test_numbers)
        if reason is not None:
            params.append(InvalidParam(_element_path(element), reason, "identifier"))
    return params


def _json_identifier_errors(data: Any, pointer: str, allow_test_numbers: bool) -> list[InvalidParam]:
    params: list[InvalidParam] = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{pointer}/{key}"
            if key in _IDENTIFIERS and isinstance(value, str):
                reason = _check_identifier(key, value.strip(), allow_test_numbers)
                if reason is not None:
                    params.append(InvalidParam(here, reason, "identifier"))
            else:
                params.extend(_json_identifier_errors(value, here, allow_test_numbers))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            params.extend(_json_identifier_errors(item, f"{pointer}/{index}", allow_test_numbers))
    return params


_JSON_RULES = {
    "enum": "enumeration",
    "pattern": "pattern",
    "minLength": "minLength",
    "maxLength": "maxLength",
    "minimum": "minInclusive",
    "maximum": "maxInclusive",
    "type": "datatype",
    "format": "datatype",
    "maxItems": "maxOccurs",
    "minItems": "required",
    "const": "fixed",
    "anyOf": "choice",
    "not": "choice",
}


def _json_schema_error(error: jsonschema.ValidationError) -> list[InvalidParam]:
    """One jsonschema error restated with the rule names of the XML route."""
    pointer = "/payload" + "".join(f"/{p}" for p in error.absolute_path)
    validator = str(error.validator)
    instance = error.instance
    if validator == "required" and isinstance(instance, dict):
        missing = [n for n in error.validator_value if n not in instance]
        return [InvalidParam(f"{pointer}/{n}", f"verplicht element {n} ontbreekt", "required") for n in missing]
    if validator == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {})) if isinstance(error.schema, dict) else set()
        return [
            InvalidParam(f"{pointer}/{k}", "element is hier niet toegestaan", "unexpected")
            for k in instance
            if k not in known
        ]
    rule = _JSON_RULES.get(validator, "schema")
    if rule == "minInclusive" and isinstance(error.schema, dict) and error.schema.get("x-typeMinimum"):
        rule = "datatype"
    return [InvalidParam(pointer, error.message, rule)]


def _in_schema_order(data: Any, node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The JSON value with every object's keys in XSD sequence order (JSON objects have no order; XML has)."""
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    if isinstance(data, list) and "items" in node:
        return [_in_schema_order(item, node["items"], defs) for item in data]
    if isinstance(data, dict) and "properties" in node:
        props: dict[str, Any] = node["properties"]
        ordered = {k: _in_schema_order(data[k], props[k], defs) for k in props if k in data}
        ordered.update({k: v for k, v in data.items() if k not in props})
        return ordered
    return data


_XML_UNSAFE = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_unsafe_strings(data: Any, pointer: str) -> list[InvalidParam]:
    """JSON pointers of strings with characters XML 1.0 cannot carry (e.g. control characters)."""
    if isinstance(data, str):
        bad = _XML_UNSAFE.search(data)
        return [InvalidParam(pointer, f"teken U+{ord(bad.group()):04X} kan niet in XML", "datatype")] if bad else []
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _xml_unsafe_strings(v, f"{pointer}/{k}")]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _xml_unsafe_strings(v, f"{pointer}/{i}")]
    return []


def _dedupe(params: list[InvalidParam]) -> list[InvalidParam]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in params:
        if (p.name, p.code) not in seen:
            seen.add((p.name, p.code))
            out.append(p)
    return out


def _inline_includes(schema: etree._Element, base: Path, seen: set[Path]) -> None:
    """Replace each xs:include by the content of the schema it names (each file once)."""
    for include in list(schema.iterfind("{%s}include" % XSD_NS)):
        target = (base / include.get("schemaLocation", "")).resolve()
        position = schema.index(include)
        schema.remove(include)
        if target in seen:
            continue
        seen.add(target)
        included = etree.parse(str(target), parser=safe_parser()).getroot()
        _inline_includes(included, target.parent, seen)
        for offset, child in enumerate(c for c in included if isinstance(c.tag, str)):
            schema.insert(position + offset, child)


def _collect_paths(xsd_type: Any, prefix: str, out: dict[str, tuple[int, int | None]], depth: int) -> None:
    if xsd_type.is_simple() or depth > 20:
        return
    for decl in xsd_type.content.iter_elements():
        path = f"{prefix}{etree.QName(decl.name).localname}"
        out[path] = (decl.min_occurs, decl.max_occurs)
        _collect_paths(decl.type, path + "/", out, depth + 1)


def _payload_paths(root: etree._Element) -> list[tuple[str, etree._Element]]:
    out = []
    for node in root.iterdescendants():
        if not isinstance(node.tag, str):
            continue
        steps = []
        cursor: etree._Element | None = node
        while cursor is not None and cursor is not root:
            steps.append(etree.QName(cursor).localname)
            cursor = cursor.getparent()
        out.append(("/".join(reversed(steps)), node))
    return out


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


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
