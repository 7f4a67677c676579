"""Scale mode end to end: separate API and worker processes on PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.scale.cluster import Cluster

pytestmark = pytest.mark.scale


def test_api_and_two_workers_deliver_every_message_once(cluster_factory: type[Cluster]) -> None:
    cluster = cluster_factory().start(apis=1, workers=2)
    sent = asyncio.run(cluster.send(300, concurrency=16))
    assert len(sent.accepted) == 300
    cluster.wait_delivered(60)
    counts = cluster.check_exactly_once(sent)
    assert counts["partner_duplicates"] == 0


def test_ready_and_metrics_cover_database_and_broker(cluster_factory: type[Cluster]) -> None:
    cluster = cluster_factory().start(apis=1, workers=1)
    url = cluster.urls()[0]
    asyncio.run(cluster.send(20, concurrency=4))
    body = httpx.get(f"{url}/ready", timeout=5).json()
    assert body["status"] == "ready"
    assert body["checks"]["transport"]["name"] == "rabbitmq"
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert "knooppunt_messages_accepted_total" in metrics
    assert "knooppunt_outbox_rows" in metrics
    proxy = cluster.rabbit_proxy
    assert proxy is not None
    proxy.cut()
    try:
        # the transport notices the lost link at once (the proxy closes it) and /ready says so
        for _ in range(50):
            if httpx.get(f"{url}/ready", timeout=5).status_code == 503:
                break
            time.sleep(0.1)
        assert httpx.get(f"{url}/ready", timeout=5).status_code == 503
    finally:
        proxy.restore()


def test_three_workers_given_four_copies_of_every_job_call_each_partner_once(
    cluster_factory: type[Cluster],
) -> None:
    """The broker may hand the same job to several workers (redelivery, relay): the claim in the
    database lets exactly one of them call the partner."""
    from sqlalchemy import create_engine, select

    from hub.store.tables import outbox
    from hub.transport import Job
    from hub.transport.rabbitmq import RabbitMQTransport

    cluster = cluster_factory().start(apis=1, workers=0)
    sent = asyncio.run(cluster.send(200, concurrency=16))
    engine = create_engine(cluster.direct_url)
    with engine.connect() as conn:
        jobs = [Job(r.message_id, r.receiver) for r in conn.execute(select(outbox))]
    engine.dispose()
    assert len(jobs) == 200

    async def publish_copies() -> None:
        settings = cluster.settings.broker
        transport = RabbitMQTransport(cluster.settings.rabbitmq_url, settings, asyncio.get_running_loop())
        await transport.start()
        transport.ensure_queues({j.receiver for j in jobs})
        transport.publish(jobs * 3)
        while transport.confirmed < 600:
            await asyncio.sleep(0.05)
        await transport.close()

    asyncio.run(publish_copies())
    for _ in range(3):
        cluster.start_worker()
    cluster.wait_delivered(120)
    counts = cluster.check_exactly_once(sent)
    assert counts["partner_duplicates"] == 0
