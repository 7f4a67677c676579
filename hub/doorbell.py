"""The relay's doorbell: an extra API process of `knooppunt run --processes N` says "I committed
messages" so the leader's relay publishes them now, not at its next poll.

An API process runs no transport: what it accepts is committed with its outbox rows unpublished,
for the leader's relay. Polling alone would hold every such message back by up to
``delivery.poll_seconds``. So after each commit that left outbox rows for the relay, the API
process sends an empty datagram to a Unix socket the leader listens on, in the leader's private
directory (mode 0700: only the hub's own user can reach it). A ring carries no data and can only
make the relay poll early; a lost ring (the leader restarting, a full socket buffer) costs no
message, the poll still finds it. Every commit rings (a skipped ring could be the one after the
relay's last poll); the leader takes all rings waiting at once, and its relay polls at most every
``hub.dispatch.RING_POLL_GAP_SECONDS``, so under load one poll answers many rings.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path


class Doorbell:
    """The ringing side (an API process). Thread-safe; ``ring`` never blocks and never raises."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.rung = 0

    def ring(self) -> None:
        with contextlib.suppress(OSError):  # no leader listening, or its buffer is full: the poll finds it
            self._sock.sendto(b"", self.path)
            self.rung += 1

    def close(self) -> None:
        self._sock.close()


class DoorbellListener:
    """The listening side (the leader): calls ``on_ring`` in the event loop once per burst of rings."""

    def __init__(self, path: Path, on_ring: Callable[[], None]) -> None:
        self.path = path
        self.on_ring = on_ring
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a leader that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        self.path.chmod(0o600)
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)
        self._sock, self._loop = sock, loop

    def _readable(self) -> None:
        assert self._sock is not None
        rang = False
        while True:  # take every ring waiting: one poll answers them all
            try:
                self._sock.recv(64)
            except OSError:  # nothing more waiting (BlockingIOError), or the socket is going away
                break
            rang = True
        if rang:
            self.on_ring()

    def stop(self) -> None:
        if self._sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
