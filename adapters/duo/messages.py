"""The body elements of the DUO link (``contract/duo-wus.xsd``), built and read.

Shapes (namespace ``urn:knooppunt:duo:wus:1``)::

    <Bericht>
      <berichttype/> <versie/> <doelbinding/> <betrokkene type="BSN|INSZ"/> <aangemaaktOp/>
      <gespreksId/>? <traceparent/>? <vervangt/>?
      <inhoud> one element of urn:knooppunt:inburgering:1 </inhoud>
    </Bericht>
    <Ontvangstbevestiging> <berichtId/> <status>ONTVANGEN|DUPLICAAT</status> <referentie/>? <ontvangenOp/> </..>
    <AfstemmingVraag> <periode/> </AfstemmingVraag>
    <AfstemmingAntwoord> <periode/> <ontvangen>Telling</ontvangen> <verzonden>Telling</verzonden> </..>
    Telling: <aantal/> <controlegetal/> <berichtId/>*
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from lxml import etree

from adapters._digikoppeling.reconcile import PeriodSummary
from adapters._digikoppeling.wss import format_time, parse_time
from hub.envelope import Envelope
from hub.errors import MalformedInput, PartnerRejected, ValidationFailed
from hub.identifiers import BSN, INSZ, IdentifierError, parse_subject
from hub.xmlsafe import parser as safe_parser

NS = "urn:knooppunt:duo:wus:1"
INBURGERING_NS = "urn:knooppunt:inburgering:1"
ACTION_PREFIX = "urn:knooppunt:duo:wus:1:"
AFSTEMMING = "afstemming"
CONTRACT_DIR = Path(__file__).parent / "contract"
_D = "{%s}" % NS


def action_for(message_type: str) -> str:
    """The wsa:Action (and SOAPAction) of a message type."""
    return ACTION_PREFIX + message_type


def response_action(action: str) -> str:
    return action + "Response"


def type_of_action(action: str) -> str | None:
    """The message type an Action names, or None for a foreign Action."""
    if not action.startswith(ACTION_PREFIX) or action.endswith("Response"):
        return None
    return action[len(ACTION_PREFIX) :] or None


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(CONTRACT_DIR / "duo-wus.xsd"), parser=safe_parser()))


def validate(element: etree._Element) -> None:
    """Check a body element against ``duo-wus.xsd``.

    Raises:
        ValidationFailed: with every schema error.
    """
    schema = _schema()
    if not schema.validate(element):
        reasons = "; ".join(f"{e.path}: {e.message}" for e in schema.error_log)  # type: ignore[attr-defined]
        raise ValidationFailed(f"het bericht voldoet niet aan duo-wus.xsd: {reasons}")


@dataclass(frozen=True, slots=True)
class Bericht:
    """One message of the link: its envelope fields and the canonical payload element."""

    message_type: str
    version: str
    purpose: str
    subject: INSZ | BSN
    created_at: datetime
    payload: etree._Element
    conversation_id: uuid.UUID | None = None
    traceparent: str | None = None
    replaces: uuid.UUID | None = None

    @classmethod
    def from_envelope(cls, envelope: Envelope, payload: etree._Element, replaces: uuid.UUID | None) -> Bericht:
        if envelope.subject is None:
            raise PartnerRejected("de DUO-koppeling draagt alleen persoonsgebonden berichten (betrokkene ontbreekt)")
        return cls(
            message_type=envelope.type,
            version=envelope.version,
            purpose=envelope.purpose,
            subject=envelope.subject,
            created_at=envelope.created_at,
            payload=payload,
            conversation_id=envelope.conversation_id,
            traceparent=envelope.traceparent,
            replaces=replaces,
        )

    def to_envelope(self, message_id: uuid.UUID, sender: str) -> Envelope:
        """The hub's canonical envelope (receivers are left to the hub's routing)."""
        return Envelope(
            message_id=message_id,
            type=self.message_type,
            version=self.version,
            sender=sender,
            subject=self.subject,
            purpose=self.purpose,
            conversation_id=self.conversation_id,
            traceparent=self.traceparent,
            created_at=self.created_at,
        )

    def to_xml(self) -> etree._Element:
        root = etree.Element(_D + "Bericht", nsmap={"duo": NS})
        etree.SubElement(root, _D + "berichttype").text = self.message_type
        etree.SubElement(root, _D + "versie").text = self.version
        etree.SubElement(root, _D + "doelbinding").text = self.purpose
        subject = etree.SubElement(root, _D + "betrokkene", type="INSZ" if isinstance(self.subject, INSZ) else "BSN")
        subject.text = str(self.subject)
        etree.SubElement(root, _D + "aangemaaktOp").text = format_time(self.created_at)
        if self.conversation_id:
            etree.SubElement(root, _D + "gespreksId").text = str(self.conversation_id)
        if self.traceparent:
            etree.SubElement(root, _D + "traceparent").text = self.traceparent
        if self.replaces:
            etree.SubElement(root, _D + "vervangt").text = str(self.replaces)
        holder = etree.SubElement(root, _D + "inhoud")
        holder.append(etree.fromstring(etree.tostring(self.payload)))
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> Bericht:
        """Read a ``Bericht`` (validated against the contract first).

        Raises:
            ValidationFailed: the element breaks the contract or the betrokkene is no valid BSN/INSZ.
        """
        if element.tag != _D + "Bericht":
            raise MalformedInput(f"verwacht {{{NS}}}Bericht, kreeg {element.tag}")
        validate(element)
        subject_element = element.find(_D + "betrokkene")
        holder = element.find(_D + "inhoud")
        if subject_element is None or holder is None:  # the schema requires both; keeps mypy exact
            raise MalformedInput("betrokkene of inhoud ontbreekt")
        payloads = [c for c in holder if isinstance(c.tag, str)]
        if len(payloads) != 1 or etree.QName(payloads[0]).namespace != INBURGERING_NS:
            raise ValidationFailed(f"inhoud bevat precies één element uit {INBURGERING_NS}")
        try:
            subject = parse_subject(subject_element.get("type", ""), subject_element.text or "")
        except IdentifierError as exc:
            raise ValidationFailed(f"betrokkene: {exc}") from exc
        conversation = element.findtext(_D + "gespreksId")
        replaces = element.findtext(_D + "vervangt")
        return cls(
            message_type=element.findtext(_D + "berichttype") or "",
            version=element.findtext(_D + "versie") or "",
            purpose=element.findtext(_D + "doelbinding") or "",
            subject=subject,
            created_at=parse_time(element.findtext(_D + "aangemaaktOp")),
            payload=payloads[0],
            conversation_id=uuid.UUID(conversation) if conversation else None,
            traceparent=element.findtext(_D + "traceparent"),
            replaces=uuid.UUID(replaces) if replaces else None,
        )


@dataclass(frozen=True, slots=True)
class Ontvangstbevestiging:
    """The receiver's acknowledgement of one Bericht."""

    message_id: uuid.UUID
    status: str
    received_at: datetime
    reference: str | None = None

    def to_xml(self) -> etree._Element:
        root = etree.Element(_D + "Ontvangstbevestiging", nsmap={"duo": NS})
        etree.SubElement(root, _D + "berichtId").text = str(self.message_id)
        etree.SubElement(root, _D + "status").text = self.status
        if self.reference:
            etree.SubElement(root, _D + "referentie").text = self.reference
        etree.SubElement(root, _D + "ontvangenOp").text = format_time(self.received_at)
        return root

    @classmethod
    def from_xml(cls, element: etree._Element) -> Ontvangstbevestiging:
        if element.tag != _D + "Ontvangstbevestiging":
            raise MalformedInput(f"verwacht een Ontvangstbevestiging, kreeg {element.tag}")
        validate(element)
        return cls(
            message_id=uuid.UUID(element.findtext(_D + "berichtId") or ""),
            status=element.findtext(_D + "status") or "",
            received_at=parse_time(element.findtext(_D + "ontvangenOp")),
            reference=element.findtext(_D + "referentie"),
        )


def afstemming_vraag(period: str) -> etree._Element:
    root = etree.Element(_D + "AfstemmingVraag", nsmap={"duo": NS})
    etree.SubElement(root, _D + "periode").text = period
    return root


def read_afstemming_vraag(element: etree._Element) -> str:
    if element.tag != _D + "AfstemmingVraag":
        raise MalformedInput(f"verwacht een AfstemmingVraag, kreeg {element.tag}")
    validate(element)
    return element.findtext(_D + "periode") or ""


def afstemming_antwoord(period: str, received: PeriodSummary, sent: PeriodSummary) -> etree._Element:
    root = etree.Element(_D + "AfstemmingAntwoord", nsmap={"duo": NS})
    etree.SubElement(root, _D + "periode").text = period
    for name, summary in (("ontvangen", received), ("verzonden", sent)):
        telling = etree.SubElement(root, _D + name)
        etree.SubElement(telling, _D + "aantal").text = str(summary.count)
        etree.SubElement(telling, _D + "controlegetal").text = summary.checksum
        for message_id in summary.message_ids:
            etree.SubElement(telling, _D + "berichtId").text = message_id
    return root


def read_afstemming_antwoord(element: etree._Element) -> tuple[PeriodSummary, PeriodSummary]:
    """(received, sent) as the partner counted them."""
    if element.tag != _D + "AfstemmingAntwoord":
        raise MalformedInput(f"verwacht een AfstemmingAntwoord, kreeg {element.tag}")
    validate(element)
    period = element.findtext(_D + "periode") or ""
    result = []
    for name in ("ontvangen", "verzonden"):
        telling = element.find(_D + name)
        if telling is None:
            raise MalformedInput(f"{name} ontbreekt")
        ids = tuple(e.text or "" for e in telling.findall(_D + "berichtId"))
        result.append(
            PeriodSummary(
                period=period,
                count=int(telling.findtext(_D + "aantal") or "0"),
                checksum=telling.findtext(_D + "controlegetal") or "",
                message_ids=ids,
            )
        )
    return result[0], result[1]
