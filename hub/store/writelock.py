"""One queue for the writers of one SQLite file, across processes.

`knooppunt run --processes N` runs a group-commit writer in every API process,
all on one SQLite file, and SQLite lets one connection write at a time. Left to
SQLite, a writer that finds the file locked waits in its busy handler, which
sleeps 1, 2, 5, 10, 15... ms between tries: with two busy processes most of a
batch's time was spent asleep after the lock had already been let go. So each
writer first takes an exclusive ``flock`` on a file beside the database, for
the span of its batch's transaction. The kernel wakes the next waiter the
moment the holder lets go, and the writers take turns batch by batch. SQLite's
own locking still guarantees correctness; this lock only makes the waiting
cheap. A writer that does not take it (an older hub, a tool) is merely served by
SQLite's busy handler as before.

Every writer's Python work (building rows, hashing the audit chain) then runs
under its own process's GIL, in parallel with the other processes; only the
writing itself takes turns. (Before, one leader process wrote for all of them
and did all that work under its one GIL: see docs/performance.md.)

The wait has a deadline, as every database call here: a waiter gives up after
``timeout`` seconds with a ``WriteLockTimeout`` (a ``StoreError``) (its batch fails and is answered so),
and a lock that is granted after its waiter gave up is let go at once. A process
that dies lets go of its lock with its last file descriptor.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from hub.errors import StoreError


class WriteLockTimeout(StoreError):
    """Another writer held the database longer than the deadline."""


@dataclass
class _Wait:
    granted: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False


class WriteLock:
    """An exclusive lock on ``path``, shared by the writers of every process that opens it.

    One instance belongs to one writer (``held`` is not re-entrant, and two holders in one process
    would both "hold" it: the writer lets one batch at a time take it). Waiting for a
    busy lock happens in a helper thread blocked in the kernel, so the writer can give up
    at its deadline while the wake-up stays immediate.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._guard = threading.Lock()
        self._waits: queue.SimpleQueue[_Wait | None] = queue.SimpleQueue()
        self._helper: threading.Thread | None = None
        self._outstanding = 0  # waits handed to the helper and not yet settled (guarded)
        #: batches that found the lock taken by another writer, and those that gave up waiting
        self.contended = 0
        self.timeouts = 0
        #: whether the last turn had to wait for another writer
        self.waited = False

    @classmethod
    def for_engine(cls, engine: Engine) -> WriteLock | None:
        """The lock of an SQLite file database (``<file>.write-lock``); None for any other."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        if url.database.startswith("file:"):  # a URI filename: SQLite parses it, we do not
            return None
        database = Path(url.database)
        return cls(database.with_name(database.name + ".write-lock"))

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """Hold the lock for the block; ``WriteLockTimeout`` (a ``StoreError``) past ``timeout`` s."""
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()

    def try_acquire(self) -> bool:
        """Take the lock if it is free now; never waits."""
        self.waited = False
        with self._guard:
            # While the helper still waits for a turn a writer gave up, it may hold the lock on this
            # very file descriptor, and a second LOCK_EX on it would "succeed": queue behind it instead.
            if self._outstanding:
                return False
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` s; ``WriteLockTimeout`` past it."""
        if self.try_acquire():
            return
        with self._guard:
            self._outstanding += 1
        self.contended += 1
        self.waited = True
        wait = _Wait()
        self._start_helper()
        self._waits.put(wait)
        if wait.granted.wait(timeout):
            return
        with self._guard:
            if wait.granted.is_set():  # granted just as the deadline passed
                return
            wait.abandoned = True  # the helper lets it go when it comes
        self.timeouts += 1
        raise WriteLockTimeout(f"de database bleef {timeout:g} s bezet door een andere schrijver ({self.path.name})")

    def _start_helper(self) -> None:
        if self._helper is None:
            self._helper = threading.Thread(target=self._wait_for_turns, name="knooppunt-write-lock", daemon=True)
            self._helper.start()

    def _wait_for_turns(self) -> None:
        while (wait := self._waits.get()) is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # asleep in the kernel until the holder lets go
            with self._guard:
                self._outstanding -= 1
                if wait.abandoned:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                else:
                    wait.granted.set()

    def close(self) -> None:
        """Stop the helper (after a wait it is in, if any) and close the file."""
        if self._helper is not None:
            self._waits.put(None)
            self._helper.join(timeout=30)
            self._helper = None
        with contextlib.suppress(OSError):
            os.close(self._fd)
