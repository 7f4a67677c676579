"""How RabbitMQ hands jobs to several workers: consumer priorities (fill first) and combined acks.

RabbitMQ runs on this machine: without it these tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import time
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
    (requeued, not swept up by a ``multiple`` ack) and the slow one is acked once it finishes.
    One job per message here, so that each job is a message of its own to ack."""
    with temporary_namespace() as ns:
        transport = await make_rabbit(ns, prefetch=50, jobs_per_message=1)
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


async def test_jobs_published_together_travel_as_few_messages_each_handled_once() -> None:
    with temporary_namespace() as ns:
        transport = await make_rabbit(ns, jobs_per_message=32)
        transport.ensure_queues([QUEUE, "coa"])
        seen: list[Job] = []

        async def handler(job: Job) -> None:
            seen.append(job)

        task = _consume(transport, handler)
        try:
            transport.publish(jobs(100) + jobs(10, "coa", start=500))  # one burst
            await _until(lambda: len(seen) >= 110)
            await asyncio.sleep(0.5)  # nothing more comes
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()
        assert transport.messages_published == 5  # 32 + 32 + 32 + 4 for one partner, 10 for the other
        assert transport.confirmed == 110
        assert sorted(seen, key=lambda j: (j.receiver, j.message_id)) == sorted(
            jobs(100) + jobs(10, "coa", start=500), key=lambda j: (j.receiver, j.message_id)
        )


async def test_a_message_is_acked_when_all_its_jobs_finished_and_requeued_whole_when_one_crashed() -> None:
    with temporary_namespace() as ns:
        transport = await make_rabbit(ns, jobs_per_message=8)
        seen: list[str] = []
        crashed: set[str] = set()

        async def handler(job: Job) -> None:
            seen.append(job.message_id)
            if job.message_id == "m-3" and "m-3" not in crashed:
                crashed.add("m-3")
                raise RuntimeError("boom")

        task = _consume(transport, handler)
        try:
            transport.publish(jobs(5))  # one message of five jobs
            await _until(lambda: len(seen) == 10)  # all five again: the message came back whole
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()
        assert sorted(seen) == sorted([f"m-{i}" for i in range(1, 6)] * 2)

        # a consumer that stops while one job of a message is unfinished leaves the whole message
        # unacked: the next consumer gets every job of it again (and finds nothing else)
        first = await make_rabbit(ns, jobs_per_message=8)
        done: list[str] = []

        async def one_hangs(job: Job) -> None:
            if job.message_id == "m-12":
                await asyncio.sleep(3600)
            done.append(job.message_id)

        task = _consume(first, one_hangs)
        first.publish(jobs(3, start=11))
        await _until(lambda: len(done) == 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await first.close()
        second = await make_rabbit(ns)
        again: list[str] = []

        async def collect(job: Job) -> None:
            again.append(job.message_id)

        task = _consume(second, collect)
        try:
            await _until(lambda: len(again) == 3)
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await second.close()
        assert sorted(again) == ["m-11", "m-12", "m-13"]


async def test_one_job_messages_of_earlier_versions_are_still_consumed_and_unreadable_ones_dead_lettered() -> None:
    import pika

    from tests.scale.services import rabbit_url

    with temporary_namespace() as ns:
        transport = await make_rabbit(ns)
        transport.ensure_queues([QUEUE])
        seen: list[Job] = []

        async def handler(job: Job) -> None:
            seen.append(job)

        task = _consume(transport, handler)
        try:
            await _until(transport.ready)
            await asyncio.sleep(0.3)  # the queue is declared and consumed
            with pika.BlockingConnection(pika.URLParameters(rabbit_url())) as conn:
                ch = conn.channel()
                ch.confirm_delivery()
                for body in (b'{"m": "old-1", "r": "gemeente-utrecht"}', b'{"r": "gemeente-utrecht", "m": []}'):
                    ch.basic_publish(exchange=f"{ns}.jobs", routing_key=QUEUE, body=body)
            await _until(lambda: len(seen) == 1)
            await asyncio.sleep(0.5)
            with pika.BlockingConnection(pika.URLParameters(rabbit_url())) as conn:
                dead = conn.channel().queue_declare(queue=f"{ns}.dead", passive=True).method.message_count
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()
        assert seen == [Job("old-1", QUEUE)]
        assert dead == 1  # the message without jobs


async def test_the_jobs_published_in_one_turn_of_the_loop_cross_to_the_broker_together() -> None:
    """After-commit hooks publish job by job from the event loop; the IO thread gets them once the
    turn is over, so they travel as one message even when the turn runs long."""
    with temporary_namespace() as ns:
        transport = await make_rabbit(ns, jobs_per_message=32)
        transport.ensure_queues([QUEUE])
        transport.publish(jobs(1, start=100))
        await _until(lambda: transport.confirmed == 1)  # the queue is declared, the link warm
        before = transport.messages_published
        transport.publish(jobs(1))
        time.sleep(0.2)  # the same turn goes on; the IO thread is free to run meanwhile
        transport.publish(jobs(9, start=2))
        await _until(lambda: transport.confirmed == 11)
        assert transport.messages_published == before + 1
        seen: list[str] = []

        async def collect(job: Job) -> None:
            seen.append(job.message_id)

        task = _consume(transport, collect)
        try:
            await _until(lambda: len(seen) == 11)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()
        assert sorted(seen) == sorted(f"m-{i}" for i in [*range(1, 11), 100])
