"""SOAP 1.1 envelopes with WS-Addressing 1.0 headers, and SOAP faults.

Digikoppeling WUS puts the party's OIN in the addresses: ``wsa:To`` is the
service URL with ``?OIN=<receiver>`` and ``wsa:From/wsa:Address`` is
``http://www.w3.org/2005/08/addressing/anonymous?OIN=<sender>``. Message ids
are ``urn:uuid:<uuid>``; an answer carries the question's id in ``wsa:RelatesTo``.

Shape::

    <soap:Envelope>
      <soap:Header>
        <wsa:Action/> <wsa:MessageID/> <wsa:To/> <wsa:From><wsa:Address/></wsa:From>
        <wsa:RelatesTo RelationshipType="..."/>?
      </soap:Header>
      <soap:Body> one element </soap:Body>
    </soap:Envelope>

A fault::

    <soap:Fault>
      <faultcode>wsse:FailedCheck</faultcode> <faultstring xml:lang="nl"/>
      <detail><kp:fout><kp:code>signature_invalid</kp:code><kp:tijdelijk>false</kp:tijdelijk></kp:fout></detail>
    </soap:Fault>
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from lxml import etree

from adapters._digikoppeling.faults import CLIENT, SERVER, SOAP11_NS, WSA_NS, WSSE_NS, AddressingInvalid, FaultCode
from hub.errors import HubError, MalformedInput
from hub.identifiers import IdentifierError, parse_oin

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
REPLY = "http://www.w3.org/2005/08/addressing/reply"
FAULT_NS = "urn:knooppunt:digikoppeling:fout:1"
CONTENT_TYPE = "text/xml; charset=utf-8"

_S = "{%s}" % SOAP11_NS
_A = "{%s}" % WSA_NS
_F = "{%s}" % FAULT_NS


def oin_address(base: str, oin: str) -> str:
    """An address with the party's OIN as the ``OIN`` query parameter."""
    parts = urlsplit(base)
    query = [(k, v) for k, values in parse_qs(parts.query).items() for v in values if k != "OIN"]
    query.append(("OIN", oin))
    return urlunsplit(parts._replace(query=urlencode(query)))


def address_oin(address: str) -> str | None:
    """The OIN in an address's query, or None."""
    values = parse_qs(urlsplit(address).query).get("OIN", [])
    if len(values) != 1:
        return None
    try:
        return parse_oin(values[0])
    except IdentifierError:
        return None


def message_urn(message_id: uuid.UUID) -> str:
    return f"urn:uuid:{message_id}"


def parse_message_urn(value: str) -> uuid.UUID:
    """Read ``urn:uuid:...`` (or a bare UUID).

    Raises:
        AddressingInvalid: not a UUID.
    """
    text = value.strip().removeprefix("urn:uuid:")
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise AddressingInvalid(f"{value!r} is geen urn:uuid-bericht-id") from exc


@dataclass(frozen=True, slots=True)
class Addressing:
    """The WS-Addressing headers of one message."""

    action: str
    message_id: uuid.UUID
    to: str
    from_address: str | None = None
    relates_to: uuid.UUID | None = None
    relationship_type: str | None = None

    @property
    def to_oin(self) -> str | None:
        return address_oin(self.to)

    @property
    def from_oin(self) -> str | None:
        return address_oin(self.from_address) if self.from_address else None


def build_envelope(addressing: Addressing, body_content: etree._Element) -> etree._Element:
    """A SOAP 1.1 envelope with the addressing headers and one body element (copied)."""
    envelope = etree.Element(_S + "Envelope", nsmap={"soap": SOAP11_NS, "wsa": WSA_NS})
    header = etree.SubElement(envelope, _S + "Header")
    etree.SubElement(header, _A + "Action").text = addressing.action
    etree.SubElement(header, _A + "MessageID").text = message_urn(addressing.message_id)
    etree.SubElement(header, _A + "To").text = addressing.to
    if addressing.from_address:
        etree.SubElement(etree.SubElement(header, _A + "From"), _A + "Address").text = addressing.from_address
    if addressing.relates_to:
        relates = etree.SubElement(header, _A + "RelatesTo")
        relates.text = message_urn(addressing.relates_to)
        if addressing.relationship_type:
            relates.set("RelationshipType", addressing.relationship_type)
    body = etree.SubElement(envelope, _S + "Body")
    body.append(etree.fromstring(etree.tostring(body_content)))
    return envelope


def read_addressing(envelope: etree._Element) -> Addressing:
    """The addressing headers; Action, MessageID and To are required.

    Raises:
        AddressingInvalid: a required header is missing, repeated or unreadable.
    """
    header = envelope.find(_S + "Header")
    if header is None:
        raise AddressingInvalid("de SOAP-envelop heeft geen Header met WS-Addressing")

    def single(tag: str, required: bool) -> etree._Element | None:
        found = header.findall(_A + tag)
        if len(found) > 1:
            raise AddressingInvalid(f"wsa:{tag} komt meer dan eens voor")
        if not found and required:
            raise AddressingInvalid(f"wsa:{tag} ontbreekt")
        return found[0] if found else None

    action = single("Action", True)
    message_id = single("MessageID", True)
    to = single("To", True)
    sender = single("From", False)
    relates = single("RelatesTo", False)
    from_address = sender.findtext(_A + "Address") if sender is not None else None
    return Addressing(
        action=(action.text or "").strip() if action is not None else "",
        message_id=parse_message_urn(message_id.text or "") if message_id is not None else uuid.UUID(int=0),
        to=(to.text or "").strip() if to is not None else "",
        from_address=from_address.strip() if from_address else None,
        relates_to=parse_message_urn(relates.text or "") if relates is not None else None,
        relationship_type=relates.get("RelationshipType") if relates is not None else None,
    )


def body_element(envelope: etree._Element) -> etree._Element:
    """The single element in soap:Body.

    Raises:
        MalformedInput: not a SOAP 1.1 envelope, or the Body does not hold exactly one element.
    """
    if envelope.tag != _S + "Envelope":
        raise MalformedInput(f"verwacht een SOAP 1.1-envelop, kreeg {envelope.tag}")
    body = envelope.find(_S + "Body")
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if len(children) != 1:
        raise MalformedInput("de SOAP-Body bevat precies één element")
    return children[0]


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP 1.1 fault as read from an answer."""

    code: FaultCode
    string: str
    detail_code: str | None
    transient: bool


def fault_code_of(error: HubError) -> FaultCode:
    """The faultcode for an error: its own ``fault_code``, else Client (4xx) or Server."""
    own = getattr(error, "fault_code", None)
    if isinstance(own, tuple) and len(own) == 2:
        return (str(own[0]), str(own[1]))
    return CLIENT if error.status < 500 else SERVER


def build_fault(code: FaultCode, string: str, *, detail_code: str, transient: bool = False) -> bytes:
    """A serialised SOAP 1.1 fault envelope."""
    envelope = etree.Element(_S + "Envelope", nsmap={"soap": SOAP11_NS, "kp": FAULT_NS})
    fault = etree.SubElement(etree.SubElement(envelope, _S + "Body"), _S + "Fault")
    namespace, local = code
    prefix = {SOAP11_NS: "soap", WSSE_NS: "wsse", WSA_NS: "wsa"}.get(namespace, "f")
    code_element = etree.SubElement(fault, "faultcode", nsmap=None if namespace == SOAP11_NS else {prefix: namespace})
    code_element.text = f"{prefix}:{local}"
    faultstring = etree.SubElement(fault, "faultstring")
    faultstring.set("{http://www.w3.org/XML/1998/namespace}lang", "nl")
    faultstring.text = string
    holder = etree.SubElement(etree.SubElement(fault, "detail"), _F + "fout")
    etree.SubElement(holder, _F + "code").text = detail_code
    etree.SubElement(holder, _F + "tijdelijk").text = "true" if transient else "false"
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def fault_for(error: HubError) -> bytes:
    """The SOAP fault for a hub error (used by the hub's SOAP endpoint and the simulators)."""
    return build_fault(fault_code_of(error), error.detail, detail_code=error.code, transient=error.status >= 500)


def read_fault(envelope: etree._Element) -> Fault | None:
    """The fault in an answer, or None when the body is no fault."""
    body = envelope.find(_S + "Body")
    fault = body.find(_S + "Fault") if body is not None else None
    if fault is None:
        return None
    raw_code = (fault.findtext("faultcode") or "").strip()
    prefix, _, local = raw_code.rpartition(":")
    code_element = fault.find("faultcode")
    namespace = (code_element.nsmap.get(prefix or None) if code_element is not None else None) or ""
    detail_code = fault.findtext(f"detail/{_F}fout/{_F}code")
    transient_text = fault.findtext(f"detail/{_F}fout/{_F}tijdelijk")
    transient = transient_text == "true" if transient_text is not None else local == "Server"
    return Fault(
        code=(namespace, local),
        string=(fault.findtext("faultstring") or "").strip(),
        detail_code=detail_code.strip() if detail_code else None,
        transient=transient,
    )
