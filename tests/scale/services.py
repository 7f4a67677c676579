"""The real PostgreSQL and RabbitMQ of this machine, isolated per test run.

Each run gets its own database (``knooppunt_test_<random>``) and its own broker
namespace (exchange and queue names), and removes them afterwards. When a
service is missing the tests fail: scale tests never skip.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pika
import psycopg

PG_HOST = os.environ.get("KNOOPPUNT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("KNOOPPUNT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("KNOOPPUNT_TEST_PG_USER", "postgres")
RABBIT_PORT = int(os.environ.get("KNOOPPUNT_TEST_RABBIT_PORT", "5672"))


def pg_url(database: str, port: int = PG_PORT) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{port}/{database}"


def rabbit_url(port: int = RABBIT_PORT) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5
    )


@contextlib.contextmanager
def temporary_database() -> Iterator[str]:
    """Create ``knooppunt_test_<random>`` and drop it (with its sessions) afterwards."""
    name = f"knooppunt_test_{secrets.token_hex(6)}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_namespace() -> Iterator[str]:
    """A broker namespace of our own; its exchanges and queues are deleted afterwards."""
    ns = f"knooppunt_test_{secrets.token_hex(6)}"
    try:
        yield ns
    finally:
        delete_namespace(ns)


def delete_namespace(ns: str) -> None:
    params = pika.URLParameters(rabbit_url())
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    conn = pika.BlockingConnection(params)
    try:
        # queues are named <ns>.jobs.<receiver> and <ns>.dead; ask the management-free way: try the known ones
        ch = conn.channel()
        for name in list(_declared_queues(ns)):
            ch.queue_delete(queue=name)
        ch.exchange_delete(exchange=f"{ns}.jobs")
        ch.exchange_delete(exchange=f"{ns}.dead")
        ch.queue_delete(queue=f"{ns}.dead")
    finally:
        conn.close()


def _declared_queues(ns: str) -> list[str]:
    import subprocess

    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip().startswith(f"{ns}.")]
