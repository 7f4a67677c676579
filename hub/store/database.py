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
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.audit import AuditEvent, ChainWriter
from hub.errors import HubError, StoreError
from hub.settings import Settings
from hub.store.tables import audit_events, deliveries, messages, outbox

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Buffered rows are inserted parents first; the statements are built once (SQLAlchemy caches them).
_INSERT_ORDER = (messages, deliveries, outbox, audit_events)
_INSERTS: dict[Table, Insert] = {t: insert(t) for t in _INSERT_ORDER}


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
class Batch:
    """What the units of one batch share: rows to insert at the end, message ids seen so far."""

    rows: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)

    def flush(self, conn: Connection) -> None:
        """Insert the buffered rows, parents before children, one executemany per table."""
        for table in _INSERT_ORDER:
            rows = self.rows.pop(table, None)
            if rows:
                conn.execute(_INSERTS[table], rows)
        for table, rows in list(self.rows.items()):
            conn.execute(insert(table), rows)
        self.rows.clear()


@dataclass
class Tx:
    """What a unit of work sees: the connection, the audit chain, the batch's clock.

    ``insert`` buffers a row until the end of the batch (one executemany per table);
    ``conn`` executes at once. A unit that only reads and buffers may declare
    ``pure = True``: it then runs without its own SAVEPOINT, since a failure
    leaves nothing to undo.
    """

    conn: Connection
    chain: ChainWriter
    now: datetime
    batch: Batch
    _after_commit: list[Callable[[], None]] = field(default_factory=list)
    _rows: list[tuple[Table, dict[str, Any]]] = field(default_factory=list)

    def audit(self, event: AuditEvent) -> int:
        return self.chain.append(event, self.now)

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        self._rows.append((table, row))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the writer thread once the batch is durable."""
        self._after_commit.append(callback)

    def _merge(self) -> None:
        for table, row in self._rows:
            self.batch.rows.setdefault(table, []).append(row)
        self._rows.clear()


Unit = Callable[[Tx], T]


@dataclass
class _Job(Generic[T]):
    unit: Callable[[Tx], T]
    future: Future[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[T] | None = None
    callbacks: list[Callable[[], None]] = field(default_factory=list)


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
        future: Future[T] = Future()
        self._queue.put(_Job(unit, future=future))
        return future

    async def submit(self, unit: Callable[[Tx], T]) -> T:
        """Run ``unit`` in the next batch; returns once that batch is committed.

        The answer comes back through one loop callback per batch (not one per unit),
        and the unit's after-commit hooks run in the caller's event loop.
        """
        if self._thread is None:
            raise StoreError("the writer is not running")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(unit, loop=loop, waiter=waiter))
        return await waiter

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
        # A caller that gave up (its task was cancelled, e.g. at shutdown) is not waited for: its
        # unit is not run at all.
        batch = [job for job in batch if not _abandoned(job)]
        if not batch:
            return conn
        try:
            results = self._run_batch(conn, batch)
        except SQLAlchemyError as exc:
            if len(batch) > 1:
                # one unit's rows broke the shared flush (e.g. a race on a unique key with
                # another process): run each unit in a transaction of its own to isolate it
                log.warning("batch_split", error=exc.__class__.__name__, units=len(batch))
                for job in batch:
                    conn = self._commit_batch(conn, [job])
                return conn
            log.error("batch_failed", error=str(exc), units=len(batch))
            failure = StoreError(f"de database weigerde de transactie: {exc.__class__.__name__}")
            _answer([(job, False, failure) for job in batch])
            conn.close()
            return self.engine.connect()
        self.batches += 1
        self.units += len(batch)
        _answer(results)
        return conn

    def _run_batch(self, conn: Connection, batch: list[_Job[Any]]) -> list[tuple[_Job[Any], bool, Any]]:
        results: list[tuple[_Job[Any], bool, Any]] = []
        with conn.begin():
            chain = ChainWriter(conn)
            shared = Batch()
            now = datetime.now(UTC)
            for job in batch:
                tx = Tx(conn, chain, now, shared)
                mark = chain.mark()
                pure = getattr(job.unit, "pure", False)
                if not pure:
                    shared.flush(conn)  # direct statements see every row buffered before them
                savepoint = None if pure else conn.begin_nested()
                try:
                    value = job.unit(tx)
                    if savepoint is not None:
                        tx._merge()
                        shared.flush(conn)
                        savepoint.commit()
                except (HubError, SQLAlchemyError, ValueError, KeyError, TypeError) as exc:
                    if savepoint is not None:
                        savepoint.rollback()
                    chain.reset(mark)
                    results.append((job, False, exc))
                    continue
                tx._merge()
                results.append((job, True, value))
                job.callbacks = list(tx._after_commit)
            shared.flush(conn)
            chain.flush()
            chain.write_head()
        return results


def _abandoned(job: _Job[Any]) -> bool:
    if job.future is not None:
        return job.future.cancelled()
    return job.waiter is not None and job.waiter.cancelled()


def _run_hooks(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - a post-commit hook must never stop the writer
            log.error("after_commit_failed", error=repr(exc))


def _answer(results: list[tuple[_Job[Any], bool, Any]]) -> None:
    """Answer every caller of a committed (or failed) batch: thread futures directly,
    event-loop callers with one callback per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job[Any], bool, Any]]] = {}
    for job, ok, value in results:
        if job.loop is not None:
            by_loop.setdefault(job.loop, []).append((job, ok, value))
            continue
        if job.future is not None and not job.future.done():
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        if ok:
            _run_hooks(job.callbacks)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_in_loop, items)
        except RuntimeError:  # the loop closed while the batch committed; nobody is waiting
            log.warning("answer_dropped", units=len(items))


def _resolve_in_loop(items: list[tuple[_Job[Any], bool, Any]]) -> None:
    for job, ok, value in items:
        if ok:
            _run_hooks(job.callbacks)
        waiter = job.waiter
        if waiter is None or waiter.done():
            continue
        if ok:
            waiter.set_result(value)
        else:
            waiter.set_exception(value)
