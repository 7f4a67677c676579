"""Scale mode end to end: separate API and worker processes on PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio

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
    cluster.rabbit_proxy.cut()
    try:
        # the transport notices the lost link at once (the proxy closes it) and /ready says so
        for _ in range(50):
            if httpx.get(f"{url}/ready", timeout=5).status_code == 503:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert httpx.get(f"{url}/ready", timeout=5).status_code == 503
    finally:
        cluster.rabbit_proxy.restore()
