"""Transports carry delivery jobs from the outbox to the delivery workers.

``memory`` (embedded default) is an asyncio queue in this process; ``rabbitmq``
(scale mode) is a broker. Both pass ``tests/contract/test_transports.py``.
The outbox in the database stays the source of truth: a transport may lose a
job (a crash, a broker restart), and the relay publishes it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hub.settings import Settings


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
        """Jobs waiting (for /health and metrics); on a broker, the messages waiting, each with one or more jobs."""
        ...

    def depths(self) -> dict[str, int]:
        """Jobs (on a broker: messages of jobs) waiting per receiver, as far as the transport knows (metrics)."""
        ...

    def ready(self) -> bool:
        """True while jobs published now would be carried (for /ready)."""
        ...

    def ensure_queues(self, receivers: Iterable[str]) -> None:
        """Make sure every receiver has its queue and is consumed (a no-op in memory)."""
        ...


async def open_transport(settings: Settings, loop: asyncio.AbstractEventLoop) -> Transport:
    """The configured transport, started: for RabbitMQ, connected, declared and a publish confirmed.

    Raises:
        TransportError: the broker did not answer within its deadline.
    """
    if settings.transport == "memory":
        from hub.transport.memory import MemoryTransport

        return MemoryTransport(loop)
    from hub.transport.rabbitmq import RabbitMQTransport

    transport = RabbitMQTransport(settings.rabbitmq_url, settings.broker, loop)
    await transport.start()
    return transport
