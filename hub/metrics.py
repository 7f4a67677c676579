"""Prometheus metrics of one process (API or worker), in a registry of its own.

knooppunt_messages_accepted_total{sender}
knooppunt_deliveries_delivered_total{partner}
knooppunt_deliveries_failed_total{partner}          dead letters
knooppunt_deliveries_retried_total{partner}
knooppunt_delivery_latency_seconds{partner}         accepted -> delivered (histogram)
knooppunt_partner_call_seconds{partner}             one adapter call (histogram)
knooppunt_queue_depth{partner}                      job messages waiting in the transport (at scrape;
                                                    on RabbitMQ each carries 1..jobs_per_message jobs)
knooppunt_outbox_rows                               outbox rows not yet delivered (at scrape)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from hub.store.tables import outbox

if TYPE_CHECKING:
    from hub.transport import Transport

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class Metrics:
    """The counters and histograms the hub updates, and their text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.accepted = Counter("knooppunt_messages_accepted", "Messages accepted (202)", ["sender"], registry=r)
        self.delivered = Counter("knooppunt_deliveries_delivered", "Deliveries delivered", ["partner"], registry=r)
        self.failed = Counter("knooppunt_deliveries_failed", "Deliveries dead-lettered", ["partner"], registry=r)
        self.retried = Counter("knooppunt_deliveries_retried", "Delivery retries scheduled", ["partner"], registry=r)
        self.latency = Histogram(
            "knooppunt_delivery_latency_seconds",
            "Time from acceptance to delivery",
            ["partner"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.call = Histogram(
            "knooppunt_partner_call_seconds", "One adapter call", ["partner"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(
            "knooppunt_queue_depth",
            "Job messages waiting in the transport (RabbitMQ: each carries one or more jobs of the partner)",
            ["partner"],
            registry=r,
        )
        self.outbox_rows = Gauge("knooppunt_outbox_rows", "Outbox rows not yet delivered", registry=r)
        self._sources: list[Callable[[], None]] = []

    def on_scrape(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` before each exposition (gauges read at scrape time)."""
        self._sources.append(refresh)

    def render(self) -> bytes:
        for refresh in self._sources:
            refresh()
        return generate_latest(self.registry)


def scrape_gauges(metrics: Metrics, engine: Engine, transport: Transport | None) -> None:
    """Read the gauges that are facts of the moment: queue depth per partner, outbox rows."""
    if transport is not None:
        for partner, depth in transport.depths().items():
            metrics.queue_depth.labels(partner).set(depth)
    try:
        with engine.connect() as conn:
            metrics.outbox_rows.set(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
    except SQLAlchemyError:
        metrics.outbox_rows.set(float("nan"))
