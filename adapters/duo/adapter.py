"""The DuoAdapter: see the package docstring (:mod:`adapters.duo`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

import httpx
from lxml import etree

from adapters._digikoppeling import config as cfg
from adapters._digikoppeling import soap
from adapters._digikoppeling.faults import UnknownCorrelation, WsSecurityFault
from adapters._digikoppeling.reconcile import PeriodSummary, check_period
from adapters._digikoppeling.reliability import Correlator, RetryPolicy, next_attempt
from adapters.duo.link import DEFAULT_CORRECTION_TYPES, InboundMessage, IsKnown, WusLink
from adapters.duo.messages import (
    AFSTEMMING,
    Bericht,
    Ontvangstbevestiging,
    action_for,
    afstemming_vraag,
    read_afstemming_antwoord,
)
from hub import xmlsafe
from hub.errors import HubError, InputError, PartnerRejected, PartnerUnavailable
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

_TRANSIENT_STATUS = frozenset({408, 425, 429, 502, 503, 504})
DEFAULT_INBOUND_TYPES = ("inburgeringsplicht", "correctiesignaal")


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
        self.replaces_element = cfg.text(config, "replaces_element", "vervangtBericht")
        self.inbound_types: Collection[str] = cfg.strings(config, "inbound_types", DEFAULT_INBOUND_TYPES)
        self.correction_types: Collection[str] = cfg.strings(config, "correction_types", DEFAULT_CORRECTION_TYPES)
        self.verify_responses = config.get("verify_responses", True) is not False
        self.retry_policy = RetryPolicy.from_config(config)
        self.correlator = Correlator(ttl=self.retry_policy.window)

    # -- outbound ---------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Send one message to DUO; every attempt reuses the message id, so DUO eliminates duplicates.

        Raises:
            PartnerUnavailable: DUO unreachable, slow, 5xx/503, a transient fault, or an answer we cannot trust.
            PartnerRejected: DUO refused the message (a Client or WS-Security fault, a 4xx).
        """
        envelope = delivery.envelope
        try:
            payload = xmlsafe.parse(delivery.payload_xml, max_bytes=self.link.max_message_bytes)
        except InputError as exc:
            raise PartnerRejected(f"de payload voor DUO is onleesbaar: {exc.detail}") from exc
        replaces = self._replaces(payload)
        if envelope.type in self.correction_types and replaces is None:
            raise PartnerRejected(f"een {envelope.type} moet <{self.replaces_element}> met het bericht-id bevatten")
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
            raise PartnerUnavailable(
                f"DUO antwoordde met iets anders dan een ontvangstbevestiging: {exc.detail}"
            ) from exc
        if ack.message_id != envelope.message_id:
            raise PartnerUnavailable(f"DUO bevestigde {ack.message_id}, niet {envelope.message_id}")
        return DeliveryReceipt(partner_reference=ack.reference, detail=ack.status)

    def _replaces(self, payload: etree._Element) -> uuid.UUID | None:
        for child in payload:
            if isinstance(child.tag, str) and etree.QName(child).localname == self.replaces_element:
                try:
                    return uuid.UUID((child.text or "").strip())
                except ValueError as exc:
                    raise PartnerRejected(f"<{self.replaces_element}> is geen bericht-id (UUID)") from exc
        return None

    async def _exchange(self, action: str, message_id: uuid.UUID, body: bytes) -> etree._Element:
        """POST a signed request; return the verified answer's body element or raise the mapped error."""
        self.correlator.ask(message_id, action)
        try:
            return await self._post(action, message_id, body)
        except HubError:
            self.correlator.discard(message_id)
            raise

    async def _post(self, action: str, message_id: uuid.UUID, body: bytes) -> etree._Element:
        try:
            response = await self._http.post(
                self.endpoint_url,
                content=body,
                headers={"Content-Type": soap.CONTENT_TYPE, "SOAPAction": f'"{action}"'},
                timeout=self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise PartnerUnavailable(f"DUO antwoordde niet binnen {self.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise PartnerUnavailable(f"DUO is niet bereikbaar: {type(exc).__name__}") from exc
        envelope = self._answer_envelope(response)
        fault = soap.read_fault(envelope)
        if fault is not None:
            text = f"DUO gaf een SOAP-fout {fault.code[1]} ({fault.detail_code or '-'}): {fault.string}"
            if fault.transient or fault.code[1] == "MessageExpired":
                # a retry re-signs with a fresh Timestamp, so an expired one is worth another try
                raise PartnerUnavailable(text)
            raise PartnerRejected(text)
        if response.status_code != 200:
            raise PartnerUnavailable(f"DUO antwoordde HTTP {response.status_code} zonder SOAP-fout")
        if self.verify_responses:
            try:
                received = self.link.receive(response.content)
            except HubError as exc:
                raise PartnerUnavailable(f"het antwoord van DUO is niet te vertrouwen: {exc.detail}") from exc
            addressing, answer = received.addressing, received.body
        else:
            addressing, answer = soap.read_addressing(envelope), soap.body_element(envelope)
        try:
            self.correlator.check(addressing.relates_to, message_id)
        except UnknownCorrelation as exc:
            raise PartnerUnavailable(exc.detail) from exc
        return answer

    def _answer_envelope(self, response: httpx.Response) -> etree._Element:
        status = response.status_code
        if status in _TRANSIENT_STATUS:
            raise PartnerUnavailable(f"DUO is tijdelijk niet beschikbaar (HTTP {status})")
        if "xml" not in response.headers.get("content-type", ""):
            if 400 <= status < 500:
                raise PartnerRejected(f"DUO weigerde het bericht (HTTP {status})")
            raise PartnerUnavailable(f"DUO antwoordde HTTP {status} zonder SOAP-envelop")
        try:
            return self.link.parse(response.content)
        except InputError as exc:
            raise PartnerUnavailable(f"het antwoord van DUO is onleesbaar: {exc.detail}") from exc

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
            raise PartnerUnavailable(f"DUO gaf geen leesbare afstemming: {exc.detail}") from exc

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

    @staticmethod
    def fault(error: HubError) -> tuple[int, bytes]:
        """HTTP status and SOAP fault body for an error (500 per SOAP 1.1; 503 when transient)."""
        status = 503 if error.status == 503 else 500
        return status, soap.fault_for(error)

    @staticmethod
    def is_security_fault(error: HubError) -> bool:
        """Whether an error is a WS-Security refusal (to audit as such)."""
        return isinstance(error, WsSecurityFault)
