"""Rijksregister (national register) person data and mutation notifications, through MAGDA.

Partner:
    The Belgian national register (Rijksregister / Registre national), reached the
    Flemish way: through MAGDA, source RR.

Protocol:
    SOAP 1.1 over HTTPS to the one MAGDA endpoint: GeefPersoon 02.02 (Bron RR) for
    person lookups (RegistreerInschrijving 02.01 first when MAGDA answers 40003);
    GeefPersoonMutatiesNotificaties 02.00 to pull mutation notifications
    (:mod:`adapters.rijksregister.mutaties`).

Features:
    Lookup ``persoon`` -> the canonical person (as the MAGDA adapter, from the
    shared :mod:`adapters._magda`), warnings included; 30001 ``found=False``;
    30002/30004 surface ``nieuwInsz``. :meth:`RijksregisterAdapter.fetch_mutaties`
    returns :class:`adapters.rijksregister.mutaties.MutatieBatch` events (moved, died,
    new INSZ) for the hub to route to the partners that follow the person; pass the
    batch's ``ontvangst_referte`` to the next call to acknowledge it. Retries,
    circuit breaker and concurrency cap from :mod:`adapters._shared.resilience`.
    No deliveries. Simulator: :mod:`adapters.rijksregister.simulator`.

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
import structlog

from adapters._magda import request as rq
from adapters._magda.client import MagdaClient, MagdaConfig
from adapters._magda.lookups import lookup_persoon
from adapters.rijksregister.mutaties import MutatieBatch, PersoonMutatie, has_notifications, read_mutaties
from hub.errors import PartnerRejected, ValidationFailed
from hub.ports import JSON, Capabilities, Delivery, DeliveryReceipt, HealthStatus, LookupRequest, LookupResult

__all__ = ["MutatieBatch", "PersoonMutatie", "RijksregisterAdapter"]

_log = structlog.get_logger("adapters.rijksregister")


class RijksregisterAdapter:
    """Person lookups from the national register and its mutation notifications."""

    capabilities = Capabilities(
        deliver=False, lookups=frozenset({"persoon"}), notifications=True, formats=frozenset({"xml"})
    )

    def __init__(self, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> None:
        self.partner_id = partner_id
        settings = dict(config)
        settings.setdefault("bron", "RR")
        self.client = MagdaClient(partner_id, MagdaConfig.from_config(settings), http)

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """The national register takes no pushed messages from the hub."""
        raise PartnerRejected(f"{self.partner_id} aanvaardt geen berichten (alleen opvragingen)")

    async def lookup(self, request: LookupRequest) -> LookupResult:
        """Answer a ``persoon`` lookup."""
        if request.kind != "persoon":
            raise ValidationFailed(f"{self.partner_id} kent geen opvraging {request.kind!r}; wel: persoon")
        return await lookup_persoon(self.client, request)

    async def fetch_mutaties(self, ontvangst_referte: str | None = None) -> MutatieBatch:
        """Pull the next batch of mutation notifications, acknowledging the previous one.

        Raises:
            PartnerUnavailable: MAGDA or the source is unavailable (after retries).
            PartnerRejected: e.g. 30014, an unknown receipt reference.
        """
        config = self.client.config

        def build() -> rq.BuiltRequest:
            return rq.geef_persoon_mutaties(config.afzender, ontvangst_referte=ontvangst_referte)

        reply, assessment = await self.client.call(build, has_notifications)
        batch = read_mutaties(reply, assessment.warnings)
        _log.info("mutations_fetched", partner=self.partner_id, count=len(batch.mutaties))
        return batch

    async def health(self) -> HealthStatus:
        """Reachability and the link's resilience state."""
        return await self.client.health()

    async def probe(self) -> HealthStatus:
        """Connection test for ``knooppunt check-partner``: reachability, TLS, a harmless SOAP exchange."""
        return await self.client.probe()

    async def aclose(self) -> None:
        """Idempotent; the injected HTTP client is not closed."""
        await self.client.aclose()
