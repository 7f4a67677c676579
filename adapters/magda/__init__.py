"""MAGDA person lookups (GeefPersoon 02.02).

Partner:
    MAGDA, the Flemish service integrator (Digitaal Vlaanderen); person data from
    the national register (Bron RR) for Flemish integration agencies.

Protocol:
    SOAP 1.1 over HTTPS, one endpoint for every service (as the MAGDA Mock's
    ``POST /api/Magda-02.00/soap/WebService``). GeefPersoon 02.02 to consult;
    RegistreerInschrijving 02.01 first when MAGDA answers 40003;
    RegistreerUitschrijving 02.00 to withdraw. Envelope and replies: :mod:`adapters._magda`.

Features:
    Lookup ``persoon`` -> canonical person (:mod:`adapters._magda.persoon`) with
    MAGDA's warnings in ``LookupResult.warnings``. 30001/30101: ``found=False``.
    30002/30004: the new INSZ in ``data["nieuwInsz"]`` (and ``data["inszStatus"]``).
    40003: register, ask again once. 99996 and timeouts: retried with jittered
    backoff, then :class:`hub.errors.PartnerUnavailable`. Circuit breaker and a
    concurrency cap per partner, state in ``health().facts``. No deliveries.
    Simulator: :mod:`adapters.magda.simulator`.

Configuration keys:
    ``url`` (required), ``afzender`` (``{"identificatie", "hoedanigheid", "gebruiker"?}``),
    ``insz_test_numbers`` (bool, default false), ``bron`` (default "RR"), ``taal``
    (default "nl"), ``registratie_dagen`` (default 365), ``connect_timeout``,
    ``read_timeout``, ``retries``, ``backoff_base``, ``backoff_max``,
    ``breaker_threshold``, ``breaker_reset``, ``max_concurrency``, ``queue_timeout``,
    ``max_reply_bytes``, ``tls_profile`` (read by the hub: the outgoing TLS profile,
    i.e. the client certificate and MAGDA's CAs, of the client the adapter gets; hub/tls.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from adapters._magda.client import MagdaClient, MagdaConfig
from adapters._magda.lookups import lookup_persoon
from hub.errors import PartnerRejected, ValidationFailed
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

__all__ = ["MagdaAdapter"]


class MagdaAdapter:
    """Consults persons through MAGDA GeefPersoon."""

    capabilities = Capabilities(deliver=False, lookups=frozenset({"persoon"}), formats=frozenset({"xml"}))

    def __init__(self, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> None:
        self.partner_id = partner_id
        self.client = MagdaClient(partner_id, MagdaConfig.from_config(config), http)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """MAGDA takes no pushed messages from the hub."""
        raise PartnerRejected(f"{self.partner_id} aanvaardt geen berichten (alleen opvragingen)")

    async def lookup(self, request: LookupRequest) -> LookupResult:
        """Answer a ``persoon`` lookup."""
        if request.kind != "persoon":
            raise ValidationFailed(f"{self.partner_id} kent geen opvraging {request.kind!r}; wel: persoon")
        return await lookup_persoon(self.client, request)

    async def unregister(self, request: LookupRequest) -> None:
        """Withdraw our registration for the subject (RegistreerUitschrijving)."""
        await self.client.unregister(self.client.insz(request.subject))

    async def health(self) -> HealthStatus:
        """Reachability and the link's resilience state."""
        return await self.client.health()

    async def probe(self) -> HealthStatus:
        """Connection test for ``knooppunt check-partner``: reachability, TLS, a harmless SOAP exchange."""
        return await self.client.probe()

    async def aclose(self) -> None:
        """Idempotent; the injected HTTP client is not closed."""
        await self.client.aclose()
