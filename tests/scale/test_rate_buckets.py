"""Partner budgets shared by every API process (PostgreSQL): a partner gets its rate once, not
once per process. Real PostgreSQL, real HTTP on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import structlog
import structlog.testing
import uvicorn
from sqlalchemy import Engine, create_engine, select

from hub.auth import RateLimiter
from hub.settings import LimitSettings, Settings
from hub.store import migrate
from hub.store.buckets import SharedRateLimiter, lease_size
from hub.store.database import make_engine
from hub.store.tables import rate_buckets
from tests.conftest import LiveHub, ServerThread, bound_port, start_live_hub

pytestmark = pytest.mark.scale


@pytest.fixture
def engine(pg_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(pg_settings)
    migrate.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def processes(engine: Engine) -> Iterator[list[SharedRateLimiter]]:
    """Two API processes' limiters on one database (each with connections of its own)."""
    limiters = [SharedRateLimiter(engine), SharedRateLimiter(engine)]
    try:
        yield limiters
    finally:
        for limiter in limiters:
            limiter.close()


def test_two_processes_share_one_budget_per_partner(processes: list[SharedRateLimiter]) -> None:
    a, b = processes
    assert lease_size(0.5, 20) == 1  # a slow rate leases one token at a time: exact
    waits = [limiter.take("partner:duo", 0.5, 20) for limiter in [a, b] * 15]
    assert waits[:20] == [0.0] * 20
    assert all(1.0 < w <= 2.0 for w in waits[20:]), waits[20:]  # one token comes back every 2 s
    # other partners have budgets of their own
    assert a.take("partner:coa", 0.5, 20) == 0.0
    # what per-process buckets would have done: each process grants the whole burst
    local = [RateLimiter(), RateLimiter()]
    assert sum(limiter.take("partner:duo", 0.5, 20) == 0.0 for limiter in local * 15) == 30


def test_leases_keep_a_fast_partner_close_to_its_budget_with_few_statements(
    processes: list[SharedRateLimiter],
) -> None:
    a, b = processes
    rate, burst = 100.0, 100
    want = lease_size(rate, burst)
    assert want == 5
    started = time.monotonic()
    allowed = sum(limiter.take("partner:agii", rate, burst) == 0.0 for limiter in [a, b] * 150)
    elapsed = time.monotonic() - started
    # the burst, what refilled meanwhile, and at most one unspent lease per process besides
    assert burst <= allowed <= burst + rate * elapsed + 2 * want, (allowed, elapsed)
    # Leased, and refusals answered locally until the next token is due: the burst in leases of
    # `want`, then per process a last partial lease and a first refusal, and at most two statements
    # per token that refills meanwhile (one refused because the other process took it, one granted).
    # Without leases it would be one statement per request: 300.
    statements = a.statements + b.statements
    assert statements <= burst / want + 2 * 2 + 2 * 2 * (rate * elapsed + 1), (a.statements, b.statements, elapsed)


def test_a_lease_lapses_unspent(processes: list[SharedRateLimiter], engine: Engine) -> None:
    a, _ = processes
    assert a.take("partner:ede", 40.0, 40) == 0.0  # leases 2 tokens, spends one
    with engine.begin() as conn:
        conn.execute(rate_buckets.update().values(tokens=0.0, updated_at=rate_buckets.c.updated_at + 3600))
    assert a.take("partner:ede", 40.0, 40) == 0.0  # the leased token
    time.sleep(0.3)  # longer than a lease lives
    assert a.take("partner:ede", 40.0, 40) > 0.0  # nothing left in the bucket, the lease lapsed
    with engine.connect() as conn:
        assert conn.execute(select(rate_buckets.c.key)).scalars().all() == ["partner:ede"]


def test_without_the_database_a_process_falls_back_to_its_own_bucket(pg_settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    unreachable = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/test", connect_args={"connect_timeout": 1}
    )
    limiter = SharedRateLimiter(unreachable)
    try:
        with structlog.testing.capture_logs() as logged:
            waits = [limiter.take("partner:duo", 0.5, 3) for _ in range(5)]
    finally:
        limiter.close()
        unreachable.dispose()
    assert waits[:3] == [0.0] * 3  # nobody refused because the database did not answer...
    assert all(w > 0 for w in waits[3:])  # ...and the partner still limited, by this process
    assert limiter.fallbacks == 5
    # one log line for the outage, not one per request
    assert [e["event"] for e in logged if e["event"] == "rate_bucket_unavailable"] == ["rate_bucket_unavailable"]


@pytest.fixture
def two_api_processes(pg_settings: Settings) -> Iterator[tuple[LiveHub, str]]:
    """A hub on PostgreSQL with a second API server beside it on the same database."""
    from hub.api.app import create_app

    settings = pg_settings.model_copy(
        update={"limits": LimitSettings(requests_per_second=100, partner_requests_per_second={"duo": 0.2}, burst=6)}
    )
    hub = start_live_hub(settings)
    second = uvicorn.Server(
        uvicorn.Config(create_app(hub.settings, api_only=True), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = ServerThread([second])
    thread.start()
    try:
        yield hub, f"http://127.0.0.1:{bound_port(second)}"
    finally:
        thread.stop()
        hub.stop()


def test_over_http_a_partner_gets_its_burst_once_across_two_api_processes(
    two_api_processes: tuple[LiveHub, str],
) -> None:
    hub, second = two_api_processes
    headers = {"Authorization": f"Bearer {hub.setup.tokens['duo']}"}
    statuses = []
    with httpx.Client(headers=headers, timeout=10) as client:
        for base in [hub.url, second] * 5:
            statuses.append(client.get(f"{base}/v1/inbox").status_code)
        refused = client.get(f"{second}/v1/inbox")
        other = httpx.get(
            f"{second}/v1/inbox", headers={"Authorization": f"Bearer {hub.setup.tokens['coa']}"}, timeout=10
        )
    assert statuses == [200] * 6 + [429] * 4  # burst 6 for both processes together, not 6 each
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 5  # one token every 5 s
    assert other.status_code == 200  # COA's budget is its own
