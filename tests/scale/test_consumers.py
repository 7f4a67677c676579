"""How RabbitMQ hands jobs to several workers: consumer priorities (fill first) and combined acks.

RabbitMQ runs on this machine: without it these tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub.transport import Job
from tests.contract.test_transports import jobs, make_rabbit
from tests.scale.services import temporary_namespace

pytestmark = [pytest.mark.scale, pytest.mark.anyio]

QUEUE = "gemeente-utrecht"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.02)


def _consume(transport: Any, handler: Callable[[Job], Awaitable[None]]) -> asyncio.Task[None]:
    transport.ensure_queues([QUEUE])
    return asyncio.create_task(transport.consume(handler, 8))


async def test_a_trickle_goes_to_one_worker_and_to_the_next_when_it_is_gone() -> None:
    with temporary_namespace() as ns:
        first, second = await make_rabbit(ns), await make_rabbit(ns)
        got: dict[int, list[str]] = {0: [], 1: []}

        def handler(i: int) -> Callable[[Job], Awaitable[None]]:
            async def handle(job: Job) -> None:
                got[i].append(job.message_id)

            return handle

        tasks = [_consume(first, handler(0)), _consume(second, handler(1))]
        try:
            await asyncio.sleep(0.5)  # both consuming
            for job in jobs(30):  # one at a time: neither prefetch window ever fills
                first.publish([job])
                await asyncio.sleep(0.01)
            await _until(lambda: len(got[0]) + len(got[1]) == 30)
            top = 0 if first._priority > second._priority else 1  # type: ignore[attr-defined]
            assert len(got[top]) == 30, got
            # the preferred worker goes away: the other one takes the queue
            await (first if top == 0 else second).close()
            (second if top == 0 else first).publish(jobs(10, start=100))
            await _until(lambda: len(got[1 - top]) == 10)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await first.close()
            await second.close()


async def test_combined_acks_never_cover_a_failed_or_unfinished_job() -> None:
    """Jobs finished around a slow one and a failing one are acked; the failing one comes back
    (requeued, not swept up by a ``multiple`` ack) and the slow one is acked once it finishes."""
    with temporary_namespace() as ns:
        transport = await make_rabbit(ns, prefetch=50)
        release = asyncio.Event()
        seen: list[str] = []
        failed: set[str] = set()

        async def handler(job: Job) -> None:
            seen.append(job.message_id)
            if job.message_id == "m-3":
                await release.wait()  # the oldest job in hand stays unfinished for a while
            if job.message_id == "m-7" and job.message_id not in failed:
                failed.add(job.message_id)
                raise RuntimeError("boom")

        task = _consume(transport, handler)
        try:
            transport.publish(jobs(20))
            await _until(lambda: seen.count("m-7") == 2)  # nacked and redelivered, though m-8.. were acked
            assert seen.count("m-3") == 1
            release.set()
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()
        # a new consumer on the same queue finds nothing left: every job was acked exactly once
        again = await make_rabbit(ns)
        late: list[str] = []

        async def collect(job: Job) -> None:
            late.append(job.message_id)

        task = _consume(again, collect)
        try:
            await asyncio.sleep(1.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await again.close()
        assert late == []
        assert sorted(set(seen)) == sorted(f"m-{i}" for i in range(1, 21))
