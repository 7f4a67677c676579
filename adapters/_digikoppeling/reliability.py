"""Digikoppeling reliability: duplicate elimination, retry windows, RelatesTo correlation.

- :class:`DuplicateStore` remembers each message id with the answer it got,
  for at least ``(1 + retries) × interval`` (:func:`duplicate_retention`), so a
  resend within the sender's retry window gets the first answer again and is
  not processed twice. It is in memory, bounded in time by expiry (purged on
  every write) and in size by ``max_entries`` (oldest first): right for
  simulators and a single process; the hub itself deduplicates in its store.
- :func:`next_attempt` is a pure function: given how many attempts were made,
  when the first was, the partner's :class:`RetryPolicy` and now, it returns
  when to try next, or ``None`` to give up. Partners that are not 24x7 get a
  window of days and optional business hours.
- :class:`Correlator` matches answers to open questions by ``RelatesTo``.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters._digikoppeling.faults import UnknownCorrelation
from adapters._digikoppeling.wss import Clock, utcnow
from hub.errors import ConfigurationError
from hub.ports import JSON

T = TypeVar("T")


def duplicate_retention(interval: timedelta, retries: int) -> timedelta:
    """How long a receiver must remember a message id: (1 + retries) × retry interval."""
    if retries < 0 or interval <= timedelta(0):
        raise ConfigurationError("retries >= 0 en een positief interval zijn nodig")
    return interval * (1 + retries)


class DuplicateStore(Generic[T]):
    """Message id -> first answer, kept for ``retention`` (thread-safe, in memory).

    Args:
        retention: how long an id is remembered; use :func:`duplicate_retention`.
        max_entries: a hard cap; past it the oldest ids are forgotten first.
        clock: the current time.
    """

    def __init__(self, retention: timedelta, *, max_entries: int = 100_000, clock: Clock = utcnow) -> None:
        self._retention = retention
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[datetime, T]] = {}
        self._expiry: list[tuple[datetime, str]] = []
        self._lock = threading.Lock()

    @property
    def retention(self) -> timedelta:
        return self._retention

    def get(self, message_id: str) -> T | None:
        """The answer remembered for this id, or None when it is new (or forgotten)."""
        with self._lock:
            entry = self._entries.get(message_id)
            if entry is None or entry[0] <= self._clock():
                return None
            return entry[1]

    def remember(self, message_id: str, answer: T) -> T:
        """Remember the first answer for an id; returns the answer that stays remembered."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            existing = self._entries.get(message_id)
            if existing is not None and existing[0] > now:
                return existing[1]
            expires = now + self._retention
            self._entries[message_id] = (expires, answer)
            heapq.heappush(self._expiry, (expires, message_id))
            while len(self._entries) > self._max:
                _, oldest = heapq.heappop(self._expiry)
                self._entries.pop(oldest, None)
            return answer

    def __contains__(self, message_id: object) -> bool:
        return isinstance(message_id, str) and self.get(message_id) is not None

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._entries)

    def _purge(self, now: datetime) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            expires, message_id = heapq.heappop(self._expiry)
            entry = self._entries.get(message_id)
            if entry is not None and entry[0] == expires:
                del self._entries[message_id]


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """When a partner takes messages: weekdays (0 = Monday) between start and end, local time."""

    start: time = time(8, 0)
    end: time = time(18, 0)
    weekdays: frozenset[int] = frozenset(range(5))
    timezone: str = "Europe/Amsterdam"

    def next_open(self, moment: datetime) -> datetime:
        """``moment`` itself when within hours, else the next opening (in UTC)."""
        try:
            zone = ZoneInfo(self.timezone)
        except ZoneInfoNotFoundError as exc:
            raise ConfigurationError(f"onbekende tijdzone {self.timezone!r}") from exc
        local = moment.astimezone(zone)
        for day in range(8):
            date = (local + timedelta(days=day)).date()
            if date.weekday() not in self.weekdays:
                continue
            opens = datetime.combine(date, self.start, zone)
            closes = datetime.combine(date, self.end, zone)
            if day == 0 and opens <= local < closes:
                return moment
            if local < opens:
                return opens.astimezone(UTC)
        raise ConfigurationError("kantooruren zonder één open dag")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a partner wants retries: every ``interval`` (growing by ``backoff``) during ``window``."""

    interval: timedelta = timedelta(minutes=5)
    window: timedelta = timedelta(days=3)
    backoff: float = 1.0
    max_interval: timedelta = timedelta(hours=6)
    business_hours: BusinessHours | None = None

    @property
    def max_retries(self) -> int:
        """An upper bound of the retries in the window (for :func:`duplicate_retention`)."""
        return max(0, int(self.window / self.interval))

    @property
    def duplicate_retention(self) -> timedelta:
        """How long the receiver must remember ids sent under this policy: the whole window and one interval."""
        return self.window + self.interval

    @classmethod
    def from_config(cls, config: Mapping[str, JSON]) -> RetryPolicy:
        """Read ``retry_interval_seconds``, ``retry_window_days``, ``retry_backoff``,
        ``retry_max_interval_seconds`` and ``business_hours`` ({start, end, weekdays, timezone}).

        Raises:
            ConfigurationError: a key has the wrong type or value.
        """
        try:
            interval = timedelta(seconds=float(_number(config, "retry_interval_seconds", 300)))
            window = timedelta(days=float(_number(config, "retry_window_days", 3)))
            backoff = float(_number(config, "retry_backoff", 1.0))
            max_interval = timedelta(seconds=float(_number(config, "retry_max_interval_seconds", 6 * 3600)))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"ongeldige retry-configuratie: {exc}") from exc
        if interval <= timedelta(0) or window <= timedelta(0) or backoff < 1.0:
            raise ConfigurationError("retry_interval_seconds en retry_window_days > 0, retry_backoff >= 1")
        hours = config.get("business_hours")
        business_hours = None
        if isinstance(hours, dict):
            try:
                weekdays = hours.get("weekdays", [0, 1, 2, 3, 4])
                business_hours = BusinessHours(
                    start=time.fromisoformat(str(hours.get("start", "08:00"))),
                    end=time.fromisoformat(str(hours.get("end", "18:00"))),
                    weekdays=frozenset(int(str(d)) for d in (weekdays if isinstance(weekdays, list) else [])),
                    timezone=str(hours.get("timezone", "Europe/Amsterdam")),
                )
            except ValueError as exc:
                raise ConfigurationError(f"ongeldige business_hours: {exc}") from exc
        elif hours is not None:
            raise ConfigurationError("business_hours is een object {start, end, weekdays, timezone}")
        return cls(interval, window, backoff, max_interval, business_hours)


def _number(config: Mapping[str, JSON], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{key} is geen getal")
    return float(value)


def next_attempt(attempts_made: int, first_attempt_at: datetime, policy: RetryPolicy, now: datetime) -> datetime | None:
    """When to try again after ``attempts_made`` failed attempts, or None to give up.

    The delay is ``interval × backoff^(attempts_made - 1)``, capped at
    ``max_interval``; outside business hours it moves to the next opening. No
    attempt is planned after ``first_attempt_at + window``.
    """
    if attempts_made < 1:
        return now
    delay = min(policy.interval * (policy.backoff ** (attempts_made - 1)), policy.max_interval)
    candidate = now + delay
    if policy.business_hours is not None:
        candidate = policy.business_hours.next_open(candidate)
    if candidate > first_attempt_at + policy.window:
        return None
    return candidate


@dataclass(slots=True)
class _Question:
    action: str
    asked_at: datetime
    future: asyncio.Future[object] | None = None
    answer: object = None
    answered: bool = False


@dataclass(slots=True)
class Correlator:
    """Open questions by message id; an answer is matched by its RelatesTo.

    Synchronous WUS answers come back on the same HTTP exchange and are checked
    with :meth:`check`; asynchronous ones arrive later and are handed to
    :meth:`answer`, which wakes whoever :meth:`wait`\\ s for them.
    """

    ttl: timedelta = timedelta(days=3)
    clock: Clock = utcnow
    _open: dict[uuid.UUID, _Question] = field(default_factory=dict)

    def ask(self, message_id: uuid.UUID, action: str) -> None:
        """Register a question that was (or is about to be) sent."""
        self._expire()
        self._open[message_id] = _Question(action=action, asked_at=self.clock())

    def check(self, relates_to: uuid.UUID | None, question_id: uuid.UUID) -> None:
        """An answer on the same exchange must relate to the question just sent.

        Raises:
            UnknownCorrelation: RelatesTo is missing or names another message.
        """
        if relates_to != question_id:
            raise UnknownCorrelation(f"het antwoord hoort bij {relates_to}, niet bij de vraag {question_id}")
        self._open.pop(question_id, None)

    def discard(self, message_id: uuid.UUID) -> None:
        """Forget a question whose exchange failed (it is asked again on the next attempt)."""
        self._open.pop(message_id, None)

    def answer(self, relates_to: uuid.UUID | None, answer: object) -> str:
        """Match an asynchronous answer; returns the question's action.

        Raises:
            UnknownCorrelation: no open question has that id (or it expired).
        """
        self._expire()
        question = self._open.get(relates_to) if relates_to is not None else None
        if question is None or question.answered:
            raise UnknownCorrelation(f"geen openstaande vraag met bericht-id {relates_to}")
        question.answer, question.answered = answer, True
        if question.future is not None and not question.future.done():
            question.future.set_result(answer)
        return question.action

    async def wait(self, message_id: uuid.UUID, timeout: float) -> object:
        """Wait for the answer to a question.

        Raises:
            UnknownCorrelation: the question was never asked.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        question = self._open.get(message_id)
        if question is None:
            raise UnknownCorrelation(f"geen openstaande vraag met bericht-id {message_id}")
        if not question.answered:
            question.future = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(asyncio.shield(question.future), timeout)
        self._open.pop(message_id, None)
        return question.answer

    def pending(self) -> list[uuid.UUID]:
        self._expire()
        return [key for key, q in self._open.items() if not q.answered]

    def _expire(self) -> None:
        limit = self.clock() - self.ttl
        for key in [k for k, q in self._open.items() if q.asked_at < limit]:
            del self._open[key]
