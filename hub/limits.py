"""Partner budgets shared by the processes of one machine: token buckets in a memory-mapped file.

`knooppunt run --processes N` (the embedded default) spreads a partner's connections over N
processes on one port. Buckets in each process's memory would grant a partner its rate N
times; here the leader and its API processes take a partner's tokens from one slot of a
small file in the leader's private directory (``limits.bucket_file``, set by the leader).

- **Exact, and cheap.** A take locks the file (``flock``), reads and writes one slot of
  the mapping and unlocks: a few microseconds, no round trip to another process. The
  refill is counted on ``CLOCK_MONOTONIC``, which every process of the machine shares.
- **Fixed size.** 4,096 slots of 32 bytes, found by a 64-bit hash of the key and linear
  probing; a hub has far fewer partners. Should the table ever be full, a new key is
  decided by the process's own bucket (logged), as without sharing.
- Keys of client addresses (failed authentications) stay in each process's memory, as with
  PostgreSQL (:mod:`hub.store.buckets`): they are many and only slow down guessing.

Scale mode, with API processes on several machines, shares through PostgreSQL instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from hub.auth import PARTNER_KEY_PREFIX, RateLimiter

log = structlog.get_logger(__name__)

SLOTS = 4096
_SLOT = struct.Struct("=Qdd8x")  # key hash (0: free), tokens, last refill (CLOCK_MONOTONIC)
SIZE = SLOTS * _SLOT.size


def _key_hash(key: str) -> int:
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value or 1  # 0 marks a free slot


class FileRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose partner buckets are shared through ``path`` by every process
    that opens it (created, mode 0600, by the first)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < SIZE:
                    os.ftruncate(fd, SIZE)  # zeros: every slot free
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._slots: dict[str, int] = {}  # key -> its slot, once found
        self._thread_lock = threading.Lock()  # flock is per open file: threads of one process queue here
        self.overflows = 0
        self._overflowed: set[str] = set()

    def take(self, key: str, rate: float, burst: int) -> float:
        if not key.startswith(PARTNER_KEY_PREFIX):
            return super().take(key, rate, burst)
        with self._locked():
            slot = self._slot(key)
            if slot is None:
                self.overflows += 1
                if key not in self._overflowed:  # one line per key, not one per request
                    self._overflowed.add(key)
                    log.warning("rate_bucket_table_full", key=key, slots=SLOTS)
                return super().take(key, rate, burst)
            offset = slot * _SLOT.size
            mark, tokens, last = _SLOT.unpack_from(self._map, offset)
            now = self._clock()
            tokens = float(burst) if tokens == 0.0 and last == 0.0 else min(float(burst), tokens + (now - last) * rate)
            taken = tokens >= 1.0
            _SLOT.pack_into(self._map, offset, mark, tokens - 1.0 if taken else tokens, now)
        return 0.0 if taken else (1.0 - tokens) / rate

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, key: str) -> int | None:
        """The key's slot (claimed for it if new); None when the table is full. Under the lock."""
        known = self._slots.get(key)
        if known is not None:
            return known
        mark = _key_hash(key)
        start = mark % SLOTS
        for step in range(SLOTS):
            slot = (start + step) % SLOTS
            found = _SLOT.unpack_from(self._map, slot * _SLOT.size)[0]
            if found == mark:
                self._slots[key] = slot
                return slot
            if found == 0:
                _SLOT.pack_into(self._map, slot * _SLOT.size, mark, 0.0, 0.0)  # new: full at first take
                self._slots[key] = slot
                return slot
        return None

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
