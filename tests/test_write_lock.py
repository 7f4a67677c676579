"""The writers of several processes take turns on one SQLite file (hub.store.writelock).

The other writer here is a real process holding the lock file, as another API process of
`knooppunt run --processes N` does while its batch commits; tests/test_processes.py runs
the whole command with two processes writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from hub.errors import StoreError
from hub.settings import Settings
from hub.store import migrate
from hub.store.database import Tx, Writer, make_engine
from hub.store.tables import partners
from hub.store.writelock import WriteLock, WriteLockTimeout

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()  # hold until told
fcntl.flock(fd, fcntl.LOCK_UN)
print("released", flush=True)
sys.stdin.readline()
"""


class Holder:
    """Another process holding the write lock until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"

    def close(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)  # also closes the pipes


def add_partner(partner_id: str):  # type: ignore[no-untyped-def]
    def unit(tx: Tx) -> str:
        tx.conn.execute(insert(partners).values(id=partner_id, name=partner_id, role="gemeente", created_at=tx.now))
        return partner_id

    return unit


@pytest.fixture
def db(settings: Settings) -> tuple[Settings, Path]:
    engine = make_engine(settings)
    migrate.upgrade(engine)
    engine.dispose()
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    return settings, database.with_name(database.name + ".write-lock")


@pytest.fixture
def holder(db: tuple[Settings, Path]) -> Iterator[Holder]:
    """Another process holding the database's write lock from the start of the test."""
    h = Holder(db[1])
    try:
        yield h
    finally:
        h.close()


@contextlib.contextmanager
def running_writer(settings: Settings, **options: Any) -> Iterator[Writer]:
    engine = make_engine(settings, writer=True)
    w = Writer(engine, **options)
    w.start()
    try:
        yield w
    finally:
        w.stop()
        engine.dispose()


def count(settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(partners)).scalar_one())
    finally:
        engine.dispose()


def test_a_writer_on_an_sqlite_file_takes_the_lock_beside_it(db: tuple[Settings, Path]) -> None:
    settings, lock_path = db
    with running_writer(settings) as w:
        assert w.lock is not None
        assert w.lock.path == lock_path
        assert w.run_sync(add_partner("p1")) == "p1"
        assert lock_path.stat().st_mode & 0o777 == 0o600
        assert w.lock.contended == 0  # nobody else was writing
    assert w.lock is None  # closed with the writer


def test_a_batch_waits_while_another_process_writes_and_commits_the_moment_it_is_done(
    db: tuple[Settings, Path], holder: Holder
) -> None:
    settings, _ = db
    with running_writer(settings) as w:
        future = w.submit_future(add_partner("p1"))
        time.sleep(0.3)
        assert not future.done()  # waiting its turn, not failing
        assert count(settings) == 0
        released = time.monotonic()
        holder.release()
        assert future.result(timeout=5) == "p1"
        # woken by the kernel, not by a sleep in SQLite's busy handler
        assert time.monotonic() - released < 0.5
        assert count(settings) == 1
        assert w.lock is not None
        assert w.lock.contended == 1


def test_units_that_come_while_another_process_writes_join_the_waiting_batch(
    db: tuple[Settings, Path], holder: Holder
) -> None:
    settings, _ = db
    with running_writer(settings) as w:
        first = w.submit_future(add_partner("first"))
        time.sleep(0.2)  # the writer has taken "first" and waits for its turn
        later = [w.submit_future(add_partner(f"later{i}")) for i in range(5)]
        time.sleep(0.1)
        holder.release()
        assert [f.result(timeout=5) for f in [first, *later]] == ["first"] + [f"later{i}" for i in range(5)]
        assert (w.batches, w.units) == (1, 6)  # one transaction, not "first" alone and then the rest


def test_a_writer_killed_while_it_holds_the_lock_lets_go_of_it(db: tuple[Settings, Path], holder: Holder) -> None:
    settings, _ = db
    with running_writer(settings) as w:
        future = w.submit_future(add_partner("p1"))
        time.sleep(0.2)
        assert not future.done()
        killed = time.monotonic()
        holder.proc.kill()  # SIGKILL: no chance to unlock; the kernel drops the lock with the process
        assert future.result(timeout=5) == "p1"
        assert time.monotonic() - killed < 1.0
        assert count(settings) == 1


def test_past_the_deadline_the_batch_fails_whole_and_nothing_is_written(
    db: tuple[Settings, Path], holder: Holder
) -> None:
    settings, lock_path = db
    with running_writer(settings, lock_timeout=0.3) as w:
        futures = [w.submit_future(add_partner(f"p{i}")) for i in range(3)]
        for future in futures:
            with pytest.raises(WriteLockTimeout) as caught:
                future.result(timeout=5)
            assert isinstance(caught.value, StoreError)
            assert caught.value.status == 503
            assert "bezet door een andere schrijver" in caught.value.detail
        assert count(settings) == 0
        assert w.lock is not None
        assert w.lock.timeouts >= 1
        holder.release()
        # the writer goes on, and the turn it gave up did not stay taken
        assert w.run_sync(add_partner("after")) == "after"
        assert count(settings) == 1
        other = WriteLock(lock_path)
        with other.held(1.0):
            pass
        other.close()


def test_two_writers_take_turns_and_lose_nothing(db: tuple[Settings, Path]) -> None:
    settings, _ = db
    with running_writer(settings, batch_max=8) as a, running_writer(settings, batch_max=8) as b:
        results: list[str] = []

        def write(w: Writer, prefix: str) -> None:
            futures = [w.submit_future(add_partner(f"{prefix}{i}")) for i in range(200)]
            results.extend(f.result(timeout=30) for f in futures)

        threads = [threading.Thread(target=write, args=(w, p)) for w, p in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 400
        assert count(settings) == 400


def test_no_lock_for_a_database_that_is_not_an_sqlite_file() -> None:
    assert WriteLock.for_engine(make_engine(Settings(database_url="sqlite://"))) is None
    assert WriteLock.for_engine(make_engine(Settings(database_url="postgresql+psycopg://u@127.0.0.1/x"))) is None


# -- batches written by the event loop the writer is attached to (Hub.start attaches the server's) --


def test_units_from_the_attached_loop_are_written_in_that_loop_and_others_in_the_writer_thread(
    db: tuple[Settings, Path],
) -> None:
    settings, _ = db
    where: list[int] = []

    def unit(name: str):  # type: ignore[no-untyped-def]
        def run(tx: Tx) -> str:
            where.append(threading.get_ident())
            return str(add_partner(name)(tx))

        return run

    with running_writer(settings) as w:

        async def main() -> int:
            w.attach(asyncio.get_running_loop())
            assert await w.submit(unit("from-loop")) == "from-loop"
            return threading.get_ident()

        loop_thread = asyncio.run(main())
        assert w.run_sync(unit("from-thread")) == "from-thread"
        assert where[0] == loop_thread
        assert where[1] != loop_thread
        assert where[1] != threading.get_ident()
        assert count(settings) == 2


def test_the_loop_keeps_serving_while_its_batch_waits_for_another_process_and_late_units_join_it(
    db: tuple[Settings, Path], holder: Holder
) -> None:
    settings, _ = db
    with running_writer(settings) as w:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            w.attach(loop)
            first = asyncio.create_task(w.submit(add_partner("first")))
            ticks, started = 0, time.monotonic()
            while time.monotonic() - started < 0.3:
                await asyncio.sleep(0.01)
                ticks += 1
            assert not first.done()  # waiting for its turn, not failing ...
            assert ticks >= 15  # ... and not in the loop: it went on with other work meanwhile
            later = [asyncio.create_task(w.submit(add_partner(f"later{i}"))) for i in range(5)]
            await asyncio.sleep(0.05)
            released = time.monotonic()
            holder.release()
            names = await asyncio.wait_for(asyncio.gather(first, *later), 5)
            assert time.monotonic() - released < 0.5
            assert names == ["first"] + [f"later{i}" for i in range(5)]

        asyncio.run(main())
        assert (w.batches, w.units) == (1, 6)  # one transaction for all of them
        assert w.lock is not None
        assert w.lock.contended == 1
        assert count(settings) == 6


def test_a_loop_batch_past_the_deadline_fails_whole_and_the_turn_is_given_back(
    db: tuple[Settings, Path], holder: Holder
) -> None:
    settings, lock_path = db
    with running_writer(settings, lock_timeout=0.3) as w:

        async def main() -> None:
            w.attach(asyncio.get_running_loop())
            results = await asyncio.gather(*(w.submit(add_partner(f"p{i}")) for i in range(3)), return_exceptions=True)
            assert all(isinstance(r, WriteLockTimeout) and r.status == 503 for r in results), results
            assert count(settings) == 0
            holder.release()
            assert await w.submit(add_partner("after")) == "after"

        asyncio.run(main())
        assert count(settings) == 1
        assert w.run_sync(add_partner("thread-after")) == "thread-after"  # the thread gets its turn too
        other = WriteLock(lock_path)
        with other.held(1.0):
            pass
        other.close()


def test_the_loop_and_the_writer_thread_of_one_process_take_turns_and_lose_nothing(
    db: tuple[Settings, Path],
) -> None:
    settings, _ = db
    with running_writer(settings, batch_max=8) as w:
        from_thread: list[str] = []

        def write() -> None:
            futures = [w.submit_future(add_partner(f"t{i}")) for i in range(200)]
            from_thread.extend(f.result(timeout=30) for f in futures)

        async def main() -> list[str]:
            w.attach(asyncio.get_running_loop())
            thread = threading.Thread(target=write)
            thread.start()
            names = await asyncio.gather(*(w.submit(add_partner(f"l{i}")) for i in range(200)))
            await asyncio.to_thread(thread.join, 60)
            return list(names)

        from_loop = asyncio.run(main())
        assert len(from_loop) == len(from_thread) == 200
        assert count(settings) == 400
        assert w.lock is not None
        assert w.lock.timeouts == 0


def test_a_stopped_writer_refuses_what_the_loop_submits(db: tuple[Settings, Path]) -> None:
    settings, _ = db
    with running_writer(settings) as w:

        async def main() -> None:
            w.attach(asyncio.get_running_loop())
            assert await w.submit(add_partner("before")) == "before"
            w.stop()
            with pytest.raises(StoreError):
                await w.submit(add_partner("after"))

        asyncio.run(main())
    assert count(settings) == 1
