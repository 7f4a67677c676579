"""A delivery worker process (scale mode): no HTTP API, only the dispatcher and its relay.

``knooppunt worker`` runs :func:`run_worker` until SIGTERM or SIGINT. Start as
many as the partners need; they share the database and the broker, and claim
each delivery before calling the partner (see :mod:`hub.dispatch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from hub import logs
from hub.dispatch import Dispatcher
from hub.metrics import scrape_gauges
from hub.service import Hub
from hub.settings import Settings
from hub.transport import open_transport

log = structlog.get_logger(__name__)


async def run_worker(
    settings: Settings,
    *,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    stop: asyncio.Event | None = None,
) -> None:
    """Start the store, the transport (declared and confirmed) and the dispatcher; run until ``stop``."""
    logs.configure(json=True, level=settings.log_level)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    hub = Hub(settings.model_copy(update={"run_workers": True}))
    transport = await open_transport(settings, loop)
    await hub.start(transport)
    dispatcher = Dispatcher(hub)
    await dispatcher.start(recover_all=settings.is_sqlite)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host, registry=hub.metrics.registry)
    log.info("worker_started", worker=dispatcher.worker_id, transport=settings.transport)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)
            await asyncio.to_thread(scrape_gauges, hub.metrics, hub.engine, hub.transport)
    finally:
        await dispatcher.stop()
        await hub.stop()
        log.info("worker_stopped", worker=dispatcher.worker_id)
