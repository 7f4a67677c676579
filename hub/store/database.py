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
import contextlib
import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Insert, Table, TableClause, bindparam, create_engine, event, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from hub.audit import AuditEvent, ChainWriter
from hub.errors import HubError, StoreError
from hub.settings import Settings
from hub.store.tables import audit_events, deliveries, messages, outbox
from hub.store.writelock import WriteLock, WriteLockTimeout

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: how long an SQLite writer waits for another to finish its transaction (SQLite's busy timeout,
#: and the deadline of the writers' own queue in front of it, hub.store.writelock)
SQLITE_BUSY_SECONDS = 10

# Buffered rows are inserted parents first; the statements are built once (SQLAlchemy caches them).
_INSERT_ORDER = (messages, deliveries, outbox, audit_events)
_INSERTS: dict[TableClause, Insert] = {t: insert(t) for t in _INSERT_ORDER}


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
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS})
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
    # message ids the batch's ingest units carry (``unit.message_key``), looked up in one query
    message_keys: list[str] = field(default_factory=list)
    _stored: dict[str, Any] | None = None

    def stored_messages(self, conn: Connection) -> dict[str, Any]:
        """id -> (digest, sender, receivers, received_at) of the batch's message ids already stored.

        One ``IN`` query for the whole batch, on first use, instead of one per message.
        """
        if self._stored is None:
            self._stored = {}
            if self.message_keys:
                for row in conn.execute(_STORED_MESSAGES, {"ids": self.message_keys}):
                    self._stored[row.id] = (row.digest, row.sender, tuple(row.receivers), row.received_at)
        return self._stored

    def flush(self, conn: Connection) -> None:
        """Insert the buffered rows, parents before children, a few statements per table (see insert_rows)."""
        for table in _INSERT_ORDER:
            rows = self.rows.pop(table, None)
            if rows:
                insert_rows(conn, table, rows)
        for table, rows in list(self.rows.items()):
            insert_rows(conn, table, rows)
        self.rows.clear()


def _insert_with_sqlalchemy(conn: Connection, table: TableClause, rows: list[dict[str, Any]]) -> None:
    statement = _INSERTS.get(table)
    conn.execute(insert(table) if statement is None else statement, rows)


_STORED_MESSAGES = select(
    messages.c.id, messages.c.digest, messages.c.sender, messages.c.receivers, messages.c.received_at
).where(messages.c.id.in_(bindparam("ids", expanding=True)))
_SQLITE_MAX_VARIABLES = 32766  # SQLite >= 3.32


def _chunks(rows: int, width: int) -> list[int]:
    """Row counts of the INSERTs for ``rows`` rows: powers of two (largest first, within SQLite's
    variable limit), so a few statement texts stay prepared in the driver's cache instead of one
    text, parsed anew, for every batch size."""
    largest = 1
    while largest * 2 * width <= _SQLITE_MAX_VARIABLES and largest < 256:
        largest *= 2
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    bit = largest
    while rest:
        bit //= 2
        if rest >= bit:
            sizes.append(bit)
            rest -= bit
    return sizes


@functools.lru_cache(maxsize=512)
def _multi_values(sql: str, rows: int) -> str:
    """``INSERT ... VALUES (?, ?)`` for one row -> the same for ``rows`` rows in one statement."""
    head, _, group = sql.partition(" VALUES ")
    return f"{head} VALUES {', '.join([group] * rows)}"


_RAW_INSERTS: dict[tuple[TableClause, tuple[str, ...]], tuple[str, tuple[str, ...], list[Any]]] = {}


def insert_rows(conn: Connection, table: TableClause, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table``, in ``conn``'s transaction.

    On SQLite the rows go straight to the driver as multi-row INSERTs (see
    :func:`_chunks`): the statement text and each column's bind processor (the
    same ones SQLAlchemy applies) are looked up once, which keeps the writer
    thread's share of the GIL small on the ingest path. On PostgreSQL (psycopg)
    they go in one COPY per table (see :func:`_insert_postgresql`). Rows with
    differing keys, and other databases, take SQLAlchemy's ``executemany``.
    """
    keys = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        _insert_postgresql(conn, table, rows, keys)
        return
    if conn.dialect.name != "sqlite" or any(len(row) != len(keys) for row in rows):
        _insert_with_sqlalchemy(conn, table, rows)
        return
    plan = _RAW_INSERTS.get((table, keys))
    if plan is None:
        compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        processors = [table.c[key].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for key in order]
        plan = (str(compiled), order, processors)
        _RAW_INSERTS[(table, keys)] = plan
    sql, order, processors = plan
    try:
        values = [
            [
                value if fn is None or value is None else fn(value)
                for fn, value in zip(processors, map(row.__getitem__, order), strict=True)
            ]
            for row in rows
        ]
    except KeyError:  # same length, other keys
        _insert_with_sqlalchemy(conn, table, rows)
        return
    raw: Any = conn.connection.driver_connection
    # one statement per chunk of rows: the driver lets go of the GIL for every step it takes,
    # and the event loop may then keep it for a whole switch interval
    try:
        start = 0
        for size in _chunks(len(values), len(order)):
            chunk = values[start : start + size]
            start += size
            raw.execute(_multi_values(sql, size), [v for row in chunk for v in row])
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc


_PG_COPIES: dict[tuple[TableClause, tuple[str, ...]], tuple[str, list[Any]] | None] = {}


def _pg_copy_plan(conn: Connection, table: TableClause, keys: tuple[str, ...]) -> tuple[str, list[Any]] | None:
    """(``COPY table (keys) FROM STDIN``, each key's bind processor) for rows with ``keys``; None
    when SQLAlchemy's INSERT for them binds more than the keys (a column default it fills in)."""
    dialect = conn.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    if set(compiled.binds) != set(keys) or len(compiled.binds) != len(keys):
        return None
    quote = dialect.identifier_preparer
    columns = ", ".join(quote.quote(key) for key in keys)
    processors = [compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect) for key in keys]
    return f"COPY {quote.format_table(table)} ({columns}) FROM STDIN", processors


def _insert_postgresql(conn: Connection, table: TableClause, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """Rows in one ``COPY ... FROM STDIN``, in ``conn``'s transaction.

    psycopg's ``executemany`` (which SQLAlchemy's takes) sends every row as a statement
    of its own, one write each, and the backend wakes up for each; the ingest path has
    nine rows a message over four tables. COPY sends the rows of a table together:
    about half the client's and the backend's CPU per row. The values are those
    SQLAlchemy binds (each column's own bind processor, applied to every value as
    SQLAlchemy does); the constraints, defaults and errors are those of an INSERT. A
    failure is raised as SQLAlchemy would raise it, and a lost connection invalidated.
    Rows with differing keys, or leaving a column to a Python-side default, take
    SQLAlchemy's path.
    """
    if conn.dialect.driver != "psycopg" or any(len(row) != len(keys) for row in rows):
        _insert_with_sqlalchemy(conn, table, rows)
        return
    cache_key = (table, keys)
    if cache_key in _PG_COPIES:
        plan = _PG_COPIES[cache_key]
    else:
        plan = _PG_COPIES[cache_key] = _pg_copy_plan(conn, table, keys)
    if plan is None:
        _insert_with_sqlalchemy(conn, table, rows)
        return
    sql, processors = plan
    try:
        values = [
            [
                value if fn is None else fn(value)
                for fn, value in zip(processors, map(row.__getitem__, keys), strict=True)
            ]
            for row in rows
        ]
    except KeyError:  # same length, other keys
        _insert_with_sqlalchemy(conn, table, rows)
        return
    raw: Any = conn.connection.driver_connection
    dbapi = conn.dialect.loaded_dbapi
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in values:
                copy.write_row(row)
    except dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, raw, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, dbapi.Error, connection_invalidated=lost) from exc


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


class HotReads:
    """Reads on the ingest path without SQLAlchemy's per-call cost.

    On SQLite each thread keeps one raw connection in autocommit mode (every
    SELECT sees the latest commit, no read transaction stays open) and runs the
    statement compiled once. On PostgreSQL (psycopg) likewise: each thread keeps
    one connection of its own (taken from the pool once, detached from it) in
    autocommit mode, instead of a checkout per call, each with its pre-ping round
    trip; one that broke is dropped and the read tried once more on a fresh one.
    Elsewhere a pooled connection per call. Parameters may be ``str``, ``int``, ``None`` or ``date``
    (stored by SQLAlchemy on SQLite as ``YYYY-MM-DD``); ``datetime`` is refused
    since SQLAlchemy's SQLite text form of it differs from ``isoformat``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self.postgresql = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._compiled: dict[int, tuple[Any, str, tuple[str, ...]]] = {}
        self._pg_compiled: dict[int, tuple[Any, str, tuple[tuple[str, str, Any], ...]] | None] = {}
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    def rows(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of ``statement`` (a SQLAlchemy select built once) for ``params``."""
        if not self.sqlite:
            if self.postgresql:
                plan = self._pg_plan(statement)
                if plan is not None:
                    return self._pg_rows(plan, params)
            with self.engine.connect() as conn:
                return [tuple(row) for row in conn.execute(statement, params)]
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled[0] is not statement:
            done = statement.compile(dialect=self.engine.dialect)
            compiled = (statement, str(done), tuple(done.positiontup or ()))
            self._compiled[id(statement)] = compiled
        values = [_sqlite_value(params[name]) for name in compiled[2]]
        raw: Any = getattr(self._local, "conn", None)
        if raw is None:
            raw = self.engine.raw_connection()
            with self._lock:
                self._opened.append(raw)
            self._local.conn = raw
        rows: list[tuple[Any, ...]] = raw.driver_connection.execute(compiled[1], values).fetchall()
        return rows

    def _pg_plan(self, statement: Any) -> tuple[Any, str, tuple[tuple[str, str, Any], ...]] | None:
        """(statement, SQL text, (bind name, parameter key, bind processor) per bind), compiled once;
        None for what the plain text cannot carry (expanding or escaped parameters)."""
        key = id(statement)
        if key in self._pg_compiled:
            plan = self._pg_compiled[key]
            if plan is None or plan[0] is statement:
                return plan
        dialect = self.engine.dialect
        done = statement.compile(dialect=dialect)
        binds = done.binds
        if done.escaped_bind_names or any(b.expanding for b in binds.values()):
            self._pg_compiled[key] = None
            return None
        plan = (
            statement,
            str(done),
            tuple((name, b.key, b.type.dialect_impl(dialect).bind_processor(dialect)) for name, b in binds.items()),
        )
        self._pg_compiled[key] = plan
        return plan

    def _pg_rows(
        self, plan: tuple[Any, str, tuple[tuple[str, str, Any], ...]], params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        _, sql, binds = plan
        values = {name: params[key] if fn is None else fn(params[key]) for name, key, fn in binds}
        dbapi = self.engine.dialect.loaded_dbapi
        for attempt in (1, 2):
            raw = self._pg_connection()
            try:
                rows: list[tuple[Any, ...]] = raw.execute(sql, values).fetchall()
            except dbapi.Error as exc:
                broken = bool(raw.broken or raw.closed)
                if broken:
                    self._pg_forget(raw)
                    if attempt == 1:
                        continue  # a connection lost since the last read: once more on a fresh one
                raise DBAPIError.instance(sql, values, exc, dbapi.Error, connection_invalidated=broken) from exc
            return rows
        raise StoreError("unreachable")  # pragma: no cover - the loop returns or raises

    def _pg_connection(self) -> Any:
        """This thread's psycopg connection: the engine's connect arguments, pre-pinged, then
        detached from the pool (closed by :meth:`close`, never handed to anyone else)."""
        raw: Any = getattr(self._local, "pg", None)
        if raw is None:
            fairy = self.engine.raw_connection()
            raw = fairy.driver_connection
            fairy.detach()
            raw.autocommit = True
            with self._lock:
                self._opened.append(raw)
            self._local.pg = raw
        return raw

    def _pg_forget(self, raw: Any) -> None:
        self._local.pg = None
        with self._lock, contextlib.suppress(ValueError):
            self._opened.remove(raw)
        with contextlib.suppress(Exception):
            raw.close()

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        raise TypeError("HotReads binds no datetime on SQLite")
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass
class _Job(Generic[T]):
    unit: Callable[[Tx], T]
    future: Future[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[T] | None = None
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    #: answered, with the other jobs of the same sink in the batch, by one call (see ``submit_to``)
    sink: Callable[[list[tuple[_Job[Any], bool, Any]]], None] | None = None
    tag: Any = None


class Writer:
    """The single writer: group commit with one SAVEPOINT per unit.

    Adaptive group commit: a unit that arrives while the writer is busy (its last
    batch ended less than ``linger`` seconds ago) waits that long for others to join
    its batch, so sustained load is written in few large batches, each one
    transaction and one fsync, instead of many small ones. A unit that arrives on
    an idle writer is written at once.

    Where batches run: units submitted from the event loop the writer is attached to
    (:meth:`attach`, the server's loop) are written by that loop itself, between its
    other callbacks; everything else (threads, the CLI, other loops) goes to the
    writer thread. On CPython a writer thread beside a busy event loop shares the GIL
    with it: every statement hands it back and forth, and on two cores that made both
    the loop's and the writer's work dearer (see docs/performance.md). Only waiting
    (for another process's turn) leaves the loop, to a helper thread. One batch at a
    time writes in a process, whichever runs it.

    On an SQLite file every batch's transaction runs under the file's write lock
    (:mod:`hub.store.writelock`), so the writers of several processes take turns
    without sleeping in SQLite's busy handler.
    """

    def __init__(
        self, engine: Engine, *, batch_max: int = 256, linger: float = 0.0, lock_timeout: float = SQLITE_BUSY_SECONDS
    ) -> None:
        self.engine = engine
        self.lock_timeout = lock_timeout
        self.batch_max = batch_max
        self.linger = linger
        self._idle_since = 0.0  # monotonic time the last batch ended
        self._stop = False  # the run loop took the stop request
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.lock: WriteLock | None = None
        # one batch at a time in this process, in the writer thread or the attached loop (and the
        # file lock above is per process: two batches of one process would both "hold" it)
        self._turn = threading.Lock()
        # the attached event loop's own batches (see attach)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_jobs: list[_Job[Any]] = []
        self._loop_cycle_due = False  # a cycle is scheduled or running; it takes what is queued
        self._loop_conn: Connection | None = None
        self._turn_waiter: ThreadPoolExecutor | None = None
        self.batches = 0
        self.units = 0

    def start(self) -> None:
        if self._thread is None:
            self.lock = WriteLock.for_engine(self.engine)
            self._thread = threading.Thread(target=self._run, name="knooppunt-writer", daemon=True)
            self._thread.start()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write the units ``submit``-ted from ``loop`` in that loop, not in the writer thread."""
        self._loop = loop

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._loop = None  # what the loop submits from now on fails as for a stopped writer
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._turn.acquire(timeout=5):  # not while a batch of the loop writes
            try:
                if self._loop_conn is not None:
                    with contextlib.suppress(Exception):
                        self._loop_conn.close()
                    self._loop_conn = None
            finally:
                self._turn.release()
        if self._turn_waiter is not None:
            self._turn_waiter.shutdown(wait=False)
            self._turn_waiter = None
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def submit_future(self, unit: Callable[[Tx], T]) -> Future[T]:
        if self._thread is None:
            raise StoreError("the writer is not running")
        future: Future[T] = Future()
        self._queue.put(_Job(unit, future=future))
        return future

    def submit_to(
        self, unit: Callable[[Tx], T], sink: Callable[[list[tuple[_Job[Any], bool, Any]]], None], tag: Any
    ) -> None:
        """Run ``unit`` in the next batch; once the batch is committed, ``sink`` gets a list of
        (job, ok, result or exception) with every job of that batch it was given (``job.tag``
        tells them apart), in the writer thread, after the jobs' after-commit hooks."""
        if self._thread is None:
            raise StoreError("the writer is not running")
        self._queue.put(_Job(unit, sink=sink, tag=tag))

    async def submit(self, unit: Callable[[Tx], T]) -> T:
        """Run ``unit`` in the next batch; returns once that batch is committed.

        From the attached loop the batch is written in that loop; from elsewhere the answer
        comes back through one loop callback per batch (not one per unit). The unit's
        after-commit hooks run in the caller's event loop.
        """
        if self._thread is None:
            raise StoreError("the writer is not running")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        job = _Job(unit, loop=loop, waiter=waiter)
        if loop is self._loop:
            self._loop_jobs.append(job)
            if not self._loop_cycle_due:
                self._schedule_loop_cycle(loop)
        else:
            self._queue.put(job)
        return await waiter

    def run_sync(self, unit: Callable[[Tx], T], timeout: float = 30.0) -> T:
        """For threads and the CLI: submit and wait."""
        return self.submit_future(unit).result(timeout=timeout)

    # -- the turn: one batch at a time per process, then the file lock across processes --------

    def _take_turn(self) -> bool:
        """Wait for this process's turn and the file lock; -> whether another batch made it wait.
        ``WriteLockTimeout`` past the deadline."""
        deadline = time.monotonic() + self.lock_timeout
        waited = not self._turn.acquire(blocking=False)
        if waited and not self._turn.acquire(timeout=self.lock_timeout):
            raise WriteLockTimeout(f"de schrijver bleef {self.lock_timeout:g} s bezet")
        if self.lock is not None:
            try:
                self.lock.acquire(max(0.0, deadline - time.monotonic()))
            except BaseException:
                self._turn.release()
                raise
            waited = waited or self.lock.waited
        return waited

    def _try_turn(self) -> bool:
        if not self._turn.acquire(blocking=False):
            return False
        if self.lock is None or self.lock.try_acquire():
            return True
        self._turn.release()
        return False

    def _release_turn(self) -> None:
        if self.lock is not None:
            self.lock.release()
        self._turn.release()

    # -- batches of the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                if self.linger and time.monotonic() - self._idle_since < self.linger:
                    time.sleep(self.linger)  # busy: let the units on their way join this batch
                batch = [first]
                self._stop = False
                self._top_up(batch)
                conn = self._commit_batch(conn, batch)
                self._idle_since = time.monotonic()
                if self._stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _top_up(self, batch: list[_Job[Any]]) -> None:
        """Add what is queued to ``batch``, up to ``batch_max`` (a stop request ends the run after it)."""
        while not self._stop and len(batch) < self.batch_max:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is None:
                self._stop = True
            else:
                batch.append(job)

    def _commit_batch(self, conn: Connection | None, batch: list[_Job[Any]]) -> Connection | None:
        # A caller that gave up (its task was cancelled, e.g. at shutdown) is not waited for: its
        # unit is not run at all.
        batch = [job for job in batch if not _abandoned(job)]
        if not batch:
            return conn
        try:
            waited = self._take_turn()
        except WriteLockTimeout as exc:
            # nothing began: the whole batch is answered with the timeout (split, each unit would wait again)
            log.error("write_lock_timeout", error=str(exc), units=len(batch))
            _answer([(job, False, exc) for job in batch])
            return conn
        try:
            if waited:
                # the units that came while another batch wrote join this batch, not the next
                self._top_up(batch)
                batch = [job for job in batch if not _abandoned(job)]
            conn, results = self._write(conn, batch)
        finally:
            self._release_turn()
        _answer(results)
        return conn

    # -- batches of the attached loop ---------------------------------------------------------

    def _schedule_loop_cycle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_cycle_due = True
        busy = self.linger and time.monotonic() - self._idle_since < self.linger
        # busy: let the units on their way join this batch; idle: write at once
        loop.call_later(self.linger if busy else 0.0, lambda: loop.create_task(self._loop_cycle()))

    def _take_loop_jobs(self, batch: list[_Job[Any]]) -> list[_Job[Any]]:
        room = self.batch_max - len(batch)
        taken, self._loop_jobs = self._loop_jobs[:room], self._loop_jobs[room:]
        return batch + [job for job in taken if not _abandoned(job)]

    async def _loop_cycle(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            batch = self._take_loop_jobs([])
            if batch and self._loop is loop:
                await self._write_in_loop(loop, batch)
            elif batch:  # stopped meanwhile
                _resolve_in_loop([(job, False, StoreError("the writer is not running")) for job in batch])
        finally:
            self._loop_cycle_due = False
            if self._loop_jobs:
                self._schedule_loop_cycle(loop)

    async def _write_in_loop(self, loop: asyncio.AbstractEventLoop, batch: list[_Job[Any]]) -> None:
        if not self._try_turn():
            # another process (or the writer thread) writes: wait in a helper thread, not in the loop
            if self._turn_waiter is None:
                self._turn_waiter = ThreadPoolExecutor(1, thread_name_prefix="knooppunt-writer-turn")
            turn = self._turn_waiter.submit(self._take_turn)
            try:
                await asyncio.wrap_future(turn)
            except WriteLockTimeout as exc:
                log.error("write_lock_timeout", error=str(exc), units=len(batch))
                _resolve_in_loop([(job, False, exc) for job in batch])
                return
            except asyncio.CancelledError:
                # the loop is shutting down: a turn granted later is given back at once
                turn.add_done_callback(self._give_back_turn)
                _resolve_in_loop([(job, False, StoreError("the writer is stopping")) for job in batch])
                raise
            batch = self._take_loop_jobs(batch)  # the units that came meanwhile join this batch
        try:
            self._loop_conn, results = self._write(self._loop_conn, batch)
        finally:
            self._release_turn()
        self._idle_since = time.monotonic()
        _resolve_in_loop(results)

    def _give_back_turn(self, turn: Future[bool]) -> None:
        if not turn.cancelled() and turn.exception() is None:
            self._release_turn()

    # -- one batch, under the turn ------------------------------------------------------------

    def _write(self, conn: Connection | None, batch: list[_Job[Any]]) -> tuple[Connection | None, list[Any]]:
        """Write ``batch`` in one transaction (the turn is held); -> the connection to keep and
        each job's (job, ok, result or exception)."""
        try:
            if conn is None:
                # (re)connect lazily: a database that is down fails this batch, not the writer
                conn = self.engine.connect()
            results = self._run_batch(conn, batch)
        except Exception as exc:  # noqa: BLE001 - whatever fails, fails its batch, never the writer
            lost = conn is None or bool(getattr(exc, "connection_invalidated", False)) or conn.invalidated
            if not isinstance(exc, SQLAlchemyError):
                log.error("batch_crashed", error=repr(exc), units=len(batch))
            if len(batch) > 1 and not lost:
                # one unit's rows broke the shared flush (e.g. a race on a unique key with
                # another process): run each unit in a transaction of its own to isolate it
                log.warning("batch_split", error=exc.__class__.__name__, units=len(batch))
                results = []
                for job in batch:
                    conn, one = self._write(conn, [job])
                    results.extend(one)
                return conn, results
            log.error("batch_failed", error=str(exc), units=len(batch))
            failure = StoreError(f"de database weigerde de transactie: {exc.__class__.__name__}")
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            return None, [(job, False, failure) for job in batch]
        self.batches += 1
        self.units += len(batch)
        return conn, results

    def _run_batch(self, conn: Connection, batch: list[_Job[Any]]) -> list[tuple[_Job[Any], bool, Any]]:
        results: list[tuple[_Job[Any], bool, Any]] = []
        with conn.begin():
            chain = ChainWriter(conn, insert_rows)
            shared = Batch(message_keys=[k for job in batch if (k := getattr(job.unit, "message_key", None))])
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
    by_sink: dict[Callable[[list[tuple[_Job[Any], bool, Any]]], None], list[tuple[_Job[Any], bool, Any]]] = {}
    for job, ok, value in results:
        if job.loop is not None:
            by_loop.setdefault(job.loop, []).append((job, ok, value))
            continue
        if job.sink is not None:
            by_sink.setdefault(job.sink, []).append((job, ok, value))
            if ok:
                _run_hooks(job.callbacks)
            continue
        if job.future is not None and not job.future.done():
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        if ok:
            _run_hooks(job.callbacks)
    for sink, items in by_sink.items():
        try:
            sink(items)
        except Exception as exc:  # noqa: BLE001 - a sink must never stop the writer
            log.error("answer_sink_failed", error=repr(exc), units=len(items))
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
