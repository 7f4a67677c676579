"""The CoaAdapter: see the package docstring (:mod:`adapters.coa`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from adapters._digikoppeling import config as cfg
from adapters._digikoppeling.reconcile import PeriodSummary, check_period
from adapters._digikoppeling.reliability import RetryPolicy, next_attempt
from adapters._digikoppeling.transfer import TRANSIENT_STATUS, Answer, clean, exchange
from hub.envelope import header_to_json
from hub.errors import HubError, InputError, PartnerRejected, PartnerUnavailable
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

OIN_HEADER = "X-OIN"
TRANSACTION_HEADER = "X-Transaction-Id"


class CoaAdapter:
    """Delivers canonical JSON messages to COA's REST API (e.g. the municipality's confirmation of a klantprofiel)."""

    capabilities = Capabilities(deliver=True, lookups=frozenset(), formats=frozenset({"json"}))

    def __init__(self, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> None:
        self.partner_id = partner_id
        self._http = http
        self.base_url = cfg.text(config, "base_url").rstrip("/")
        self.oin = cfg.oin(config, "oin")
        self.partner_oin = cfg.oin(config, "partner_oin")
        token = config.get("token")
        self.token = token if isinstance(token, str) and token else None
        self.timeout = cfg.number(config, "timeout_seconds", 30)
        self.max_answer_bytes = int(cfg.number(config, "max_message_bytes", 5_000_000))
        self.retry_policy = RetryPolicy.from_config(config)

    def _headers(self, transaction_id: str | None = None) -> dict[str, str]:
        headers = {OIN_HEADER: self.oin, "Accept": "application/json, application/problem+json"}
        if transaction_id:
            headers[TRANSACTION_HEADER] = transaction_id
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """POST the message's JSON form to ``/berichten``; a resend uses the same transaction id.

        Raises:
            PartnerUnavailable: COA unreachable, slow, 408/425/429/5xx.
            PartnerRejected: no JSON payload, or COA refused the message (other 4xx).
        """
        if delivery.payload_json is None:
            raise PartnerRejected("COA neemt alleen JSON aan: de levering heeft geen payload_json")
        envelope = delivery.envelope
        doc: dict[str, Any] = dict(header_to_json(envelope))
        doc["payload"] = dict(delivery.payload_json)
        headers = self._headers(str(envelope.message_id))
        headers["Content-Type"] = "application/json"
        if envelope.traceparent:
            headers["traceparent"] = envelope.traceparent
        response = await self._call("POST", "/berichten", content=orjson.dumps(doc), headers=headers)
        if response.status not in (200, 201):
            raise PartnerRejected(f"COA antwoordde onverwacht HTTP {response.status}")
        answer = self._json(response)
        if answer.get("transactionId") != str(envelope.message_id):
            raise PartnerRejected("COA bevestigde een andere transactie")
        reference = answer.get("referentie")
        return DeliveryReceipt(
            partner_reference=clean(reference, 100) if isinstance(reference, str) else None,
            detail=clean(str(answer.get("status", "")), 40),
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        answer = await exchange(
            self._http,
            method,
            self.base_url + path,
            partner="COA",
            timeout=self.timeout,
            max_bytes=self.max_answer_bytes,
            content=content,
            headers=headers,
            params=params,
        )
        if answer.status in TRANSIENT_STATUS:
            raise PartnerUnavailable(f"COA is tijdelijk niet beschikbaar (HTTP {answer.status})")
        if answer.status >= 400:
            problem = self._json(answer, strict=False)
            code = clean(str(problem.get("code", answer.status)), 80)
            detail = clean(str(problem.get("detail", "")))
            raise PartnerRejected(f"COA weigerde ({code}): {detail}".rstrip(": "))
        return answer

    @staticmethod
    def _json(answer: Answer, *, strict: bool = True) -> dict[str, Any]:
        """The answer's JSON object; a broken or hostile body is the partner answering badly.

        Raises:
            PartnerRejected: (when ``strict``) not JSON, or not an object.
        """
        if strict and "json" not in answer.content_type:
            raise PartnerRejected("COA antwoordde niet met JSON")
        try:
            doc = orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            if strict:
                raise PartnerRejected("COA antwoordde met onleesbare JSON") from exc
            return {}
        if not isinstance(doc, dict):
            if strict:
                raise PartnerRejected("COA antwoordde niet met een JSON-object")
            return {}
        return doc

    async def reconcile(self, period: str) -> tuple[PeriodSummary, PeriodSummary]:
        """Ask COA what it received and sent in a period: (received, sent).

        Raises:
            PartnerUnavailable / PartnerRejected: as :meth:`deliver`.
        """
        check_period(period)
        response = await self._call("GET", "/afstemming", params={"periode": period}, headers=self._headers())
        doc = self._json(response)
        try:
            return PeriodSummary.from_json(doc.get("ontvangen")), PeriodSummary.from_json(doc.get("verzonden"))
        except InputError as exc:
            raise PartnerRejected(f"COA gaf geen leesbare afstemming ({exc.code})") from exc

    def next_attempt(self, attempts_made: int, first_attempt_at: datetime, now: datetime) -> datetime | None:
        """When the hub should try this partner again, or None when its retry window is over."""
        return next_attempt(attempts_made, first_attempt_at, self.retry_policy, now)

    async def lookup(self, request: LookupRequest) -> LookupResult:
        """COA answers no synchronous questions on this link."""
        raise PartnerRejected(f"COA biedt geen bevraging {request.kind!r} aan")

    async def health(self) -> HealthStatus:
        """``GET /status``."""
        facts: dict[str, JSON] = {"base_url": self.base_url, "oin": self.oin, "partner_oin": self.partner_oin}
        try:
            response = await self._call("GET", "/status", headers=self._headers())
        except HubError as exc:
            return HealthStatus(ok=False, detail=exc.detail, facts=facts)
        facts["api_version"] = clean(response.headers.get("api-version", ""), 40) or None
        facts["checked_at"] = datetime.now(UTC).isoformat()
        return HealthStatus(ok=True, detail="COA antwoordt", facts=facts)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""
