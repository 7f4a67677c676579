"""Engines and the group-commit writer.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit is on disk before
anyone is told it happened. To stay fast, one writer thread commits many
units of work in a single transaction (group commit); each unit runs inside
its own SAVEPOINT, so one failing unit does not take the others down, and
every caller is answered only after the COMMIT returned.

PostgreSQL (scale mode) uses the same writer; every statement there carries
a ``statement_timeout`` deadline.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.audit import AuditEvent, ChainWriter
from hub.errors import HubError, StoreError
from hub.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite so BEGIN/SAVEPOINT are ours.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(settings: Settings, *, writer: bool = False) -> Engine:
    """An engine for the configured database; ``writer`` takes SQLite's write lock at BEGIN."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if writer else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    timeout = settings.store.statement_timeout_ms
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2 if writer else 8,
        pool_timeout=timeout / 1000,
        connect_args={"connect_timeout": max(1, timeout // 1000), "options": f"-c statement_timeout={timeout}"},
    )


@dataclass
class Tx:
    """What a unit of work sees: the connection, the audit chain, the batch's clock."""

    conn: Connection
    chain: ChainWriter
    now: datetime
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def audit(self, event: AuditEvent) -> int:
        return self.chain.append(event, self.now)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the writer thread once the batch is durable."""
        self._after_commit.append(callback)


Unit = Callable[[Tx], T]


@dataclass
class _Job(Generic[T]):
    unit: Callable[[Tx], T]
    future: Future[T]


class Writer:
    """The single writer: group commit with one SAVEPOINT per unit."""

    def __init__(self, engine: Engine, *, batch_max: int = 256) -> None:
        self.engine = engine
        self.batch_max = batch_max
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.units = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="knooppunt-writer", daemon=True)
            self._thread.start()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def submit_future(self, unit: Callable[[Tx], T]) -> Future[T]:
        if self._thread is None:
            raise StoreError("the writer is not running")
        job: _Job[T] = _Job(unit, Future())
        self._queue.put(job)
        return job.future

    async def submit(self, unit: Callable[[Tx], T]) -> T:
        """Run ``unit`` in the next batch; returns once that batch is committed."""
        return await asyncio.wrap_future(self.submit_future(unit))

    def run_sync(self, unit: Callable[[Tx], T], timeout: float = 30.0) -> T:
        """For threads and the CLI: submit and wait."""
        return self.submit_future(unit).result(timeout=timeout)

    def _run(self) -> None:
        conn = self.engine.connect()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < self.batch_max:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    batch.append(job)
                conn = self._commit_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: Connection, batch: list[_Job[Any]]) -> Connection:
        results: list[tuple[_Job[Any], bool, Any]] = []
        callbacks: list[Callable[[], None]] = []
        try:
            with conn.begin():
                chain = ChainWriter(conn)
                now = datetime.now(UTC)
                for job in batch:
                    tx = Tx(conn, chain, now)
                    mark = chain.mark()
                    savepoint = conn.begin_nested()
                    try:
                        value = job.unit(tx)
                        chain.flush()
                        savepoint.commit()
                    except (HubError, SQLAlchemyError, ValueError, KeyError, TypeError) as exc:
                        savepoint.rollback()
                        chain.reset(mark)
                        results.append((job, False, exc))
                        continue
                    results.append((job, True, value))
                    callbacks.extend(tx._after_commit)
                chain.write_head()
        except SQLAlchemyError as exc:
            log.error("batch_failed", error=str(exc), units=len(batch))
            failure = StoreError(f"de database weigerde de transactie: {exc.__class__.__name__}")
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(failure)
            conn.close()
            return self.engine.connect()
        self.batches += 1
        self.units += len(batch)
        for job, ok, value in results:
            # A caller that went away (client disconnect, shutdown) cancelled its future; the
            # work is committed all the same. Answering it must not kill the writer thread.
            try:
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
            except InvalidStateError:
                log.info("writer_caller_gone", units=1)
        for callback in callbacks:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - a post-commit hook must never stop the writer
                log.error("after_commit_failed", error=repr(exc))
        return conn
