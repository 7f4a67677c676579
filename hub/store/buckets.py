"""Request budgets shared by every API process: the partners' token buckets in PostgreSQL.

In scale mode a partner's requests are spread over several API processes (behind a load
balancer, on one host or many). Buckets in each process's memory would grant a partner
its rate once per process; here every process takes its partner tokens from one row per
partner, so the rate holds for the hub as a whole.

- **Tokens are leased, a few at a time.** A process takes up to 50 ms worth of the
  partner's rate (at least one token, at most a quarter of its burst) in one statement and
  spends them on the next requests, for at most a quarter of a second. A database round
  trip per request would stall the event loop for longer than the rest of the request's
  work; leased, a partner at 2,000 requests a second costs each process about twenty
  statements a second. The price: across N processes a partner may get ahead of its
  bucket by at most N leases (N × 50 ms of its rate); leased tokens left unused when the
  lease ends are not given back, so it may also get a little less. A partner refused for
  an empty bucket is refused again without a statement until its next token is due (other
  processes can only take tokens, never add them), so hammering costs no database work.
- **One statement, no transaction to hold.** Insert or update, then RETURNING what was
  granted, on the process's autocommit connection for hot reads
  (:class:`hub.store.database.HotReads`); the row lock lasts one statement. The table is
  UNLOGGED: no WAL and no fsync per lease, and a database crash refills the buckets,
  which a budget may.
- **The database's clock.** Refill is counted with ``clock_timestamp()``, so processes on
  hosts whose clocks differ agree, and a statement that waited for the row lock counts from
  when it got it.
- **A database hiccup refuses nobody by itself.** Should the statement fail (the database
  is restarting; the statement timeout passed), the process decides that request with its
  own bucket and logs it; the store's own failures then answer for the message.

Buckets keyed by a client address (failed authentications, before a partner is known)
stay in each process's memory: they are many, short-lived, and only slow down guessing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from hub.auth import PARTNER_KEY_PREFIX, RateLimiter
from hub.store.database import HotReads

log = structlog.get_logger(__name__)

LEASE_SECONDS_OF_RATE = 0.05  # a lease holds this much of the partner's rate...
LEASE_SHARE_OF_BURST = 0.25  # ...and at most this share of its burst
LEASE_LIFETIME = 0.25  # seconds a lease may be spent before what is left of it lapses
WARN_EVERY = 10.0  # seconds between log lines about a database that does not answer

# Built once: HotReads compiles it once and runs it on this thread's autocommit connection.
# The refill: the tokens left, plus the rate times the seconds since the last take, capped at
# the burst; of it, up to :want whole tokens are granted (none while less than one is there).
_LEASE = text(
    """
    INSERT INTO rate_buckets AS b (key, tokens, updated_at, granted)
    VALUES (:key, :burst - :want, extract(epoch from clock_timestamp()), :want)
    ON CONFLICT (key) DO UPDATE SET (tokens, granted, updated_at) = (
        SELECT refill - floor(least(refill, :want)), floor(least(refill, :want)), greatest(b.updated_at, at)
        FROM (
            SELECT least(:burst, b.tokens + greatest(0, at - b.updated_at) * :rate) AS refill, at
            FROM (SELECT extract(epoch from clock_timestamp()) AS at) AS clock
        ) AS fresh
    )
    RETURNING granted, tokens
    """
)


def lease_size(rate: float, burst: int) -> int:
    """Tokens one lease asks for: 50 ms of the rate, at most a quarter of the burst, at least one."""
    return max(1, min(math.ceil(rate * LEASE_SECONDS_OF_RATE), int(burst * LEASE_SHARE_OF_BURST)))


class SharedRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose partner buckets live in the database (PostgreSQL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        if engine.dialect.name != "postgresql":
            raise ValueError("shared rate buckets need PostgreSQL (UPSERT ... RETURNING on an unlogged table)")
        self._reads = HotReads(engine)
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._leases: dict[str, tuple[float, float]] = {}  # key -> (tokens left, lapses at)
        self._empty: dict[str, float] = {}  # key -> when the next token is due in an empty bucket
        self.statements = 0  # leases asked of the database
        self.fallbacks = 0  # requests decided by this process's own bucket, the database not answering
        self._warned = -WARN_EVERY

    def take(self, key: str, rate: float, burst: int) -> float:
        if not key.startswith(PARTNER_KEY_PREFIX):
            return super().take(key, rate, burst)
        now = self._clock()
        with self._lock:
            left, lapses = self._leases.get(key, (0.0, 0.0))
            if left >= 1.0 and now < lapses:
                self._leases[key] = (left - 1.0, lapses)
                return 0.0
            empty_until = self._empty.get(key, 0.0)
            if now < empty_until:  # the bucket had less than a token, and none can come sooner
                return empty_until - now
        want = lease_size(rate, burst)
        try:
            rows = self._reads.rows(_LEASE, {"key": key, "burst": float(burst), "rate": float(rate), "want": want})
            granted, tokens = (float(value) for value in rows[0])
        except (SQLAlchemyError, self._driver_error) as exc:  # a failed connect raises the driver's own
            self.fallbacks += 1
            if now - self._warned >= WARN_EVERY:  # one line per interval, not one per request
                self._warned = now
                log.warning("rate_bucket_unavailable", key=key, error=type(exc).__name__, fallbacks=self.fallbacks)
            return super().take(key, rate, burst)
        self.statements += 1
        if granted < 1.0:
            wait = (1.0 - tokens) / rate
            with self._lock:
                # other processes only take tokens: refuse here, without a statement, until then
                self._empty[key] = now + wait
            return wait
        with self._lock:
            self._leases[key] = (granted - 1.0, now + LEASE_LIFETIME)
        return 0.0

    def close(self) -> None:
        self._reads.close()
