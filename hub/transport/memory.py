"""The in-process transport: an asyncio queue, fed thread-safely from the writer thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable

import structlog

from hub.transport import Handler, Job

log = structlog.get_logger(__name__)


class MemoryTransport:
    """Jobs live in memory; the durable outbox re-publishes what a crash loses."""

    name = "memory"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._incoming: list[Job] = []

    def publish(self, jobs: list[Job]) -> None:
        if self._closed or not jobs:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            for job in jobs:
                self._queue.put_nowait(job)
            return
        # from the writer thread: one wake-up of the loop takes everything published until it runs
        with self._lock:
            wake = not self._incoming
            self._incoming.extend(jobs)
        if wake:
            self._loop.call_soon_threadsafe(self._take_incoming)

    def _take_incoming(self) -> None:
        with self._lock:
            jobs, self._incoming = self._incoming, []
        for job in jobs:
            self._queue.put_nowait(job)

    async def consume(self, handler: Handler, concurrency: int) -> None:
        async def worker() -> None:
            while True:
                job = await self._queue.get()
                if job is None:
                    self._queue.put_nowait(None)  # let the other workers see the stop too
                    return
                try:
                    await handler(job)
                except Exception as exc:  # noqa: BLE001 - a worker outlives any one job; the outbox retries
                    log.error("job_crashed", message_id=job.message_id, receiver=job.receiver, error=repr(exc))

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*workers, return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        self._queue.put_nowait(None)

    def depth(self) -> int:
        return self._queue.qsize()

    def depths(self) -> dict[str, int]:
        return {}

    def ready(self) -> bool:
        return not self._closed

    def ensure_queues(self, receivers: Iterable[str]) -> None:
        return None
