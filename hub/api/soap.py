"""The SOAP 1.1 face of the send operation, with the WSDL the hub publishes.

Request body (document/literal)::

    <soap:Envelope><soap:Body>
      <env:Envelope xmlns:env="urn:knooppunt:envelope:1"> header + payload </env:Envelope>
    </soap:Body></soap:Envelope>

Answer: ``<ks:Accepted>`` with messageId, status, receiver*, receivedAt, and for a person-bound
message ``forwarding`` (forwarded, notForwarded reason/count, reason).

The same endpoint answers the lookups ``<ks:ZoekPersoon>`` and
``<ks:ZoekInschrijvingen>`` (insz, purpose, van?, tot?) with ``<ks:Opvraging>``
(found, bron, waarschuwing*, data: the canonical answer as plain XML).
Errors: a SOAP fault whose detail carries MAGDA-style ``Uitzonderingen``
(Identificatie, Oorsprong, Type FOUT, Diagnose), one per invalid field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from lxml import etree

from hub import xmlsafe
from hub.api.deps import authenticate_request, get_hub, read_body
from hub.envelope import ENV_NS, from_xml
from hub.errors import HubError, MalformedInput, NotAllowed, PartnerError, RateLimited
from hub.partners import Partner
from hub.service import Hub

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
KS_NS = "urn:knooppunt:soap:1"
_S = "{%s}" % SOAP_NS
_K = "{%s}" % KS_NS

router = APIRouter(tags=["soap"], include_in_schema=False)


def wsdl(public_url: str, schemas_dir: Path) -> bytes:
    """The WSDL, with the envelope schema inlined so a client needs no second fetch."""
    envelope_xsd = etree.parse(
        str(schemas_dir / "envelope" / "1.0" / "envelope.xsd"), parser=xmlsafe.parser()
    ).getroot()
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:env="{ENV_NS}" xmlns:ks="{KS_NS}"
    targetNamespace="{KS_NS}" name="Knooppunt">
  <wsdl:types>
    <xs:schema targetNamespace="{KS_NS}" elementFormDefault="qualified">
      <xs:element name="Accepted">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="messageId" type="xs:string"/>
            <xs:element name="status" type="xs:string"/>
            <xs:element name="receiver" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>
            <xs:element name="receivedAt" type="xs:dateTime"/>
            <xs:element name="forwarding" minOccurs="0">
              <xs:annotation><xs:documentation>Person-bound messages: forwarded to how many followers,
                and why others were not (reference directory).</xs:documentation></xs:annotation>
              <xs:complexType>
                <xs:sequence>
                  <xs:element name="forwarded" type="xs:int"/>
                  <xs:element name="notForwarded" minOccurs="0" maxOccurs="unbounded">
                    <xs:complexType>
                      <xs:sequence>
                        <xs:element name="reason" type="xs:string"/>
                        <xs:element name="count" type="xs:int"/>
                      </xs:sequence>
                    </xs:complexType>
                  </xs:element>
                  <xs:element name="reason" type="xs:string" minOccurs="0"/>
                </xs:sequence>
              </xs:complexType>
            </xs:element>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="ZoekPersoon">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="insz" type="xs:string"/>
            <xs:element name="purpose" type="xs:string"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="ZoekInschrijvingen">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="insz" type="xs:string"/>
            <xs:element name="purpose" type="xs:string"/>
            <xs:element name="van" type="xs:date" minOccurs="0"/>
            <xs:element name="tot" type="xs:date" minOccurs="0"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="Opvraging">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="found" type="xs:boolean"/>
            <xs:element name="bron" type="xs:string"/>
            <xs:element name="waarschuwing" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>
            <xs:element name="data">
              <xs:complexType>
                <xs:sequence>
                  <xs:any namespace="##any" processContents="skip" minOccurs="0" maxOccurs="unbounded"/>
                </xs:sequence>
              </xs:complexType>
            </xs:element>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="Uitzonderingen">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="Uitzondering" maxOccurs="unbounded">
              <xs:complexType>
                <xs:sequence>
                  <xs:element name="Identificatie" type="xs:string"/>
                  <xs:element name="Oorsprong" type="xs:string"/>
                  <xs:element name="Type" type="xs:string"/>
                  <xs:element name="Diagnose" type="xs:string"/>
                </xs:sequence>
              </xs:complexType>
            </xs:element>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
    </xs:schema>
  </wsdl:types>
  <wsdl:message name="SendRequest"><wsdl:part name="body" element="env:Envelope"/></wsdl:message>
  <wsdl:message name="SendResponse"><wsdl:part name="body" element="ks:Accepted"/></wsdl:message>
  <wsdl:message name="Fault"><wsdl:part name="detail" element="ks:Uitzonderingen"/></wsdl:message>
  <wsdl:message name="ZoekPersoonRequest"><wsdl:part name="body" element="ks:ZoekPersoon"/></wsdl:message>
  <wsdl:message name="ZoekInschrijvingenRequest"><wsdl:part name="body" element="ks:ZoekInschrijvingen"/></wsdl:message>
  <wsdl:message name="OpvragingResponse"><wsdl:part name="body" element="ks:Opvraging"/></wsdl:message>
  <wsdl:portType name="BerichtenPortType">
    <wsdl:operation name="Send">
      <wsdl:input message="ks:SendRequest"/>
      <wsdl:output message="ks:SendResponse"/>
      <wsdl:fault name="Uitzonderingen" message="ks:Fault"/>
    </wsdl:operation>
    <wsdl:operation name="ZoekPersoon">
      <wsdl:input message="ks:ZoekPersoonRequest"/>
      <wsdl:output message="ks:OpvragingResponse"/>
      <wsdl:fault name="Uitzonderingen" message="ks:Fault"/>
    </wsdl:operation>
    <wsdl:operation name="ZoekInschrijvingen">
      <wsdl:input message="ks:ZoekInschrijvingenRequest"/>
      <wsdl:output message="ks:OpvragingResponse"/>
      <wsdl:fault name="Uitzonderingen" message="ks:Fault"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="BerichtenBinding" type="ks:BerichtenPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="Send">
      <soap:operation soapAction="urn:knooppunt:soap:1#Send"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
      <wsdl:fault name="Uitzonderingen"><soap:fault name="Uitzonderingen" use="literal"/></wsdl:fault>
    </wsdl:operation>
    <wsdl:operation name="ZoekPersoon">
      <soap:operation soapAction="urn:knooppunt:soap:1#ZoekPersoon"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
      <wsdl:fault name="Uitzonderingen"><soap:fault name="Uitzonderingen" use="literal"/></wsdl:fault>
    </wsdl:operation>
    <wsdl:operation name="ZoekInschrijvingen">
      <soap:operation soapAction="urn:knooppunt:soap:1#ZoekInschrijvingen"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
      <wsdl:fault name="Uitzonderingen"><soap:fault name="Uitzonderingen" use="literal"/></wsdl:fault>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="BerichtenService">
    <wsdl:port name="BerichtenPort" binding="ks:BerichtenBinding">
      <soap:address location="{public_url.rstrip("/")}/soap/berichten"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""
    doc = etree.fromstring(text.encode(), parser=xmlsafe.parser())
    types = doc.find("{http://schemas.xmlsoap.org/wsdl/}types")
    if types is None:
        raise MalformedInput("WSDL template lacks wsdl:types")
    types.insert(0, envelope_xsd)
    etree.indent(doc, space="  ")
    return bytes(etree.tostring(doc, xml_declaration=True, encoding="UTF-8"))


def fault(exc: HubError) -> Response:
    """A SOAP 1.1 fault with MAGDA-style Uitzonderingen in its detail."""
    root = etree.Element(_S + "Envelope", nsmap={"soap": SOAP_NS})
    body = etree.SubElement(root, _S + "Body")
    f = etree.SubElement(body, _S + "Fault")
    etree.SubElement(f, "faultcode").text = "soap:Client" if exc.status < 500 else "soap:Server"
    etree.SubElement(f, "faultstring").text = exc.detail
    detail = etree.SubElement(f, "detail")
    holder = etree.SubElement(detail, _K + "Uitzonderingen", nsmap={"ks": KS_NS})
    entries = [(exc.code, exc.detail)] + [(p.code, f"{p.name}: {p.reason}") for p in exc.invalid_params]
    for code, diagnose in entries:
        u = etree.SubElement(holder, _K + "Uitzondering")
        etree.SubElement(u, _K + "Identificatie").text = code
        etree.SubElement(u, _K + "Oorsprong").text = "knooppunt"
        etree.SubElement(u, _K + "Type").text = "FOUT"
        etree.SubElement(u, _K + "Diagnose").text = diagnose
    status = 500 if exc.status >= 500 or exc.status < 400 else exc.status
    # SOAP 1.1 over HTTP answers faults with 500; keep 401/413/415/429 visible to HTTP clients.
    http_status = status if status in (401, 413, 415, 429) else 500
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return Response(
        etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
        status_code=http_status,
        media_type="text/xml; charset=utf-8",
        headers=headers,
    )


@router.get("/soap/berichten")
async def get_wsdl(request: Request) -> Response:
    hub = get_hub(request)
    # the address is where the client reached us, so a WSDL fetched through any host name works
    return Response(wsdl(str(request.base_url), hub.settings.schemas_dir), media_type="text/xml; charset=utf-8")


def _soap(answer: etree._Element) -> Response:
    root = etree.Element(_S + "Envelope", nsmap={"soap": SOAP_NS})
    etree.SubElement(root, _S + "Body").append(answer)
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), media_type="text/xml; charset=utf-8")


def _to_xml(parent: etree._Element, name: str, value: Any) -> None:
    """Canonical JSON as plain XML: objects become elements, lists repeat their element."""
    if isinstance(value, list):
        for item in value:
            _to_xml(parent, name, item)
        return
    child = etree.SubElement(parent, name)
    if isinstance(value, dict):
        for key, inner in value.items():
            _to_xml(child, key, inner)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = str(value)


async def _lookup(hub: Hub, caller: Partner, element: etree._Element) -> Response:
    kind = "persoon" if element.tag == _K + "ZoekPersoon" else "inschrijvingen"
    fields = {etree.QName(c).localname: (c.text or "").strip() for c in element if isinstance(c.tag, str)}
    params = {k: fields[k] for k in ("van", "tot") if fields.get(k)}
    answer = await hub.lookup(
        caller.ref, kind, fields.get("insz", ""), purpose=fields.get("purpose", ""), params=params
    )
    out = etree.Element(_K + "Opvraging", nsmap={"ks": KS_NS})
    etree.SubElement(out, _K + "found").text = "true" if answer["found"] else "false"
    etree.SubElement(out, _K + "bron").text = answer["bron"]
    for warning in answer["waarschuwingen"]:
        etree.SubElement(out, _K + "waarschuwing").text = warning
    data = etree.SubElement(out, _K + "data")
    for key, value in answer["data"].items():
        _to_xml(data, key, value)
    return _soap(out)


@router.post("/soap/berichten")
async def soap_send(request: Request) -> Response:
    """One SOAP endpoint: Send (an envelope), ZoekPersoon and ZoekInschrijvingen."""
    hub = get_hub(request)
    caller: Partner | None = None
    try:
        caller = await authenticate_request(request)
        body = await read_body(request, hub.settings.max_body_bytes)
        root = xmlsafe.parse(body, max_bytes=hub.settings.max_body_bytes, max_depth=hub.settings.max_xml_depth)
        soap_body = root.find(_S + "Body") if root.tag == _S + "Envelope" else None
        if soap_body is None or len(soap_body) != 1:
            raise MalformedInput("verwacht een SOAP 1.1-envelop met één element in de Body")
        inner = soap_body[0]
        soap_body.remove(inner)  # detached, so error paths read /Envelope/payload/..., as over REST
        if inner.tag in (_K + "ZoekPersoon", _K + "ZoekInschrijvingen"):
            return await _lookup(hub, caller, inner)
        hub.infomodel.validate_envelope(inner)
        message = from_xml(inner, allow_test_numbers=hub.settings.insz_test_numbers)
    except HubError as exc:
        if caller is not None and not isinstance(exc, PartnerError | NotAllowed):
            await hub.refuse_unparsed(caller, exc, "soap")
        return fault(exc)
    try:
        accepted = await hub.accept(caller, message, channel="soap")
    except HubError as exc:
        return fault(exc)
    answer = etree.Element(_K + "Accepted", nsmap={"ks": KS_NS})
    etree.SubElement(answer, _K + "messageId").text = accepted.message_id
    etree.SubElement(answer, _K + "status").text = "accepted"
    for receiver in accepted.receivers:
        etree.SubElement(answer, _K + "receiver").text = receiver
    etree.SubElement(answer, _K + "receivedAt").text = accepted.received_at.isoformat()
    if accepted.forwarding is not None:
        forwarding = etree.SubElement(answer, _K + "forwarding")
        etree.SubElement(forwarding, _K + "forwarded").text = str(len(accepted.forwarding.receivers))
        for reason, count in sorted(accepted.forwarding.not_forwarded.items()):
            item = etree.SubElement(forwarding, _K + "notForwarded")
            etree.SubElement(item, _K + "reason").text = reason
            etree.SubElement(item, _K + "count").text = str(count)
        if accepted.forwarding.reason:
            etree.SubElement(forwarding, _K + "reason").text = accepted.forwarding.reason
    return _soap(answer)
