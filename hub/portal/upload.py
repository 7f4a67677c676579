"""Uploads: a CSV of one message type, or an XML batch, turned into messages.

Every row goes through :meth:`hub.service.Hub.accept`, exactly like a message
sent to the API (same validation, protocols, routing, audit; channel
``portal``). A row that fails changes nothing but the "refused" audit record
the API would also write. Each row's message id is a UUIDv5 over the sender,
the type and the row's content, so uploading the same file again, or the
same file with a few rows fixed, never sends a row twice.

Whole-file problems (not CSV or XML, unknown columns, too many rows) refuse
the upload before any row is sent.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from hub import envelope as env
from hub import xmlsafe
from hub.errors import HubError, InvalidParam
from hub.identifiers import BSN, INSZ
from hub.infomodel import MessageType
from hub.partners import Partner
from hub.portal.columns import Column, build_payload, column_of, columns_for
from hub.protocols import Protocol
from hub.service import Hub

#: the namespace of portal row ids (uuid5)
ENVELOPE = "{%s}Envelope" % env.ENV_NS
ROW_NAMESPACE = uuid.UUID("6f1d3c5e-8a47-5b0e-9c1d-4b6e8f2a9d10")
CONCURRENCY = 32


class UploadRefused(Exception):
    """The file as a whole cannot be processed; the reason is shown to the user as is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Problem:
    field: str
    reason: str


@dataclass
class Row:
    """One row (CSV) or one element (XML batch), before and after sending."""

    number: int
    mtype: MessageType | None
    payload: etree._Element | None
    columns: list[Column]
    problems: list[Problem] = field(default_factory=list)
    status: str = "pending"
    message_id: str | None = None
    receivers: tuple[str, ...] = ()
    message: env.Message | None = None  # a whole envelope from an XML batch: sent with its own header

    def as_json(self) -> dict[str, Any]:
        return {
            "row": self.number,
            "type": self.mtype.name if self.mtype else None,
            "status": self.status,
            "messageId": self.message_id,
            "receivers": list(self.receivers),
            "problems": [{"field": p.field, "reason": p.reason} for p in self.problems],
        }


# -- what a partner may upload ---------------------------------------------------------------


def protocol_for(hub: Hub, partner: Partner, type_name: str) -> Protocol | None:
    """The protocol under which this partner sends this type (the first that allows it)."""
    for protocol in sorted(hub.protocols.all(), key=lambda p: p.id):
        if type_name in protocol.message_types and protocol.allows_sender(partner.ref):
            return protocol
    return None


def sendable_types(hub: Hub, partner: Partner) -> list[tuple[MessageType, Protocol]]:
    """The message types this partner may send, newest version of each, with their protocol."""
    out: dict[str, tuple[MessageType, Protocol]] = {}
    for mtype in hub.infomodel.types():
        protocol = protocol_for(hub, partner, mtype.name)
        if protocol is not None:
            out[mtype.name] = (mtype, protocol)  # types() is sorted by version: the last one wins
    return [out[k] for k in sorted(out)]


def type_columns(hub: Hub, partner: Partner, mtype: MessageType) -> list[Column]:
    protocol = protocol_for(hub, partner, mtype.name)
    return columns_for(hub.infomodel, mtype, protocol.fields if protocol else ())


# -- reading the file ---------------------------------------------------------------------------


def sniff_kind(data: bytes) -> str:
    """'xml' or 'csv', from the content (never from the file name or content type)."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if data.startswith(b"PK\x03\x04"):
        raise UploadRefused(
            "dit is een Excel- of zip-bestand. Sla het werkblad op als 'CSV UTF-8 (door komma's gescheiden)' "
            "en upload dat bestand."
        )
    if b"\x00" in data[:65536]:
        raise UploadRefused("dit bestand is geen tekst (CSV of XML); upload een CSV- of XML-bestand.")
    return "xml" if head.startswith(b"<") else "csv"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel in Dutch saves "CSV (gescheiden door lijstscheidingsteken)" as Windows-1252
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise UploadRefused("de tekens in dit bestand zijn onleesbaar; sla het op als CSV UTF-8.") from exc


def read_csv(data: bytes, mtype: MessageType, columns: list[Column], *, max_rows: int) -> list[Row]:
    """CSV rows -> payload elements; the header names the columns (any order, ; or , separated)."""
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = max(";,\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as exc:
        raise UploadRefused("het bestand is leeg.") from exc
    except csv.Error as exc:
        raise UploadRefused(f"de kopregel is geen geldige CSV: {exc}") from exc
    known = {c.name for c in columns}
    unknown = [h for h in header if h and h not in known]
    if unknown:
        raise UploadRefused(
            f"onbekende kolom(men) voor {mtype.title}: {', '.join(unknown[:10])}. "
            "Gebruik de kolomnamen uit het sjabloon."
        )
    if not any(h in known for h in header):
        raise UploadRefused("de eerste regel moet de kolomnamen uit het sjabloon bevatten.")
    rows: list[Row] = []
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= max_rows:
                raise UploadRefused(
                    f"het bestand heeft meer dan {max_rows} rijen; splits het in kleinere bestanden. "
                    "Er is niets verstuurd."
                )
            row = Row(number, mtype, None, columns)
            if len(cells) > len(header):
                row.problems.append(Problem("", f"deze rij heeft {len(cells)} cellen, de kopregel {len(header)}"))
            else:
                values = {h: v for h, v in zip(header, cells, strict=False) if h}
                row.payload = build_payload(mtype, columns, values)
            rows.append(row)
    except csv.Error as exc:
        raise UploadRefused(f"regel {reader.line_num} is geen geldige CSV: {exc}") from exc
    if not rows:
        raise UploadRefused("het bestand bevat geen rijen onder de kopregel.")
    return rows


def read_xml_batch(hub: Hub, partner: Partner, data: bytes, *, max_rows: int) -> list[Row]:
    """An XML batch: payload elements of the info model, or whole envelopes, as children of any root.

    A single payload element or envelope as the root is a batch of one. A payload
    gets its header from the portal (like a CSV row); an envelope keeps its own
    (message id, purpose, receivers).
    """
    try:
        root = xmlsafe.parse(data, max_bytes=len(data) + 1, max_depth=hub.settings.max_xml_depth)
    except HubError as exc:
        raise UploadRefused(f"de XML is niet leesbaar: {exc.detail}") from exc
    by_qname = {mt.qname: mt for mt, _ in sendable_types(hub, partner)}
    single = root.tag in by_qname or root.tag == ENVELOPE
    children = [root] if single else [c for c in root if isinstance(c.tag, str)]
    if len(children) > max_rows:
        raise UploadRefused(f"de batch heeft meer dan {max_rows} berichten; splits hem op. Er is niets verstuurd.")
    rows: list[Row] = []
    for number, child in enumerate(children, start=1):
        if child.tag == ENVELOPE:
            rows.append(_envelope_row(hub, partner, number, child))
            continue
        mtype = by_qname.get(child.tag)
        if mtype is None:
            row = Row(number, None, None, [])
            name = etree.QName(child).localname
            row.problems.append(
                Problem(name, "dit berichttype kan uw organisatie niet versturen (of het bestaat niet)")
            )
        else:
            row = Row(number, mtype, child, type_columns(hub, partner, mtype))
        rows.append(row)
    if not rows:
        raise UploadRefused("de XML-batch bevat geen berichten.")
    return rows


def _envelope_row(hub: Hub, partner: Partner, number: int, element: etree._Element) -> Row:
    try:
        hub.infomodel.validate_envelope(element)
        message = env.from_xml(element, allow_test_numbers=hub.settings.insz_test_numbers)
        mtype = hub.infomodel.get(message.envelope.type, message.envelope.version)
    except HubError as exc:
        row = Row(number, None, None, [])
        row.problems.extend(problems_of(exc, []))
        return row
    return Row(number, mtype, message.payload, type_columns(hub, partner, mtype), message=message)


# -- sending -------------------------------------------------------------------------------------


def row_message_id(partner_id: str, mtype: MessageType, purpose: str, payload: etree._Element) -> str:
    """The same row content from the same sender always gets the same message id."""
    canonical = etree.tostring(payload, method="c14n")
    digest = hashlib.sha256(canonical).hexdigest()
    return str(uuid.uuid5(ROW_NAMESPACE, f"{partner_id}|{mtype.name}|{mtype.version}|{purpose}|{digest}"))


async def send_rows(
    hub: Hub, partner: Partner, rows: list[Row], progress: Callable[[int], Awaitable[None]] | None = None
) -> None:
    """Send every buildable row through ``hub.accept``; record per row what happened."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def one(row: Row) -> None:
        nonlocal done
        async with semaphore:
            await _send(hub, partner, row)
            done += 1
            if progress is not None and done % 50 == 0:
                await progress(done)

    await asyncio.gather(*(one(r) for r in rows))
    if progress is not None:
        await progress(done)


async def _send(hub: Hub, partner: Partner, row: Row) -> None:
    if row.problems or row.payload is None or row.mtype is None:
        row.status = "refused"
        return
    if row.message is not None:
        await _accept(hub, partner, row, row.message)
        return
    mtype, payload = row.mtype, row.payload
    protocol = protocol_for(hub, partner, mtype.name)
    if protocol is None:
        row.problems.append(Problem("", "uw organisatie mag dit berichttype niet versturen"))
        row.status = "refused"
        return
    found = hub.infomodel.subject_of(mtype, payload)
    subject: INSZ | BSN = BSN("")
    if found is not None:
        subject = INSZ(found[1]) if found[0] == "INSZ" else BSN(found[1])
    message_id = row_message_id(partner.id, mtype, protocol.id, payload)
    envelope = env.Envelope(
        message_id=uuid.UUID(message_id),
        type=mtype.name,
        version=mtype.version,
        sender=partner.id,
        subject=subject,
        purpose=protocol.id,
    )
    await _accept(hub, partner, row, env.Message(envelope, payload))


async def _accept(hub: Hub, partner: Partner, row: Row, message: env.Message) -> None:
    try:
        accepted = await hub.accept(partner, message, channel="portal", pointer="xpath")
    except HubError as exc:
        row.status = "refused"
        row.problems.extend(problems_of(exc, row.columns))
        return
    row.message_id = accepted.message_id
    row.receivers = accepted.receivers
    row.status = "duplicate" if accepted.duplicate else "sent"


# -- errors in plain Dutch ---------------------------------------------------------------------

_MISSING = re.compile(r"Missing child element\(s\)\. Expected is (?:one of )?\( ([^)]*) \)")
# a required element left out before one that is present: libxml2 blames the one present
_UNEXPECTED = re.compile(r"This element is not expected\. Expected is (?:one of )?\( ([^)]*) \)")
_ENUM = re.compile(r"\[facet 'enumeration'\].*?set \{([^}]*)\}")
_MAXLEN = re.compile(r"\[facet 'maxLength'\].*?length of '(\d+)'")
_QUOTED = re.compile(r"'[^']*'")


def plain_dutch(reason: str, column: Column | None) -> str:
    """An XSD or protocol message in words a municipal clerk can act on (no values echoed)."""
    if "[facet 'pattern']" in reason:
        return "heeft niet de juiste vorm" + (f": {column.hint()}" if column else "")
    m = _ENUM.search(reason)
    if m:
        return "kies een van: " + ", ".join(v.strip().strip("'") for v in m.group(1).split(","))
    m = _MAXLEN.search(reason)
    if m:
        return f"te lang: hoogstens {m.group(1)} tekens"
    if "[facet 'minLength']" in reason:
        return "mag niet leeg zijn"
    if "xs:date" in reason:
        return "geen geldige datum; schrijf JJJJ-MM-DD, bijvoorbeeld 2026-03-31"
    if "xs:boolean" in reason:
        return "vul ja of nee in"
    if "Integer" in reason or "xs:integer" in reason or "xs:decimal" in reason:
        return "geen geldig geheel getal"
    if "This element is not expected" in reason:
        return "dit veld hoort hier niet, of staat op de verkeerde plaats"
    if "niet toegestaan" in reason:
        return "dit veld mag uw organisatie niet versturen onder dit protocol (dataminimalisatie); laat het leeg"
    if "[facet" in reason or "not a valid value" in reason or "not accepted" in reason:
        return "ongeldige waarde" + (f": {column.hint()}" if column else "")
    return _QUOTED.sub("…", reason)


def problems_of(exc: HubError, columns: list[Column]) -> list[Problem]:
    """The invalid params of a refusal, each mapped to the CSV column it concerns."""
    by_name = {c.name: c for c in columns}
    out: list[Problem] = []
    for param in exc.invalid_params or [InvalidParam("", exc.detail)]:
        name = param.name
        if name.startswith("/"):
            name = column_of(name, columns)
        elif "/" in name:
            name = name.replace("/", ".")
        if param.code == "required" and name:
            # the information model already names the missing field itself
            out.append(Problem(name, "verplicht veld is leeg"))
            continue
        missing = _MISSING.search(param.reason)
        unexpected = _UNEXPECTED.search(param.reason)
        if unexpected:
            # the expected sibling is the one that is missing
            parts = name.split(".")
            if parts and parts[-1].isdigit():
                parts.pop()
            missing, name = unexpected, ".".join(parts[:-1])
        if missing:
            for expected in missing.group(1).split(","):
                child = expected.strip().split(":")[-1]
                target = f"{name}.{child}" if name else child
                if target not in by_name and f"{target}.1" in by_name:
                    target += ".1"
                out.append(Problem(target, "verplicht veld is leeg"))
            continue
        if name in ("subject", "sender", "receivers", "routing", "type", "purpose"):
            out.append(Problem("", _QUOTED.sub("…", exc.detail) + (f" ({param.reason})" if param.reason else "")))
            continue
        out.append(Problem(name, plain_dutch(param.reason, by_name.get(name))))
    return out
