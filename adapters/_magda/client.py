"""Calling MAGDA: configuration, one SOAP exchange, resilience, and register-then-ask.

A :class:`MagdaClient` is what the MAGDA, Discimus and Rijksregister adapters hold.
One call = build a fresh request (new Referte per attempt), POST it, read the
reply, :func:`adapters._magda.reply.assess` it, all inside
:meth:`adapters._shared.resilience.Resilience.call` so 99996 and timeouts are
retried with jittered backoff while permanent refusals are not.

Configuration keys (the adapter's config mapping): ``url`` (required; one SOAP
endpoint for every MAGDA service), ``afzender`` (``{"identificatie",
"hoedanigheid", "gebruiker"?}``), ``insz_test_numbers`` (accept MAGDA test persons,
months 61-72; default false), ``bron`` and ``taal`` (GeefPersoon, default RR / nl),
``registratie_dagen`` (length of a RegistreerInschrijving, default 365), plus the
:class:`adapters._shared.resilience.ResiliencePolicy` keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
import structlog

from adapters._magda import request as rq
from adapters._magda.reply import Assessment, NotRegistered, Reply, assess, parse_envelope, registration_succeeded
from adapters._magda.services import SOAP_ENV
from adapters._shared.resilience import Resilience, ResiliencePolicy, post
from hub import xmlsafe
from hub.errors import (
    ConfigurationError,
    HubError,
    PartnerError,
    PartnerRejected,
    PartnerUnavailable,
    ValidationFailed,
)
from hub.identifiers import BSN, INSZ, IdentifierError, parse_insz
from hub.ports import JSON, HealthStatus

_log = structlog.get_logger("adapters.magda")
_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""', "Accept": "text/xml"}


def _str(config: Mapping[str, JSON], key: str, default: str | None = None) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"configuratiesleutel {key!r} ontbreekt of is geen tekst")
    return value.strip()


@dataclass(frozen=True, slots=True)
class MagdaConfig:
    """A MAGDA link's settings, read once from the adapter's configuration."""

    url: str
    afzender: rq.Afzender
    policy: ResiliencePolicy
    allow_test_numbers: bool = False
    bron: str = "RR"
    taal: str = "nl"
    registratie_dagen: int = 365

    @classmethod
    def from_config(cls, config: Mapping[str, JSON]) -> MagdaConfig:
        """Read and check the configuration keys listed in the module docstring.

        Raises:
            ConfigurationError: a required key is missing or a value has the wrong type.
        """
        url = _str(config, "url")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError("configuratiesleutel 'url' moet met http:// of https:// beginnen")
        raw_afzender = config.get("afzender", {})
        if not isinstance(raw_afzender, dict):
            raise ConfigurationError("configuratiesleutel 'afzender' moet een object zijn")
        gebruiker = raw_afzender.get("gebruiker")
        afzender = rq.Afzender(
            identificatie=_str(raw_afzender, "identificatie", "knooppunt.vlaanderen.be/knooppunt"),
            hoedanigheid=_str(raw_afzender, "hoedanigheid", "1300"),
            gebruiker=gebruiker if isinstance(gebruiker, str) and gebruiker else None,
        )
        test_numbers = config.get("insz_test_numbers", False)
        if not isinstance(test_numbers, bool):
            raise ConfigurationError("configuratiesleutel 'insz_test_numbers' moet true of false zijn")
        dagen = config.get("registratie_dagen", 365)
        if isinstance(dagen, bool) or not isinstance(dagen, int) or dagen < 1:
            raise ConfigurationError("configuratiesleutel 'registratie_dagen' moet een positief geheel getal zijn")
        return cls(
            url=url,
            afzender=afzender,
            policy=ResiliencePolicy.from_config(config),
            allow_test_numbers=test_numbers,
            bron=_str(config, "bron", "RR"),
            taal=_str(config, "taal", "nl"),
            registratie_dagen=dagen,
        )


class MagdaClient:
    """One partner's link to a MAGDA endpoint, shared by the adapter's operations."""

    def __init__(self, partner: str, config: MagdaConfig, http: httpx.AsyncClient) -> None:
        self.partner = partner
        self.config = config
        self.http = http
        self.resilience = Resilience(partner, config.policy)
        self.closed = False

    def insz(self, subject: INSZ | BSN) -> str:
        """The subject as an INSZ MAGDA accepts, validated again at this edge.

        Raises:
            ValidationFailed: a BSN, or an INSZ this environment does not accept.
        """
        if not isinstance(subject, INSZ):
            raise ValidationFailed(f"{self.partner} kent alleen INSZ, geen {type(subject).__name__}")
        try:
            return parse_insz(subject.value, allow_test_numbers=self.config.allow_test_numbers).value
        except IdentifierError as exc:
            raise ValidationFailed(f"ongeldig INSZ: {exc}") from exc

    async def _exchange(self, built: rq.BuiltRequest) -> Reply:
        """One HTTP exchange; transport and status problems become partner errors."""
        started = time.perf_counter()
        reply = await post(
            self.http,
            self.config.url,
            content=built.body,
            headers=_HEADERS,
            policy=self.config.policy,
            partner=self.partner,
        )
        looks_like_xml = reply.body.lstrip()[:1] == b"<"
        if reply.status not in (200, 500) or not looks_like_xml:
            if reply.status >= 500 or reply.status in (408, 429):
                raise PartnerUnavailable(f"{self.partner}: HTTP {reply.status} op {built.service.name}")
            if reply.status != 200:
                raise PartnerRejected(f"{self.partner}: HTTP {reply.status} op {built.service.name}")
        result = parse_envelope(
            reply.body, built.service, max_bytes=self.config.policy.max_reply_bytes, partner=self.partner
        )
        _log.debug(
            "partner_reply_received",
            partner=self.partner,
            service=built.service.name,
            referte=built.bericht_referte,
            uitzonderingen=len(result.uitzonderingen),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return result

    async def call(
        self, build: Callable[[], rq.BuiltRequest], has_data: Callable[[Reply], bool]
    ) -> tuple[Reply, Assessment]:
        """Send (with retries) and assess one request; see :func:`adapters._magda.reply.assess`.

        Raises:
            PartnerUnavailable: the adapter is closed (not retried), or the partner stays unavailable.
        """
        if self.closed:
            raise PartnerUnavailable(f"{self.partner}: adapter is gesloten")
        # the first attempt sends the request built here; a retry builds a fresh one (new Referte)
        first: list[rq.BuiltRequest] = [build()]

        async def attempt() -> tuple[Reply, Assessment]:
            reply = await self._exchange(first.pop() if first else build())
            return reply, assess(reply, has_data=has_data(reply), partner=self.partner)

        operation = first[0].service.name

        return await self.resilience.call(operation, attempt)

    async def ask(
        self, insz: str, build: Callable[[], rq.BuiltRequest], has_data: Callable[[Reply], bool]
    ) -> tuple[Reply, Assessment]:
        """Like :meth:`call`, but on 40003 register the person and ask again, once.

        Raises:
            PartnerRejected: still 40003 after a successful registration.
        """
        try:
            return await self.call(build, has_data)
        except NotRegistered:
            _log.info("registration_requested", partner=self.partner, service=build().service.name)
        await self.register(insz)
        try:
            return await self.call(build, has_data)
        except NotRegistered as exc:
            raise PartnerRejected(
                f"{self.partner}: nog steeds niet geregistreerd (40003) na RegistreerInschrijving"
            ) from exc

    async def register(self, insz: str) -> None:
        """RegistreerInschrijving for ``registratie_dagen`` days from today."""
        today = date.today()
        einde = today + timedelta(days=self.config.registratie_dagen)

        def build() -> rq.BuiltRequest:
            return rq.registreer_inschrijving(self.config.afzender, insz, begin=today, einde=einde)

        reply, _ = await self.call(build, lambda r: r.inhoud is not None)
        registration_succeeded(reply, self.partner)
        _log.info("person_registered", partner=self.partner, until=einde.isoformat())

    async def unregister(self, insz: str) -> None:
        """RegistreerUitschrijving: withdraw our interest in the person."""

        def build() -> rq.BuiltRequest:
            return rq.registreer_uitschrijving(self.config.afzender, insz)

        reply, _ = await self.call(build, lambda r: r.inhoud is not None)
        registration_succeeded(reply, self.partner)
        _log.info("person_unregistered", partner=self.partner)

    async def health(self) -> HealthStatus:
        """Reachability of the endpoint (any HTTP answer counts) plus the resilience facts.

        No MAGDA service is called: every consultation must be audited, a health
        probe must not be one.
        """
        facts = self.resilience.facts()
        facts["url"] = self.config.url
        if self.closed:
            return HealthStatus(ok=False, detail="adapter gesloten", facts=facts)
        if self.resilience.breaker.state == "open":
            return HealthStatus(ok=False, detail="circuit breaker open", facts=facts)
        try:
            resp = await self.http.request("HEAD", self.config.url, timeout=self.config.policy.timeout())
        except httpx.HTTPError as exc:
            return HealthStatus(ok=False, detail=f"niet bereikbaar ({type(exc).__name__})", facts=facts)
        facts["httpStatus"] = resp.status_code
        return HealthStatus(ok=True, detail="bereikbaar", facts=facts)

    async def probe(self) -> HealthStatus:
        """A connection test for operators: reachability, TLS, and a harmless SOAP exchange.

        Posts an empty SOAP 1.1 envelope (no service, no person): a MAGDA endpoint answers
        with a SOAP fault, which proves the SOAP stack works without consulting anyone.
        """
        facts: dict[str, JSON] = {"url": self.config.url, "reachable": False, "soap": False}
        facts["tls"] = "ok" if self.config.url.startswith("https://") else "niet gebruikt"
        empty = rq.empty_envelope()
        try:
            reply = await post(
                self.http,
                self.config.url,
                content=empty,
                headers=_HEADERS,
                policy=self.config.policy,
                partner=self.partner,
            )
        except PartnerUnavailable as exc:
            cause = exc.__cause__
            if self.config.url.startswith("https://") and cause is not None and "SSL" in repr(cause):
                facts["tls"] = "mislukt"
            return HealthStatus(ok=False, detail=exc.detail, facts=facts)
        except PartnerError as exc:
            facts["reachable"] = True
            return HealthStatus(ok=False, detail=exc.detail, facts=facts)
        facts["reachable"] = True
        facts["httpStatus"] = reply.status
        try:
            root = xmlsafe.parse(reply.body, max_bytes=self.config.policy.max_reply_bytes)
        except HubError:
            return HealthStatus(ok=False, detail="bereikbaar, maar het antwoord is geen leesbare XML", facts=facts)
        facts["soap"] = root.tag == "{%s}Envelope" % SOAP_ENV
        if not facts["soap"]:
            return HealthStatus(ok=False, detail="bereikbaar, maar het antwoord is geen SOAP 1.1-envelop", facts=facts)
        return HealthStatus(ok=True, detail="bereikbaar en spreekt SOAP 1.1", facts=facts)

    async def aclose(self) -> None:
        """Mark the link closed (idempotent); the injected HTTP client stays open."""
        self.closed = True
