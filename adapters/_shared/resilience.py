"""Resilience for partner calls: timeouts, retries, a circuit breaker and a concurrency cap.

Every adapter wraps each partner call in :meth:`Resilience.call`:

    concurrency cap (semaphore, shed after queue_timeout) -> circuit breaker -> attempt
    -> retry on transient errors

Only :class:`hub.errors.PartnerUnavailable` is retried (with full-jitter exponential
backoff); a :class:`hub.errors.PartnerRejected` is final and proves the partner
answered, so it counts as a success for the breaker. Any other
:class:`hub.errors.PartnerError` (an unreadable or hostile reply) is final and counts
as a failure. The state is reported as :meth:`Resilience.facts` (for
``HealthStatus.facts``) and as structlog events named ``<subject>_<past verb>``.

:func:`post` sends one HTTP request with the policy's timeouts and reads the reply
with a size cap, so a huge reply is cut off while it streams in.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import httpx
import structlog

from hub.errors import ConfigurationError, PartnerError, PartnerRejected, PartnerUnavailable
from hub.ports import JSON

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]

_log = structlog.get_logger("adapters.resilience")


def _number(config: Mapping[str, JSON], key: str, default: float, *, minimum: float = 0.0) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"configuratiesleutel {key!r} moet een getal zijn")
    if value < minimum:
        raise ConfigurationError(f"configuratiesleutel {key!r} moet minstens {minimum} zijn")
    return float(value)


@dataclass(frozen=True, slots=True)
class ResiliencePolicy:
    """How patient and how persistent an adapter is with its partner.

    Configuration keys (all optional, in the adapter's config mapping):
    ``connect_timeout`` and ``read_timeout`` (seconds), ``retries`` (extra attempts
    after the first), ``backoff_base`` and ``backoff_max`` (seconds),
    ``breaker_threshold`` (consecutive failures that open the breaker),
    ``breaker_reset`` (seconds before a half-open trial), ``max_concurrency``
    (calls in flight per partner), ``queue_timeout`` (seconds a call may wait for a
    free slot before it is shed as unavailable), ``max_reply_bytes``.
    """

    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 2
    backoff_base: float = 0.2
    backoff_max: float = 2.0
    breaker_threshold: int = 5
    breaker_reset: float = 30.0
    max_concurrency: int = 8
    queue_timeout: float = 5.0
    max_reply_bytes: int = 5 * 1024 * 1024

    @classmethod
    def from_config(cls, config: Mapping[str, JSON]) -> ResiliencePolicy:
        """Read the policy from an adapter's configuration, refusing nonsense values."""
        d = cls()
        return cls(
            connect_timeout=_number(config, "connect_timeout", d.connect_timeout, minimum=0.001),
            read_timeout=_number(config, "read_timeout", d.read_timeout, minimum=0.001),
            retries=int(_number(config, "retries", d.retries)),
            backoff_base=_number(config, "backoff_base", d.backoff_base),
            backoff_max=_number(config, "backoff_max", d.backoff_max),
            breaker_threshold=int(_number(config, "breaker_threshold", d.breaker_threshold, minimum=1)),
            breaker_reset=_number(config, "breaker_reset", d.breaker_reset),
            max_concurrency=int(_number(config, "max_concurrency", d.max_concurrency, minimum=1)),
            queue_timeout=_number(config, "queue_timeout", d.queue_timeout),
            max_reply_bytes=int(_number(config, "max_reply_bytes", d.max_reply_bytes, minimum=1024)),
        )

    def timeout(self) -> httpx.Timeout:
        """The httpx timeout for one attempt."""
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout, pool=self.connect_timeout)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not cryptography


class CircuitBreaker:
    """Stops calling a partner that keeps failing, and tries again after a pause.

    closed --(threshold consecutive failures)--> open --(reset seconds)--> half_open
    half_open --(success)--> closed;  half_open --(failure)--> open
    """

    def __init__(
        self, partner: str, threshold: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.partner = partner
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker turns half-open once the pause is over."""
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_seconds:
            self._state = "half_open"
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a call go out now?"""
        return self.state != "open"

    def record_success(self) -> None:
        if self._state != "closed":
            _log.info("circuit_closed", partner=self.partner)
        self._state = "closed"
        self._failures = 0

    def record_failure(self) -> None:
        self._failures += 1
        if self.state == "half_open" or (self._state == "closed" and self._failures >= self.threshold):
            self._state = "open"
            self._opened_at = self._clock()
            self.times_opened += 1
            _log.warning("circuit_opened", partner=self.partner, consecutive_failures=self._failures)

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.reset_seconds - (self._clock() - self._opened_at))


class Resilience:
    """Wraps every call to one partner: cap, breaker, retries. One instance per adapter."""

    def __init__(
        self,
        partner: str,
        policy: ResiliencePolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.partner = partner
        self.policy = policy
        self.breaker = CircuitBreaker(partner, policy.breaker_threshold, policy.breaker_reset, clock)
        self._semaphore = asyncio.Semaphore(policy.max_concurrency)
        self._sleep = sleep
        self._in_flight = 0
        self._calls = 0
        self._retries = 0
        self._failures = 0
        self._last_error = ""

    async def call(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt_once`` under the cap and the breaker, retrying transient failures.

        Raises:
            PartnerUnavailable: the breaker is open, or every attempt failed transiently.
            PartnerRejected, PartnerError: the first permanent failure, not retried.
        """
        try:
            if self._semaphore.locked():
                await asyncio.wait_for(self._semaphore.acquire(), timeout=self.policy.queue_timeout)
            else:
                await self._semaphore.acquire()  # a free slot is taken at once: no timer, no task
        except TimeoutError:
            self._failures += 1
            _log.warning("partner_call_shed", partner=self.partner, operation=operation)
            raise PartnerUnavailable(
                f"{self.partner}: te veel gelijktijdige vragen (maximum {self.policy.max_concurrency}); "
                "probeer later opnieuw"
            ) from None
        self._in_flight += 1
        try:
            return await self._call(operation, attempt_once)
        finally:
            self._in_flight -= 1
            self._semaphore.release()

    async def _call(self, operation: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        self._calls += 1
        attempts = self.policy.retries + 1
        for attempt in range(1, attempts + 1):
            if not self.breaker.allow():
                self._failures += 1
                _log.warning("partner_call_refused", partner=self.partner, operation=operation)
                raise PartnerUnavailable(
                    f"{self.partner}: circuit breaker open na herhaalde fouten; "
                    f"nieuwe poging over {self.breaker.retry_after():.0f} s"
                )
            try:
                result = await attempt_once()
            except PartnerRejected:
                self.breaker.record_success()
                raise
            except PartnerUnavailable as exc:
                self.breaker.record_failure()
                self._last_error = exc.detail
                if attempt == attempts:
                    self._failures += 1
                    _log.warning(
                        "partner_call_failed",
                        partner=self.partner,
                        operation=operation,
                        attempts=attempt,
                        code=exc.code,
                    )
                    raise PartnerUnavailable(f"{exc.detail} (na {attempt} poging(en))") from exc
                delay = self.policy.backoff(attempt)
                self._retries += 1
                _log.info(
                    "partner_call_retried", partner=self.partner, operation=operation, attempt=attempt, delay=delay
                )
                await self._sleep(delay)
            except PartnerError as exc:
                self.breaker.record_failure()
                self._failures += 1
                self._last_error = exc.detail
                _log.warning("partner_reply_refused", partner=self.partner, operation=operation, code=exc.code)
                raise
            else:
                self.breaker.record_success()
                return result
        raise PartnerUnavailable(f"{self.partner}: geen poging uitgevoerd")  # unreachable: retries >= 0

    def facts(self) -> dict[str, JSON]:
        """The link's state for ``HealthStatus.facts``."""
        return {
            "breaker": self.breaker.state,
            "consecutiveFailures": self.breaker.consecutive_failures,
            "breakerOpenedTimes": self.breaker.times_opened,
            "inFlight": self._in_flight,
            "maxConcurrency": self.policy.max_concurrency,
            "queueTimeout": self.policy.queue_timeout,
            "calls": self._calls,
            "retries": self._retries,
            "failures": self._failures,
            "lastError": self._last_error,
            "connectTimeout": self.policy.connect_timeout,
            "readTimeout": self.policy.read_timeout,
        }


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A partner's HTTP answer, read in full but never above the cap."""

    status: int
    content_type: str
    body: bytes


async def post(
    http: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    policy: ResiliencePolicy,
    partner: str,
) -> HttpReply:
    """POST once with the policy's timeouts; stream the reply and stop at ``max_reply_bytes``.

    Raises:
        PartnerUnavailable: connect/read timeout, connection refused or reset.
        PartnerError: the reply is larger than ``policy.max_reply_bytes``.
    """
    try:
        async with http.stream("POST", url, content=content, headers=dict(headers), timeout=policy.timeout()) as resp:
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > policy.max_reply_bytes:
                raise PartnerError(f"{partner}: antwoord groter dan {policy.max_reply_bytes} bytes geweigerd")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > policy.max_reply_bytes:
                    raise PartnerError(f"{partner}: antwoord groter dan {policy.max_reply_bytes} bytes geweigerd")
                chunks.append(chunk)
            return HttpReply(resp.status_code, resp.headers.get("content-type", ""), b"".join(chunks))
    except httpx.TimeoutException as exc:
        raise PartnerUnavailable(f"{partner}: geen antwoord binnen de tijdslimiet ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise PartnerUnavailable(f"{partner}: niet bereikbaar ({type(exc).__name__})") from exc
