"""The in-process transport: an asyncio queue, fed thread-safely from the writer thread."""

from __future__ import annotations

import asyncio
import contextlib

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
        else:
            self._loop.call_soon_threadsafe(self._put_all, jobs)

    def _put_all(self, jobs: list[Job]) -> None:
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
