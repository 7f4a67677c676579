"""One side of the DUO WUS link: sign what it sends, verify what it receives.

Used by :class:`adapters.duo.DuoAdapter` (the knooppunt's side) and by the DUO
simulator (DUO's side): both build requests and answers the same way and
refuse the same bad input with the same faults.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from lxml import etree

from adapters._digikoppeling import config as cfg
from adapters._digikoppeling import soap
from adapters._digikoppeling.faults import AddressingInvalid, UnknownAction, UnknownSignal
from adapters._digikoppeling.wss import (
    SigningIdentity,
    VerifiedSender,
    WssVerifier,
    load_certificates,
    sign_envelope,
)
from adapters.duo.messages import Bericht, action_for, response_action, type_of_action
from hub import xmlsafe
from hub.envelope import Message
from hub.errors import ConfigurationError, ValidationFailed
from hub.ports import JSON

IsKnown = Callable[[uuid.UUID], bool | Awaitable[bool]]
"""Does the receiver hold an accepted message with this id? (for corrections)"""

DEFAULT_CORRECTION_TYPES = ("correctiesignaal", "pip-wijziging")


@dataclass(frozen=True, slots=True)
class Received:
    """A verified SOAP message: who signed it, its addressing and its body element."""

    sender: VerifiedSender
    addressing: soap.Addressing
    body: etree._Element


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A verified Bericht, ready for the hub: the canonical message and the link facts."""

    message: Message
    bericht: Bericht
    addressing: soap.Addressing
    signer_oin: str

    @property
    def replaces(self) -> uuid.UUID | None:
        return self.bericht.replaces


def payload_replaces(payload: etree._Element, element: str) -> uuid.UUID | None:
    """The message id a payload says it replaces (a direct child named ``element``), or None.

    Raises:
        ValidationFailed: the child is there but holds no UUID.
    """
    for child in payload:
        if isinstance(child.tag, str) and etree.QName(child).localname == element:
            try:
                return uuid.UUID((child.text or "").strip())
            except ValueError as exc:
                raise ValidationFailed(f"{element} is geen bericht-id (UUID)") from exc
    return None


class WusLink:
    """Signing identity, verifier and addressing of one party on the link.

    Args:
        identity: this party's key and certificate.
        verifier: accepts the other party's signatures.
        own_oin: this party's OIN (wsa:From of what it sends; wsa:To of what it accepts).
        timestamp_ttl: lifetime of the Timestamps it writes.
        max_message_bytes: cap on what it parses.
        correction_types: types that must name the message they replace (``vervangt``).
    """

    def __init__(
        self,
        identity: SigningIdentity,
        verifier: WssVerifier,
        *,
        own_oin: str,
        timestamp_ttl: timedelta = timedelta(minutes=5),
        max_message_bytes: int = 5_000_000,
        correction_types: Collection[str] = DEFAULT_CORRECTION_TYPES,
        replaces_element: str = "vervangtBericht",
    ) -> None:
        if identity.oin != own_oin:
            raise ConfigurationError(f"het certificaat draagt OIN {identity.oin}, geconfigureerd is {own_oin}")
        self.identity = identity
        self.verifier = verifier
        self.own_oin = own_oin
        self.timestamp_ttl = timestamp_ttl
        self.max_message_bytes = max_message_bytes
        self.correction_types = frozenset(correction_types)
        self.replaces_element = replaces_element

    @classmethod
    def from_config(cls, config: Mapping[str, JSON], *, partner_oin: str) -> WusLink:
        """Build from ``oin``, ``key_file``, ``cert_file``, ``ca_file``, ``trusted_oins``,
        ``timestamp_ttl_seconds``, ``clock_skew_seconds``, ``max_message_bytes``, ``correction_types``."""
        identity = SigningIdentity.from_pem_files(cfg.text(config, "key_file"), cfg.text(config, "cert_file"))
        trusted = cfg.strings(config, "trusted_oins", [partner_oin])
        verifier = WssVerifier(
            load_certificates(cfg.text(config, "ca_file")),
            trusted,
            clock_skew=timedelta(seconds=cfg.number(config, "clock_skew_seconds", 60)),
        )
        return cls(
            identity,
            verifier,
            own_oin=cfg.oin(config, "oin"),
            timestamp_ttl=timedelta(seconds=cfg.number(config, "timestamp_ttl_seconds", 300)),
            max_message_bytes=int(cfg.number(config, "max_message_bytes", 5_000_000)),
            correction_types=cfg.strings(config, "correction_types", DEFAULT_CORRECTION_TYPES),
            replaces_element=cfg.text(config, "replaces_element", "vervangtBericht"),
        )

    def request(self, *, action: str, message_id: uuid.UUID, to_url: str, to_oin: str, body: etree._Element) -> bytes:
        """A signed request to the other party."""
        addressing = soap.Addressing(
            action=action,
            message_id=message_id,
            to=soap.oin_address(to_url, to_oin),
            from_address=soap.oin_address(soap.ANONYMOUS, self.own_oin),
        )
        return self._signed(addressing, body)

    def answer(self, question: soap.Addressing, requester_oin: str, body: etree._Element) -> bytes:
        """A signed answer that relates to ``question``."""
        addressing = soap.Addressing(
            action=response_action(question.action),
            message_id=uuid.uuid4(),
            to=soap.oin_address(soap.ANONYMOUS, requester_oin),
            from_address=soap.oin_address(soap.ANONYMOUS, self.own_oin),
            relates_to=question.message_id,
            relationship_type=soap.REPLY,
        )
        return self._signed(addressing, body)

    def _signed(self, addressing: soap.Addressing, body: etree._Element) -> bytes:
        envelope = soap.build_envelope(addressing, body)
        sign_envelope(envelope, self.identity, ttl=self.timestamp_ttl)
        return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))

    def parse(self, raw: bytes) -> etree._Element:
        """Parse with the hub's hardened parser and this link's size cap."""
        return xmlsafe.parse(raw, max_bytes=self.max_message_bytes)

    def receive(self, raw: bytes) -> Received:
        """Verify a signed message addressed to this party.

        Raises:
            WsSecurityFault: (and its subclasses) signature, certificate, OIN or timestamp refused.
            AddressingInvalid: addressing headers missing, not for this OIN, or From ≠ signer.
            MalformedInput / PayloadTooLarge: not a readable SOAP envelope.
        """
        envelope = self.parse(raw)
        sender = self.verifier.verify(envelope)
        addressing = soap.read_addressing(envelope)
        if addressing.to_oin != self.own_oin:
            raise AddressingInvalid(f"wsa:To is niet voor OIN {self.own_oin}")
        if addressing.from_address is not None and addressing.from_oin != sender.oin:
            raise AddressingInvalid("het OIN in wsa:From is niet dat van de ondertekenaar")
        return Received(sender=sender, addressing=addressing, body=soap.body_element(envelope))

    async def receive_bericht(
        self, raw: bytes, *, accepted_types: Collection[str], is_known: IsKnown, sender_partner: str
    ) -> InboundMessage:
        """Verify (:meth:`receive`) and read (:meth:`read_bericht`) a Bericht."""
        return await self.read_bericht(
            self.receive(raw), accepted_types=accepted_types, is_known=is_known, sender_partner=sender_partner
        )

    async def read_bericht(
        self, received: Received, *, accepted_types: Collection[str], is_known: IsKnown, sender_partner: str
    ) -> InboundMessage:
        """Read a verified Bericht; a correction must name a message the receiver accepted.

        Raises:
            UnknownAction: the Action names no accepted type, or does not match the berichttype.
            UnknownSignal: ``vervangt`` names a message id ``is_known`` does not know.
            ValidationFailed: the body breaks duo-wus.xsd, or a correction type lacks ``vervangt``.
        """
        message_type = type_of_action(received.addressing.action)
        if message_type is None or message_type not in accepted_types:
            raise UnknownAction(f"actie {received.addressing.action!r} wordt hier niet aangeboden")
        bericht = Bericht.from_xml(received.body)
        if bericht.message_type != message_type or action_for(bericht.message_type) != received.addressing.action:
            raise UnknownAction(f"wsa:Action {received.addressing.action!r} past niet bij berichttype")
        named = payload_replaces(bericht.payload, self.replaces_element)
        if named is not None and bericht.replaces is not None and named != bericht.replaces:
            raise ValidationFailed(f"vervangt ({bericht.replaces}) en {self.replaces_element} ({named}) verschillen")
        if named is not None and bericht.replaces is None:
            bericht = replace(bericht, replaces=named)
        if bericht.message_type in self.correction_types and bericht.replaces is None:
            raise ValidationFailed(f"een {bericht.message_type} noemt het bericht dat het vervangt (vervangt)")
        if bericht.replaces is not None:
            known = is_known(bericht.replaces)
            if inspect.isawaitable(known):
                known = await known
            if not known:
                raise UnknownSignal(f"het te vervangen bericht {bericht.replaces} is niet bekend")
        envelope = bericht.to_envelope(received.addressing.message_id, sender_partner)
        return InboundMessage(
            message=Message(envelope=envelope, payload=bericht.payload),
            bericht=bericht,
            addressing=received.addressing,
            signer_oin=received.sender.oin,
        )
