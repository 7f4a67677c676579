"""The REST push adapter (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import orjson

from hub import xmlsafe
from hub.envelope import header_to_json, to_xml
from hub.errors import ConfigurationError, PartnerRejected, PartnerUnavailable
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class RestPushAdapter:
    """POSTs each message to the partner's URL."""

    capabilities = Capabilities(deliver=True, formats=frozenset({"json", "xml"}))

    def __init__(self, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> None:
        url = config.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"partner {partner_id}: rest-push needs an http(s) 'url'")
        fmt = config.get("format", "json")
        if fmt not in ("json", "xml"):
            raise ConfigurationError(f"partner {partner_id}: format must be json or xml")
        self.partner_id = partner_id
        self.url = url
        self._target = httpx.URL(url)  # parsed once, not on every delivery
        self.format = str(fmt)
        token = config.get("token")
        self.token = token if isinstance(token, str) else None
        health_url = config.get("health_url")
        self.health_url = health_url if isinstance(health_url, str) else None
        timeout = config.get("timeout_seconds", 10)
        self.timeout = float(timeout) if isinstance(timeout, int | float) else 10.0
        self._http = http

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        headers = {"X-Message-Id": str(delivery.envelope.message_id)}
        if delivery.envelope.traceparent:
            headers["traceparent"] = delivery.envelope.traceparent
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        headers = self._headers(delivery)
        if self.format == "xml":
            headers["Content-Type"] = "application/xml"
            body = to_xml(delivery.envelope, xmlsafe.parse(delivery.payload_xml, max_bytes=len(delivery.payload_xml)))
        else:
            headers["Content-Type"] = "application/json"
            doc: dict[str, object] = dict(header_to_json(delivery.envelope))
            doc["payload"] = delivery.payload_json
            body = orjson.dumps(doc)
        try:
            response = await self._http.post(self._target, content=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise PartnerUnavailable(f"{self.partner_id} antwoordde niet binnen {self.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise PartnerUnavailable(f"{self.partner_id} is niet bereikbaar: {exc.__class__.__name__}") from exc
        if response.status_code in _TRANSIENT:
            raise PartnerUnavailable(f"{self.partner_id} antwoordde {response.status_code}; later opnieuw")
        if response.status_code >= 400:
            raise PartnerRejected(f"{self.partner_id} weigerde het bericht met {response.status_code}")
        reference = response.headers.get("X-Reference")
        return DeliveryReceipt(partner_reference=reference, detail=f"HTTP {response.status_code}")

    async def lookup(self, request: LookupRequest) -> LookupResult:
        raise PartnerRejected(f"{self.partner_id} beantwoordt geen opvragingen via rest-push")

    async def health(self) -> HealthStatus:
        if not self.health_url:
            return HealthStatus(ok=True, detail="geen health_url ingesteld", facts={"url": self.url})
        try:
            response = await self._http.get(self.health_url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return HealthStatus(ok=False, detail=f"niet bereikbaar: {exc.__class__.__name__}")
        return HealthStatus(ok=response.status_code < 400, detail=f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        return None
