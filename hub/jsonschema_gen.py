"""JSON Schema (draft 2020-12) of a message type, generated from its XSD.

The JSON form of a payload is what xmlschema's default converter makes of the
XML (``InfoModel.xml_to_json``): the root element's content as an object, one
key per child element (local name), a list for every element that may occur
more than once, booleans and integers as JSON values, dates as strings. This
module walks the same compiled XSD components and states exactly that shape,
so the JSON Schema is never maintained by hand and cannot drift from the XSD.

Mapping::

    xs:sequence            object, properties in order, "required" for minOccurs >= 1
    xs:choice              all alternatives as properties, plus "anyOf"/"not" rules
    maxOccurs > 1          array with minItems/maxItems
    named types            "$defs" and "$ref"
    enumeration, pattern,  enum, pattern (anchored), minLength, maxLength,
    length and value facets  minimum, maximum
    fixed                  const
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from hub.errors import ConfigurationError

XSD_NS = "http://www.w3.org/2001/XMLSchema"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

_INTEGER_MINIMUM = {
    "nonNegativeInteger": 0,
    "positiveInteger": 1,
    "unsignedInt": 0,
    "unsignedLong": 0,
    "unsignedShort": 0,
    "unsignedByte": 0,
}
_INTEGERS = {"integer", "int", "long", "short", "byte", *_INTEGER_MINIMUM}
_FORMATS = {"date": "date", "dateTime": "date-time", "time": "time", "anyURI": "uri"}

JsonSchema = dict[str, Any]


def _local(name: str | None) -> str:
    return (name or "").rsplit("}", 1)[-1]


class _Generator:
    """One generation run: collects the named types it meets in ``$defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, JsonSchema] = {}

    # -- simple types -----------------------------------------------------------

    def simple(self, xsd_type: Any) -> JsonSchema:
        if xsd_type.is_global() and not _is_builtin(xsd_type):
            name = _local(xsd_type.name)
            if name not in self.defs:
                self.defs[name] = {}  # placeholder against recursion
                self.defs[name] = self._simple_body(xsd_type)
            return {"$ref": f"#/$defs/{name}"}
        return self._simple_body(xsd_type)

    def _simple_body(self, xsd_type: Any) -> JsonSchema:
        chain = []
        node = xsd_type
        while node is not None and not _is_builtin(node):
            chain.append(node)
            node = getattr(node, "base_type", None)
        if node is None:
            raise ConfigurationError(f"simple type {xsd_type.name} has no built-in base")
        builtin = _local(node.name)
        out: JsonSchema = _builtin(builtin)
        patterns: list[str] = []
        for level in reversed(chain):  # base first, so a derived facet overrides
            if level.enumeration:
                out["enum"] = [_typed(builtin, v) for v in level.enumeration]
            if level.patterns:
                patterns.append("^(?:" + ")$|^(?:".join(level.patterns.regexps) + ")$")
            for qname, facet in level.facets.items():
                key = _local(qname)
                if key in {"minLength", "maxLength"}:
                    out[key] = int(facet.value)
                elif key == "length":
                    out["minLength"] = out["maxLength"] = int(facet.value)
                elif key == "minInclusive":
                    out["minimum"] = _typed(builtin, facet.value)
                    out.pop("x-typeMinimum", None)
                elif key == "maxInclusive":
                    out["maximum"] = _typed(builtin, facet.value)
        if len(patterns) == 1:
            out["pattern"] = patterns[0]
        elif patterns:
            out["allOf"] = [{"pattern": p} for p in patterns]
        doc = _documentation(xsd_type)
        if doc:
            out["description"] = doc
        return out

    # -- elements and groups ----------------------------------------------------

    def element(self, element: Any) -> JsonSchema:
        """The JSON form of one element's value (not wrapped in its name)."""
        xsd_type = element.type
        if xsd_type.is_simple():
            schema = self.simple(xsd_type)
        elif xsd_type.has_simple_content() or xsd_type.attributes:
            raise ConfigurationError(f"element {element.name}: attributes and simple content are not in the model")
        elif xsd_type.is_global():
            name = _local(xsd_type.name)
            if name not in self.defs:
                self.defs[name] = {}
                self.defs[name] = self.complex(xsd_type)
            schema = {"$ref": f"#/$defs/{name}"}
        else:
            schema = self.complex(xsd_type)
        if element.fixed is not None:
            schema = {**schema, "const": _typed(_builtin_name(xsd_type), element.fixed)}
        doc = _documentation(element)
        if doc:
            schema = {**schema, "description": doc}
        return schema

    def complex(self, xsd_type: Any) -> JsonSchema:
        out: JsonSchema = {"type": "object", "properties": {}, "additionalProperties": False}
        required: list[str] = []
        rules: list[JsonSchema] = []
        self._group(xsd_type.content, out["properties"], required, rules, optional=False)
        if required:
            out["required"] = required
        if rules:
            out["allOf"] = rules
        doc = _documentation(xsd_type)
        if doc:
            out["description"] = doc
        return out

    def _group(
        self,
        group: Any,
        properties: dict[str, JsonSchema],
        required: list[str],
        rules: list[JsonSchema],
        *,
        optional: bool,
    ) -> None:
        if group.model == "choice":
            names: list[str] = []
            for particle in group:
                if hasattr(particle, "model"):
                    raise ConfigurationError("nested groups inside a choice are not in the model")
                names.append(self._particle(particle, properties))
            if group.min_occurs >= 1 and not optional:
                rules.append({"anyOf": [{"required": [n]} for n in names]})
            rules.extend({"not": {"required": list(pair)}} for pair in combinations(names, 2))
            return
        for particle in group:
            if hasattr(particle, "model"):
                self._group(particle, properties, required, rules, optional=optional or particle.min_occurs == 0)
                continue
            name = self._particle(particle, properties)
            if particle.min_occurs >= 1 and not optional:
                required.append(name)

    def _particle(self, element: Any, properties: dict[str, JsonSchema]) -> str:
        name = _local(element.name)
        schema = self.element(element)
        if element.max_occurs is None or element.max_occurs > 1:
            array: JsonSchema = {"type": "array", "items": schema}
            if element.min_occurs > 0:
                array["minItems"] = element.min_occurs
            if element.max_occurs is not None:
                array["maxItems"] = element.max_occurs
            schema = array
        properties[name] = schema
        return name


def _is_builtin(xsd_type: Any) -> bool:
    return bool(xsd_type.name) and str(xsd_type.name).startswith("{%s}" % XSD_NS)


def _builtin_name(xsd_type: Any) -> str:
    node = xsd_type
    while node is not None and not _is_builtin(node):
        node = getattr(node, "base_type", None)
    return _local(node.name) if node is not None else "string"


def _builtin(name: str) -> JsonSchema:
    if name == "boolean":
        return {"type": "boolean"}
    if name in _INTEGERS:
        out: JsonSchema = {"type": "integer"}
        if name in _INTEGER_MINIMUM:
            out["minimum"] = _INTEGER_MINIMUM[name]
            out["x-typeMinimum"] = True  # the bound is the XSD type's, reported as 'datatype'
        return out
    if name in {"decimal", "float", "double"}:
        return {"type": "number"}
    out = {"type": "string"}
    if name in _FORMATS:
        out["format"] = _FORMATS[name]
    return out


def _typed(builtin: str, value: Any) -> Any:
    if builtin in _INTEGERS:
        return int(value)
    if builtin == "boolean":
        return str(value).strip() in {"true", "1"}
    return str(value)


def _documentation(component: Any) -> str:
    annotation = getattr(component, "annotation", None)
    if annotation is None:
        return ""
    return " ".join(str(d.text or "").strip() for d in annotation.documentation).strip()


def message_json_schema(root: Any, *, schema_id: str, title: str) -> JsonSchema:
    """The JSON Schema of a message type's JSON form, from its compiled root element.

    Args:
        root: the xmlschema ``XsdElement`` of the type's root element.
        schema_id: the ``$id`` to publish (the URL partners fetch it from).
        title: human title of the type.
    """
    gen = _Generator()
    body = gen.complex(root.type) if not root.type.is_simple() else gen.simple(root.type)
    out: JsonSchema = {"$schema": DIALECT, "$id": schema_id, "title": title}
    out.update(body)
    if gen.defs:
        out["$defs"] = dict(sorted(gen.defs.items()))
    return out
