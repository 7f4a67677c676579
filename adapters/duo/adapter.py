"""The DuoAdapter: see the package docstring (:mod:`adapters.duo`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime

import httpx
from lxml import etree

from adapters._digikoppeling import config as cfg
from adapters._digikoppeling import soap
from adapters._digikoppeling.faults import SOAP11_NS, UnknownCorrelation, WsSecurityFault
from adapters._digikoppeling.reconcile import PeriodSummary, check_period
from adapters._digikoppeling.reliability import Correlator, RetryPolicy, next_attempt
from adapters._digikoppeling.transfer import TRANSIENT_STATUS, Answer, clean, exchange
from adapters.duo.link import DEFAULT_CORRECTION_TYPES, InboundMessage, IsKnown, WusLink, payload_replaces
from adapters.duo.messages import (
    AFSTEMMING,
    Bericht,
    Ontvangstbevestiging,
    action_for,
    afstemming_antwoord,
    afstemming_vraag,
    read_afstemming_antwoord,
    read_afstemming_vraag,
    type_of_action,
)
from hub import xmlsafe
from hub.errors import HubError, InputError, PartnerRejected, PartnerUnavailable, ValidationFailed
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

DEFAULT_INBOUND_TYPES = ("inburgeringsplicht", "correctiesignaal")


Accept = Callable[[InboundMessage], Awaitable[tuple[bool, str | None]]]
"""The hub takes an inbound message durably: returns (was it a duplicate, the hub's reference)."""
Counts = Callable[[str], Awaitable[tuple[Mapping[str, str], Mapping[str, str]]]]
"""The hub's (received, sent) with DUO in a period, each as {message id: message type}."""
Refused = Callable[[HubError], Awaitable[None]]
"""Told about every refused inbound message (to audit it)."""


class DuoAdapter:
    """Delivers canonical messages to DUO as signed WUS messages, and verifies what DUO sends in."""

    capabilities = Capabilities(deliver=True, lookups=frozenset(), notifications=False, formats=frozenset({"xml"}))

    def __init__(self, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> None:
        self.partner_id = partner_id
        self._http = http
        self.endpoint_url = cfg.text(config, "endpoint_url")
        self.partner_oin = cfg.oin(config, "partner_oin")
        self.link = WusLink.from_config(config, partner_oin=self.partner_oin)
        self.timeout = cfg.number(config, "timeout_seconds", 30)
        self.replaces_element = self.link.replaces_element
        self.inbound_types: Collection[str] = cfg.strings(config, "inbound_types", DEFAULT_INBOUND_TYPES)
        self.correction_types: Collection[str] = cfg.strings(config, "correction_types", DEFAULT_CORRECTION_TYPES)
        self.verify_responses = config.get("verify_responses", True) is not False
        self.retry_policy = RetryPolicy.from_config(config)
        self.correlator = Correlator(ttl=self.retry_policy.window)

    # -- outbound ---------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Send one message to DUO; every attempt reuses the message id, so DUO eliminates duplicates.

        Raises:
            PartnerUnavailable: DUO unreachable, slow, 503 or 5xx without fault, a transient fault, MessageExpired.
            PartnerRejected: DUO refused the message (a Client or WS-Security fault, a 4xx), or answered
                with something hostile, unreadable, unsigned, wrongly signed or about another message.
        """
        envelope = delivery.envelope
        try:
            payload = xmlsafe.parse(delivery.payload_xml, max_bytes=self.link.max_message_bytes)
        except InputError as exc:
            raise PartnerRejected(f"de payload voor DUO is onleesbaar: {exc.detail}") from exc
        replaces = self._replaces(payload)
        if envelope.type in self.correction_types and replaces is None:
            raise PartnerRejected(
                f"een {envelope.type} moet element {self.replaces_element} met het bericht-id bevatten"
            )
        bericht = Bericht.from_envelope(envelope, payload, replaces)
        body = self.link.request(
            action=action_for(envelope.type),
            message_id=envelope.message_id,
            to_url=self.endpoint_url,
            to_oin=self.partner_oin,
            body=bericht.to_xml(),
        )
        answer = await self._exchange(action_for(envelope.type), envelope.message_id, body)
        try:
            ack = Ontvangstbevestiging.from_xml(answer)
        except HubError as exc:
            raise PartnerRejected(f"DUO antwoordde met iets anders dan een ontvangstbevestiging ({exc.code})") from exc
        if ack.message_id != envelope.message_id:
            raise PartnerRejected(f"DUO bevestigde {ack.message_id}, niet {envelope.message_id}")
        return DeliveryReceipt(partner_reference=ack.reference, detail=ack.status)

    def _replaces(self, payload: etree._Element) -> uuid.UUID | None:
        try:
            return payload_replaces(payload, self.replaces_element)
        except ValidationFailed as exc:
            raise PartnerRejected(exc.detail) from exc

    async def _exchange(self, action: str, message_id: uuid.UUID, body: bytes) -> etree._Element:
        """POST a signed request; return the verified answer's body element or raise the mapped error."""
        self.correlator.ask(message_id, action)
        try:
            return await self._post(action, message_id, body)
        except HubError:
            self.correlator.discard(message_id)
            raise

    async def _post(self, action: str, message_id: uuid.UUID, body: bytes) -> etree._Element:
        answer = await exchange(
            self._http,
            "POST",
            self.endpoint_url,
            partner="DUO",
            timeout=self.timeout,
            max_bytes=self.link.max_message_bytes,
            content=body,
            headers={"Content-Type": soap.CONTENT_TYPE, "SOAPAction": f'"{action}"'},
        )
        envelope = self._answer_envelope(answer)
        fault = soap.read_fault(envelope)
        if fault is not None:
            code, detail_code = clean(fault.code[1]), clean(fault.detail_code or "-")
            text = f"DUO gaf een SOAP-fout {code} ({detail_code}): {clean(fault.string)}"
            if fault.transient or fault.code[1] == "MessageExpired":
                # a retry re-signs with a fresh Timestamp, so an expired one is worth another try
                raise PartnerUnavailable(text)
            raise PartnerRejected(text)
        if answer.status != 200:
            error = PartnerRejected if 400 <= answer.status < 500 else PartnerUnavailable
            raise error(f"DUO antwoordde HTTP {answer.status} zonder SOAP-fout")
        if self.verify_responses:
            try:
                received = self.link.receive(answer.content)
            except HubError as exc:
                raise PartnerRejected(f"het antwoord van DUO is niet te vertrouwen ({exc.code})") from exc
            addressing, element = received.addressing, received.body
        else:
            try:
                addressing, element = soap.read_addressing(envelope), soap.body_element(envelope)
            except HubError as exc:
                raise PartnerRejected(f"het antwoord van DUO is geen geldig WUS-bericht ({exc.code})") from exc
        try:
            self.correlator.check(addressing.relates_to, message_id)
        except UnknownCorrelation as exc:
            raise PartnerRejected(exc.detail) from exc
        return element

    def _answer_envelope(self, answer: Answer) -> etree._Element:
        """The SOAP envelope of an answer; transient statuses first, then a hardened parse.

        Raises:
            PartnerUnavailable: 408/425/429/5xx without a SOAP envelope.
            PartnerRejected: a 4xx, or a body that is no safe, readable SOAP 1.1 envelope.
        """
        if answer.status in TRANSIENT_STATUS and ("xml" not in answer.content_type or answer.status == 503):
            raise PartnerUnavailable(f"DUO is tijdelijk niet beschikbaar (HTTP {answer.status})")
        if "xml" not in answer.content_type:
            raise PartnerRejected(f"DUO antwoordde HTTP {answer.status} zonder SOAP-envelop")
        try:
            envelope = self.link.parse(answer.content)
        except InputError as exc:
            raise PartnerRejected(f"het antwoord van DUO is onleesbaar of onveilig ({exc.code})") from exc
        if envelope.tag != "{%s}Envelope" % SOAP11_NS:
            raise PartnerRejected("het antwoord van DUO is geen SOAP 1.1-envelop")
        return envelope

    async def reconcile(self, period: str) -> tuple[PeriodSummary, PeriodSummary]:
        """Ask DUO what it received and sent in a period (``YYYY-MM`` or ``YYYY-MM-DD``): (received, sent).

        Raises:
            PartnerUnavailable / PartnerRejected: as :meth:`deliver`.
        """
        check_period(period)
        message_id = uuid.uuid4()
        body = self.link.request(
            action=action_for(AFSTEMMING),
            message_id=message_id,
            to_url=self.endpoint_url,
            to_oin=self.partner_oin,
            body=afstemming_vraag(period),
        )
        answer = await self._exchange(action_for(AFSTEMMING), message_id, body)
        try:
            return read_afstemming_antwoord(answer)
        except HubError as exc:
            raise PartnerRejected(f"DUO gaf geen leesbare afstemming ({exc.code})") from exc

    def next_attempt(self, attempts_made: int, first_attempt_at: datetime, now: datetime) -> datetime | None:
        """When the hub should try this partner again, or None when its retry window is over."""
        return next_attempt(attempts_made, first_attempt_at, self.retry_policy, now)

    async def lookup(self, request: LookupRequest) -> LookupResult:
        """DUO answers no synchronous questions on this link."""
        raise PartnerRejected(f"DUO biedt geen bevraging {request.kind!r} aan")

    async def health(self) -> HealthStatus:
        """A signed Afstemming for today: proves reachability, both signatures and the clocks."""
        not_after = self.link.identity.certificate.not_valid_after_utc
        facts: dict[str, JSON] = {
            "endpoint": self.endpoint_url,
            "oin": self.link.own_oin,
            "partner_oin": self.partner_oin,
            "certificate_not_after": not_after.isoformat(),
        }
        if not_after <= datetime.now(UTC):
            return HealthStatus(ok=False, detail="het eigen certificaat is verlopen", facts=facts)
        try:
            await self.reconcile(datetime.now(UTC).date().isoformat())
        except HubError as exc:
            return HealthStatus(ok=False, detail=exc.detail, facts=facts)
        return HealthStatus(ok=True, detail="DUO antwoordt ondertekend", facts=facts)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""

    # -- inbound (the hub's SOAP endpoint for DUO) -----------------------------------------------

    async def receive(self, body: bytes, *, is_known: IsKnown) -> InboundMessage:
        """Verify and read a message DUO sent in (signature, timestamp, OIN, addressing, correction).

        Args:
            body: the raw HTTP request body.
            is_known: whether the hub accepted a message with this id (a correction must replace one).

        Raises:
            WsSecurityFault and subclasses, AddressingInvalid, UnknownAction, UnknownSignal,
            ValidationFailed, MalformedInput, PayloadTooLarge: render each with :meth:`fault`.
        """
        return await self.link.receive_bericht(
            body, accepted_types=self.inbound_types, is_known=is_known, sender_partner=self.partner_id
        )

    def acknowledge(self, inbound: InboundMessage, *, duplicate: bool = False, reference: str | None = None) -> bytes:
        """The signed Ontvangstbevestiging to answer DUO with (HTTP 200, text/xml)."""
        ack = Ontvangstbevestiging(
            message_id=inbound.addressing.message_id,
            status="DUPLICAAT" if duplicate else "ONTVANGEN",
            received_at=datetime.now(UTC),
            reference=reference,
        )
        return self.link.answer(inbound.addressing, inbound.signer_oin, ack.to_xml())

    async def handle(
        self,
        body: bytes,
        *,
        is_known: IsKnown,
        accept: Accept,
        counts: Counts | None = None,
        refused: Refused | None = None,
    ) -> tuple[int, bytes]:
        """The whole WUS endpoint for what DUO sends in: returns (HTTP status, text/xml body).

        Verifies the message, then for a Bericht calls ``accept`` (the hub stores it durably and
        says whether it was a duplicate and its reference) and answers with a signed
        Ontvangstbevestiging; for an Afstemming it calls ``counts(period)`` and answers with the
        hub's counts. Every refusal is passed to ``refused`` (to audit it) and answered with its
        SOAP fault; nothing is accepted then.

        Args:
            body: the raw HTTP request body (already capped by the caller).
            is_known: whether the hub accepted a message with this id (a correction must replace one).
            accept: ``async (InboundMessage) -> (duplicate, reference)``; raise a HubError to refuse.
            counts: ``async (period) -> (received, sent)``, each ``{message id: type}`` of the period.
            refused: ``async (error) -> None``, called before a fault is returned.
        """
        try:
            received = self.link.receive(body)
            if type_of_action(received.addressing.action) == AFSTEMMING and counts is not None:
                period = check_period(read_afstemming_vraag(received.body))
                ours_received, ours_sent = await counts(period)
                answer = afstemming_antwoord(
                    period,
                    PeriodSummary.of(period, ours_received.items()),
                    PeriodSummary.of(period, ours_sent.items()),
                )
                return 200, self.link.answer(received.addressing, received.sender.oin, answer)
            inbound = await self.link.read_bericht(
                received, accepted_types=self.inbound_types, is_known=is_known, sender_partner=self.partner_id
            )
            duplicate, reference = await accept(inbound)
        except HubError as exc:
            if refused is not None:
                await refused(exc)
            return self.fault(exc)
        return 200, self.acknowledge(inbound, duplicate=duplicate, reference=reference)

    @staticmethod
    def fault(error: HubError) -> tuple[int, bytes]:
        """HTTP status and SOAP fault body for an error (500 per SOAP 1.1; 503 when transient)."""
        status = 503 if error.status == 503 else 500
        return status, soap.fault_for(error)

    @staticmethod
    def is_security_fault(error: HubError) -> bool:
        """Whether an error is a WS-Security refusal (to audit as such)."""
        return isinstance(error, WsSecurityFault)
