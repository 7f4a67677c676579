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
from hub.envelope import header_to_json
from hub.errors import HubError, InputError, PartnerRejected, PartnerUnavailable
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
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
        if response.status_code not in (200, 201):
            raise PartnerUnavailable(f"COA antwoordde onverwacht HTTP {response.status_code}")
        answer = self._json(response)
        if answer.get("transactionId") != str(envelope.message_id):
            raise PartnerUnavailable("COA bevestigde een andere transactie")
        reference = answer.get("referentie")
        return DeliveryReceipt(
            partner_reference=reference if isinstance(reference, str) else None, detail=str(answer.get("status", ""))
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise PartnerUnavailable(f"COA antwoordde niet binnen {self.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise PartnerUnavailable(f"COA is niet bereikbaar: {type(exc).__name__}") from exc
        if response.status_code in _TRANSIENT_STATUS:
            raise PartnerUnavailable(f"COA is tijdelijk niet beschikbaar (HTTP {response.status_code})")
        if response.status_code >= 400:
            problem = self._json(response, strict=False)
            raise PartnerRejected(
                f"COA weigerde ({problem.get('code', response.status_code)}): {problem.get('detail', '')}".rstrip(": ")
            )
        return response

    @staticmethod
    def _json(response: httpx.Response, *, strict: bool = True) -> dict[str, Any]:
        try:
            doc = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            if strict:
                raise PartnerUnavailable("COA antwoordde met onleesbare JSON") from exc
            return {}
        if not isinstance(doc, dict):
            if strict:
                raise PartnerUnavailable("COA antwoordde niet met een JSON-object")
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
            raise PartnerUnavailable(f"COA gaf geen leesbare afstemming: {exc.detail}") from exc

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
        facts["api_version"] = response.headers.get("API-Version")
        facts["checked_at"] = datetime.now(UTC).isoformat()
        return HealthStatus(ok=True, detail="COA antwoordt", facts=facts)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""
