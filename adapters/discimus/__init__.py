"""Discimus education enrolment history through MAGDA (GeefHistoriekInschrijving 02.01).

Partner:
    Discimus (AGODI, compulsory education) and the other education sources MAGDA
    federates: LP (leerplichtonderwijs), HO (hoger onderwijs), VWO
    (volwassenenonderwijs, including NT2 for inburgeraars), INT (internaten).

Protocol:
    SOAP 1.1 over HTTPS to the one MAGDA endpoint; GeefHistoriekInschrijving 02.01
    (RegistreerInschrijving 02.01 first when MAGDA answers 40003). Envelope, replies
    and resilience are shared with the MAGDA adapter through :mod:`adapters._magda`.

Features:
    Lookup ``inschrijvingen`` with params ``van`` and ``tot`` (ISO dates; default
    the last five years up to today) and ``bronnen`` (comma-separated, default
    LP,HO,VWO,INT) -> ``{"insz", "van", "tot", "inschrijvingen": [enrolment]}``
    (:mod:`adapters._magda.onderwijs`; NT2 courses carry ``nt2: true`` and their
    ``resultaat``). A source that found nothing (30101) next to data from another
    source is a warning, not a failure; no data at all is ``found=False``. 99996
    and timeouts are retried, then :class:`hub.errors.PartnerUnavailable`. No
    deliveries. Simulator: :mod:`adapters.discimus.simulator`.

Configuration keys:
    ``url`` (required), ``afzender`` (``{"identificatie", "hoedanigheid", "gebruiker"?}``),
    ``insz_test_numbers`` (bool, default false), ``registratie_dagen`` (default 365),
    ``connect_timeout``, ``read_timeout``, ``retries``, ``backoff_base``, ``backoff_max``,
    ``breaker_threshold``, ``breaker_reset``, ``max_concurrency``, ``queue_timeout``,
    ``max_reply_bytes``, ``tls_profile`` (read by the hub: the outgoing TLS profile of
    the client the adapter gets; hub/tls.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from adapters._magda.client import MagdaClient, MagdaConfig
from adapters._magda.lookups import lookup_inschrijvingen
from hub.errors import PartnerRejected, ValidationFailed
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

__all__ = ["DiscimusAdapter"]


class DiscimusAdapter:
    """Consults education enrolments through MAGDA GeefHistoriekInschrijving."""

    capabilities = Capabilities(deliver=False, lookups=frozenset({"inschrijvingen"}), formats=frozenset({"xml"}))

    def __init__(self, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> None:
        self.partner_id = partner_id
        self.client = MagdaClient(partner_id, MagdaConfig.from_config(config), http)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Discimus takes no pushed messages from the hub."""
        raise PartnerRejected(f"{self.partner_id} aanvaardt geen berichten (alleen opvragingen)")

    async def lookup(self, request: LookupRequest) -> LookupResult:
        """Answer an ``inschrijvingen`` lookup."""
        if request.kind != "inschrijvingen":
            raise ValidationFailed(f"{self.partner_id} kent geen opvraging {request.kind!r}; wel: inschrijvingen")
        return await lookup_inschrijvingen(self.client, request)

    async def health(self) -> HealthStatus:
        """Reachability and the link's resilience state."""
        return await self.client.health()

    async def probe(self) -> HealthStatus:
        """Connection test for ``knooppunt check-partner``: reachability, TLS, a harmless SOAP exchange."""
        return await self.client.probe()

    async def aclose(self) -> None:
        """Idempotent; the injected HTTP client is not closed."""
        await self.client.aclose()
