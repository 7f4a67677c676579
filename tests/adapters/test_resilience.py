"""The shared resilience: retries only on transient errors, jittered backoff, breaker states."""

from __future__ import annotations

import pytest

from adapters._shared.resilience import CircuitBreaker, Resilience, ResiliencePolicy
from hub.errors import ConfigurationError, PartnerError, PartnerRejected, PartnerUnavailable

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def failing(errors: list[Exception]):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    async def attempt() -> str:
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return "antwoord"

    return attempt, calls


async def test_transient_errors_are_retried_with_bounded_jitter() -> None:
    sleeps = Sleeps()
    policy = ResiliencePolicy(retries=3, backoff_base=0.1, backoff_max=0.25)
    resilience = Resilience("p", policy, sleep=sleeps)
    attempt, calls = failing([PartnerUnavailable("weg"), PartnerUnavailable("weg")])
    assert await resilience.call("op", attempt) == "antwoord"
    assert calls["n"] == 3
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.1
    assert 0 <= sleeps.delays[1] <= 0.2
    assert resilience.facts()["retries"] == 2


async def test_retries_give_up_with_the_attempt_count() -> None:
    resilience = Resilience("p", ResiliencePolicy(retries=1, backoff_base=0), sleep=Sleeps())
    attempt, calls = failing([PartnerUnavailable("bron weg")] * 5)
    with pytest.raises(PartnerUnavailable, match=r"bron weg \(na 2 poging"):
        await resilience.call("op", attempt)
    assert calls["n"] == 2
    assert resilience.facts()["failures"] == 1


@pytest.mark.parametrize("error", [PartnerRejected("nee"), PartnerError("onleesbaar")])
async def test_permanent_errors_are_not_retried(error: PartnerError) -> None:
    resilience = Resilience("p", ResiliencePolicy(retries=5), sleep=Sleeps())
    attempt, calls = failing([error])
    with pytest.raises(type(error)):
        await resilience.call("op", attempt)
    assert calls["n"] == 1


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("p", threshold=2, reset_seconds=10, clock=clock)
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_after() == 10
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.times_opened == 2
    clock.now += 10
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0


async def test_open_breaker_refuses_without_calling() -> None:
    clock = FakeClock()
    resilience = Resilience("p", ResiliencePolicy(retries=0, breaker_threshold=1, breaker_reset=30), clock=clock)
    attempt, calls = failing([PartnerUnavailable("weg")])
    with pytest.raises(PartnerUnavailable):
        await resilience.call("op", attempt)
    with pytest.raises(PartnerUnavailable, match="circuit breaker open"):
        await resilience.call("op", attempt)
    assert calls["n"] == 1
    assert resilience.facts()["breaker"] == "open"


async def test_rejection_counts_as_an_answer_for_the_breaker() -> None:
    """A partner that says no is up: refusals never open the breaker."""
    resilience = Resilience("p", ResiliencePolicy(retries=0, breaker_threshold=1))
    attempt, calls = failing([PartnerRejected("nee"), PartnerRejected("nee")])
    for _ in range(2):
        with pytest.raises(PartnerRejected):
            await resilience.call("op", attempt)
    assert calls["n"] == 2
    assert resilience.breaker.state == "closed"


@pytest.mark.parametrize(
    "config", [{"retries": -1}, {"read_timeout": 0}, {"max_concurrency": "veel"}, {"breaker_threshold": True}]
)
def test_policy_refuses_nonsense(config: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ResiliencePolicy.from_config(config)  # type: ignore[arg-type]


def test_policy_reads_its_keys() -> None:
    policy = ResiliencePolicy.from_config(
        {"connect_timeout": 1, "read_timeout": 2.5, "retries": 4, "max_concurrency": 3}
    )
    assert (policy.connect_timeout, policy.read_timeout, policy.retries, policy.max_concurrency) == (1.0, 2.5, 4, 3)
    timeout = policy.timeout()
    assert (timeout.connect, timeout.read) == (1.0, 2.5)
