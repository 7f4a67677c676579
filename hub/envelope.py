"""The canonical envelope, and its XML and JSON forms.

XML (namespace ``urn:knooppunt:envelope:1``)::

    <Envelope>
      <header>
        <messageId/> <type/> <version/> <sender/>? <receiver/>*
        <subject type="INSZ|BSN"/> <purpose/> <conversationId/>?
        <traceparent/>? <createdAt/>?
      </header>
      <payload> <one element of the type's namespace/> </payload>
    </Envelope>

JSON: the same header fields in camelCase at the top level, ``receivers`` as a
list, ``subject`` as ``{"type", "id"}`` and ``payload`` as the JSON form of
the payload element (derived from its XSD by :mod:`hub.infomodel`).
"""

from __future__ import annotations

import os
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from hub.errors import ErrorCollector, MalformedInput
from hub.identifiers import BSN, INSZ, IdentifierError, parse_subject

ENV_NS = "urn:knooppunt:envelope:1"
_E = "{%s}" % ENV_NS
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_PARTNER = re.compile(r"^[a-z0-9][a-z0-9\-]{1,62}$")
_TYPE = re.compile(r"^[a-z][a-z0-9\-]{1,62}$")
_VERSION = re.compile(r"^\d{1,3}\.\d{1,3}$")
_PURPOSE = re.compile(r"^[a-z0-9][a-z0-9\-]{1,94}$")


_IDS = random.Random(os.urandom(32))  # noqa: S311 - trace ids must be unique, not secret


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{_IDS.getrandbits(128):032x}-{_IDS.getrandbits(64):016x}-01"


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who sends what about whom to whom, under which protocol."""

    message_id: uuid.UUID
    type: str
    version: str
    sender: str
    subject: INSZ | BSN | None
    purpose: str
    receivers: tuple[str, ...] = ()
    conversation_id: uuid.UUID | None = None
    traceparent: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def subject_type(self) -> str | None:
        """INSZ or BSN; None for an aggregated message, which is about nobody."""
        if self.subject is None:
            return None
        return "INSZ" if isinstance(self.subject, INSZ) else "BSN"

    @property
    def subject_id(self) -> str | None:
        return None if self.subject is None else str(self.subject)

    @property
    def trace_id(self) -> str:
        return self.traceparent.split("-")[1] if self.traceparent else ""

    def evolve(
        self,
        *,
        sender: str | None = None,
        receivers: tuple[str, ...] | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """A copy with the sender, receivers or traceparent the hub settled on.

        Written out rather than ``dataclasses.replace``, which inspects every field on
        each call: the ingest path makes these copies for every message.
        """
        return Envelope(
            self.message_id,
            self.type,
            self.version,
            self.sender if sender is None else sender,
            self.subject,
            self.purpose,
            self.receivers if receivers is None else receivers,
            self.conversation_id,
            self.traceparent if traceparent is None else traceparent,
            self.created_at,
        )


@dataclass(frozen=True, slots=True)
class Message:
    """An envelope with its payload element (validated or not yet)."""

    envelope: Envelope
    payload: etree._Element


def _parse_uuid(value: str, name: str, errors: ErrorCollector) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        errors.add(name, f"{value!r} is geen UUID", "format")
        return None


def _parse_datetime(value: str, name: str, errors: ErrorCollector) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        errors.add(name, f"{value!r} is geen ISO 8601-tijdstip", "format")
        return datetime.now(UTC)
    if parsed.tzinfo is None:
        errors.add(name, "een tijdstip heeft een tijdzone nodig", "format")
        return parsed.replace(tzinfo=UTC)
    return parsed


def _check(pattern: re.Pattern[str], value: Any, name: str, errors: ErrorCollector, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        errors.add(name, f"{value!r} is geen geldige {what}", "format")
        return ""
    return value


def _subject(kind: Any, raw: Any, name: str, errors: ErrorCollector, allow_test: bool) -> INSZ | BSN | None:
    if kind not in ("INSZ", "BSN"):
        errors.add(f"{name}/type", f"{kind!r}: verwacht INSZ of BSN", "enum")
        return None
    if not isinstance(raw, str):
        errors.add(name, "identificatienummer ontbreekt", "required")
        return None
    try:
        return parse_subject(kind, raw, allow_test_numbers=allow_test)
    except IdentifierError as exc:
        errors.add(name, f"ongeldig {kind}: {exc}", "identifier")
        return None


def _build(values: dict[str, Any], errors: ErrorCollector, pointer: dict[str, str], allow_test: bool) -> Envelope:
    """Shared by the XML and JSON readers: check every header field, collect all errors."""
    message_id = _parse_uuid(values.get("messageId", ""), pointer["messageId"], errors)
    mtype = _check(_TYPE, values.get("type"), pointer["type"], errors, "berichttype")
    version = _check(_VERSION, values.get("version"), pointer["version"], errors, "versie (M.m)")
    sender = values.get("sender")
    if sender is not None:
        sender = _check(_PARTNER, sender, pointer["sender"], errors, "partner-id")
    receivers = values.get("receivers") or []
    if not isinstance(receivers, list) or len(receivers) > 64:
        errors.add(pointer["receivers"], "verwacht een lijst van hoogstens 64 partner-ids", "type")
        receivers = []
    checked = tuple(
        r
        if isinstance(r, str) and _PARTNER.match(r)  # as _check, naming the field only when it is wrong
        else _check(_PARTNER, r, f"{pointer['receivers']}/{i}", errors, "partner-id")
        for i, r in enumerate(receivers)
    )
    has_subject = values.get("subjectType") is not None or values.get("subjectId") is not None
    subject = (
        _subject(values.get("subjectType"), values.get("subjectId"), pointer["subject"], errors, allow_test)
        if has_subject
        else None
    )
    purpose = _check(_PURPOSE, values.get("purpose"), pointer["purpose"], errors, "doel (protocol-id)")
    conversation = values.get("conversationId")
    conversation_id = _parse_uuid(conversation, pointer["conversationId"], errors) if conversation else None
    traceparent = values.get("traceparent")
    if traceparent is not None:
        traceparent = _check(_TRACEPARENT, traceparent, pointer["traceparent"], errors, "W3C traceparent")
    created = values.get("createdAt")
    created_at = _parse_datetime(created, pointer["createdAt"], errors) if created else datetime.now(UTC)
    errors.raise_if_any("de envelop van het bericht is ongeldig")
    if message_id is None:  # unreachable after raise_if_any; keeps mypy exact
        raise MalformedInput("envelop onvolledig")
    # positional, in field order: keyword arguments cost more, and every message passes here
    return Envelope(
        message_id,
        mtype,
        version,
        sender or "",
        subject,
        purpose,
        checked,
        conversation_id,
        traceparent or None,
        created_at,
    )


_XML_POINTERS = {
    "messageId": "/Envelope/header/messageId",
    "type": "/Envelope/header/type",
    "version": "/Envelope/header/version",
    "sender": "/Envelope/header/sender",
    "receivers": "/Envelope/header/receiver",
    "subject": "/Envelope/header/subject",
    "purpose": "/Envelope/header/purpose",
    "conversationId": "/Envelope/header/conversationId",
    "traceparent": "/Envelope/header/traceparent",
    "createdAt": "/Envelope/header/createdAt",
}
_JSON_POINTERS = {
    "messageId": "/messageId",
    "type": "/type",
    "version": "/version",
    "sender": "/sender",
    "receivers": "/receivers",
    "subject": "/subject/id",
    "purpose": "/purpose",
    "conversationId": "/conversationId",
    "traceparent": "/traceparent",
    "createdAt": "/createdAt",
}


_ENVELOPE, _HEADER, _PAYLOAD = _E + "Envelope", _E + "header", _E + "payload"
#: header element tag -> field name, for the tags the envelope schema knows
_HEADER_FIELDS = {
    _E + name: name
    for name in (
        "messageId",
        "type",
        "version",
        "sender",
        "receiver",
        "subject",
        "purpose",
        "conversationId",
        "traceparent",
        "createdAt",
    )
}


def from_xml(root: etree._Element, *, allow_test_numbers: bool = False) -> Message:
    """Read a parsed (and envelope-schema-valid) ``Envelope`` element."""
    if root.tag != _ENVELOPE:
        raise MalformedInput(f'verwacht <Envelope xmlns="{ENV_NS}">, kreeg {root.tag}')
    # the first header and the first payload child, as root.find() gives them, in one pass
    header = payload_holder = None
    for child in root:
        tag = child.tag
        if tag == _HEADER:
            if header is None:
                header = child
        elif tag == _PAYLOAD and payload_holder is None:
            payload_holder = child
    if header is None or payload_holder is None or len(payload_holder) != 1:
        raise MalformedInput("een envelop heeft een header en precies één payload-element")
    values: dict[str, Any] = {}
    for child in header:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = _HEADER_FIELDS.get(tag)
        if name is None:
            name = tag[len(_E) :] if tag.startswith(_E) else tag.rpartition("}")[2]
        text = (child.text or "").strip()
        if name == "receiver":
            values.setdefault("receivers", []).append(text)
        elif name == "subject":
            values["subjectType"] = child.get("type")
            values["subjectId"] = text
        else:
            values[name] = text
    envelope = _build(values, ErrorCollector(), _XML_POINTERS, allow_test_numbers)
    return Message(envelope=envelope, payload=payload_holder[0])


def from_json(doc: Any, *, allow_test_numbers: bool = False) -> tuple[Envelope, Any]:
    """Read the JSON form; returns the envelope and the still-unconverted payload."""
    if not isinstance(doc, dict):
        raise MalformedInput("verwacht een JSON-object")
    errors = ErrorCollector()
    subject = doc.get("subject")
    if subject is None:
        subject = {}  # an aggregated message is about nobody; the hub checks that per type
    elif not isinstance(subject, dict):
        errors.add("/subject", 'verwacht {"type": "INSZ|BSN", "id": "..."}', "type")
        subject = {}
    if "payload" not in doc:
        errors.add("/payload", "de payload ontbreekt", "required")
    values = {k: v for k, v in doc.items() if k not in ("subject", "payload")}
    values["subjectType"] = subject.get("type")
    values["subjectId"] = subject.get("id")
    # _build raises with the errors above and its own together, so the caller hears all at once
    envelope = _build(values, errors, _JSON_POINTERS, allow_test_numbers)
    return envelope, doc["payload"]


def header_to_json(envelope: Envelope) -> dict[str, Any]:
    """The JSON header fields (without payload)."""
    out: dict[str, Any] = {
        "messageId": str(envelope.message_id),
        "type": envelope.type,
        "version": envelope.version,
        "sender": envelope.sender,
        "receivers": list(envelope.receivers),
        "subject": {"type": envelope.subject_type, "id": envelope.subject_id} if envelope.subject else None,
        "purpose": envelope.purpose,
        "createdAt": envelope.created_at.isoformat(),
    }
    if envelope.conversation_id:
        out["conversationId"] = str(envelope.conversation_id)
    if envelope.traceparent:
        out["traceparent"] = envelope.traceparent
    return out


def to_xml(envelope: Envelope, payload: etree._Element) -> bytes:
    """Serialise envelope and payload as the canonical XML form."""
    root = etree.Element(_E + "Envelope", nsmap={None: ENV_NS})  # type: ignore[dict-item]
    header = etree.SubElement(root, _E + "header")
    etree.SubElement(header, _E + "messageId").text = str(envelope.message_id)
    etree.SubElement(header, _E + "type").text = envelope.type
    etree.SubElement(header, _E + "version").text = envelope.version
    if envelope.sender:
        etree.SubElement(header, _E + "sender").text = envelope.sender
    for receiver in envelope.receivers:
        etree.SubElement(header, _E + "receiver").text = receiver
    if envelope.subject is not None:
        subject = etree.SubElement(header, _E + "subject", type=envelope.subject_type or "")
        subject.text = str(envelope.subject)
    etree.SubElement(header, _E + "purpose").text = envelope.purpose
    if envelope.conversation_id:
        etree.SubElement(header, _E + "conversationId").text = str(envelope.conversation_id)
    if envelope.traceparent:
        etree.SubElement(header, _E + "traceparent").text = envelope.traceparent
    etree.SubElement(header, _E + "createdAt").text = envelope.created_at.isoformat()
    holder = etree.SubElement(root, _E + "payload")
    holder.append(_copy(payload))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _copy(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))
