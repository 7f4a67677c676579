"""Transports carry delivery jobs from the outbox to the delivery workers.

``memory`` (embedded default) is an asyncio queue in this process; ``rabbitmq``
(scale mode) is a broker. Both pass ``tests/contract/test_transports.py``.
The outbox in the database stays the source of truth: a transport may lose a
job (a crash, a broker restart), and the relay publishes it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Job:
    """One delivery to attempt: one message to one receiver (the key of its delivery and outbox rows)."""

    message_id: str
    receiver: str


Handler = Callable[[Job], Awaitable[None]]


class Transport(Protocol):
    """Publish jobs (thread-safe) and consume them with a handler."""

    name: str

    def publish(self, jobs: list[Job]) -> None:
        """Hand jobs over; may be called from any thread."""
        ...

    async def consume(self, handler: Handler, concurrency: int) -> None:
        """Run ``handler`` on jobs until :meth:`close`; a job is acked when the handler returns."""
        ...

    async def close(self) -> None: ...

    def depth(self) -> int:
        """Jobs waiting (for /health and metrics)."""
        ...
