"""TransportContract: the same tests against MemoryTransport and RabbitMQTransport.

RabbitMQ runs on this machine (scale marker): without it these tests fail.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hub.errors import TransportError
from hub.settings import BrokerSettings
from hub.transport import Job, Transport
from hub.transport.memory import MemoryTransport
from tests.faults.proxy import FaultProxy
from tests.scale.services import RABBIT_PORT, rabbit_url, temporary_namespace

Factory = Callable[[], Any]
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def jobs(n: int, receiver: str = "gemeente-utrecht", start: int = 1) -> list[Job]:
    return [Job(f"m-{i}", receiver) for i in range(start, start + n)]


def ids(n: int, start: int = 1) -> set[str]:
    return {f"m-{i}" for i in range(start, start + n)}


async def make_rabbit(ns: str, url: str | None = None, **overrides: Any) -> Transport:
    from hub.transport.rabbitmq import RabbitMQTransport

    values: dict[str, Any] = {"timeout_seconds": 5, "heartbeat_seconds": 5, "reconnect_seconds": 0.3}
    values.update(overrides)
    settings = BrokerSettings(namespace=ns, **values)
    transport = RabbitMQTransport(url or rabbit_url(), settings, asyncio.get_running_loop())
    await transport.start()
    return transport


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.scale)])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    if request.param == "memory":
        t: Transport = MemoryTransport(asyncio.get_running_loop())
        yield t
        await t.close()
        return
    with temporary_namespace() as ns:
        t = await make_rabbit(ns)
        t.ensure_queues(["gemeente-utrecht", "coa"])
        yield t
        await t.close()


class Collector:
    def __init__(self) -> None:
        self.seen: list[Job] = []
        self.event = asyncio.Event()
        self.want = 0

    async def __call__(self, job: Job) -> None:
        self.seen.append(job)
        if len({j.message_id for j in self.seen}) >= self.want:
            self.event.set()


async def consume_until(transport: Transport, collector: Collector, want: int, timeout: float = 30) -> None:
    collector.want = want
    task = asyncio.create_task(transport.consume(collector, 8))
    try:
        await asyncio.wait_for(collector.event.wait(), timeout)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_every_published_job_reaches_the_handler(transport: Transport) -> None:
    assert transport.ready()
    sent = jobs(200) + jobs(50, "coa", start=1000)
    transport.publish(sent)
    collector = Collector()
    await consume_until(transport, collector, len(sent))
    assert {j.message_id for j in collector.seen} == {j.message_id for j in sent}


async def test_publish_from_another_thread_is_safe(transport: Transport) -> None:
    sent = jobs(100)
    thread = threading.Thread(target=transport.publish, args=(sent,))
    thread.start()
    thread.join()
    collector = Collector()
    await consume_until(transport, collector, len(sent))
    assert {j.message_id for j in collector.seen} == {j.message_id for j in sent}


async def test_publish_from_many_threads_at_once_loses_nothing(transport: Transport) -> None:
    """The writer thread publishes after every batch; several batches may land before the loop
    takes the first (the in-process transport wakes its loop once for all of them)."""
    batches = [jobs(25, start=i * 100) for i in range(8)]
    threads = [threading.Thread(target=transport.publish, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    collector = Collector()
    await consume_until(transport, collector, 200)
    assert sorted(j.message_id for j in collector.seen) == sorted(j.message_id for b in batches for j in b)


async def test_a_crashing_handler_does_not_stop_the_others(transport: Transport) -> None:
    sent = jobs(20)
    transport.publish(sent)
    collector = Collector()

    async def handler(job: Job) -> None:
        if job.message_id == "m-5" and not any(j.message_id == "m-5" for j in collector.seen):
            collector.seen.append(job)
            raise RuntimeError("boom")
        await collector(job)

    collector.want = len(sent)
    task = asyncio.create_task(transport.consume(handler, 4))
    try:
        await asyncio.wait_for(collector.event.wait(), 30)
    except TimeoutError:
        # the memory transport drops a crashed job (the outbox publishes it again); the broker redelivers it
        assert transport.name == "memory"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert {j.message_id for j in collector.seen} == {j.message_id for j in sent}


async def test_close_stops_consuming(transport: Transport) -> None:
    task = asyncio.create_task(transport.consume(Collector(), 2))
    await asyncio.sleep(0.1)
    await transport.close()
    await asyncio.wait_for(task, 10)
    assert not transport.ready()


# -- RabbitMQ only -------------------------------------------------------------------


@pytest.mark.scale
async def test_rabbitmq_unacked_jobs_come_back_to_the_next_consumer() -> None:
    with temporary_namespace() as ns:
        first = await make_rabbit(ns)
        first.publish(jobs(10))
        stuck = asyncio.Event()

        async def never_finishes(job: Job) -> None:
            stuck.set()
            await asyncio.sleep(3600)

        first.ensure_queues(["gemeente-utrecht"])
        task = asyncio.create_task(first.consume(never_finishes, 1))
        await asyncio.wait_for(stuck.wait(), 10)
        await first.close()
        await asyncio.wait_for(task, 10)
        second = await make_rabbit(ns)
        second.ensure_queues(["gemeente-utrecht"])
        collector = Collector()
        await consume_until(second, collector, 10)
        await second.close()
        assert {j.message_id for j in collector.seen} == ids(10)


@pytest.mark.scale
async def test_rabbitmq_a_slow_partner_does_not_block_the_others() -> None:
    with temporary_namespace() as ns:
        t = await make_rabbit(ns, prefetch=2)
        t.ensure_queues(["slow", "fast"])
        t.publish(jobs(20, "slow") + jobs(200, "fast", start=100))
        fast_done = asyncio.Event()
        fast: set[int] = set()

        async def handler(job: Job) -> None:
            if job.receiver == "slow":
                await asyncio.sleep(30)
            fast.add(job.message_id)
            if len(fast) == 200:
                fast_done.set()

        task = asyncio.create_task(t.consume(handler, 4))
        started = time.monotonic()
        await asyncio.wait_for(fast_done.wait(), 20)
        assert time.monotonic() - started < 20
        await t.close()
        await asyncio.wait_for(task, 10)


@pytest.mark.scale
async def test_rabbitmq_windowed_confirms_carry_many_jobs_quickly() -> None:
    with temporary_namespace() as ns:
        t = await make_rabbit(ns, confirm_window=500)
        t.ensure_queues(["gemeente-utrecht"])
        started = time.monotonic()
        t.publish(jobs(3000))
        deadline = time.monotonic() + 30
        from hub.transport.rabbitmq import RabbitMQTransport

        assert isinstance(t, RabbitMQTransport)
        while t.confirmed < 3000 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        assert t.confirmed == 3000, t.confirmed
        assert elapsed < 15
        await t.close()


@pytest.mark.scale
async def test_rabbitmq_reconnects_and_loses_nothing_when_the_broker_link_is_cut() -> None:
    proxy = FaultProxy(RABBIT_PORT).start()
    try:
        with temporary_namespace() as ns:
            t = await make_rabbit(ns, url=rabbit_url(proxy.port))
            t.ensure_queues(["gemeente-utrecht"])
            collector = Collector()
            collector.want = 600
            task = asyncio.create_task(t.consume(collector, 8))
            t.publish(jobs(300))
            await asyncio.sleep(0.2)
            proxy.cut()
            t.publish(jobs(300, start=301))  # published while the broker is unreachable
            await asyncio.sleep(1.5)
            assert not t.ready()
            proxy.restore()
            await asyncio.wait_for(collector.event.wait(), 30)
            assert {j.message_id for j in collector.seen} == ids(600)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await t.close()
    finally:
        proxy.close()


@pytest.mark.scale
async def test_rabbitmq_start_fails_within_its_deadline_when_the_broker_is_unreachable() -> None:
    proxy = FaultProxy(RABBIT_PORT).start()
    proxy.cut()
    try:
        started = time.monotonic()
        with pytest.raises(TransportError, match="niet klaar"):
            await make_rabbit("knooppunt_test_unreachable", url=rabbit_url(proxy.port), timeout_seconds=1)
        assert time.monotonic() - started < 10
    finally:
        proxy.close()


@pytest.mark.scale
async def test_rabbitmq_a_hung_broker_link_is_given_up_within_its_deadline_and_nothing_is_lost() -> None:
    proxy = FaultProxy(RABBIT_PORT).start()
    try:
        with temporary_namespace() as ns:
            t = await make_rabbit(ns, url=rabbit_url(proxy.port), timeout_seconds=2, heartbeat_seconds=2)
            t.ensure_queues(["gemeente-utrecht"])
            collector = Collector()
            collector.want = 200
            task = asyncio.create_task(t.consume(collector, 8))
            proxy.stall()
            t.publish(jobs(200))  # no confirm can come back: the watchdog must give up on this link
            deadline = time.monotonic() + 15
            while t.ready() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not t.ready()
            proxy.restore()
            await asyncio.wait_for(collector.event.wait(), 30)
            assert {j.message_id for j in collector.seen} == ids(200)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await t.close()
    finally:
        proxy.close()
