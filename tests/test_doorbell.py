"""The relay's doorbell (hub.doorbell): every ring is sent, the leader's loop hears a burst of
them once, and ringing without a listener costs nothing and raises nothing."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

from hub.doorbell import Doorbell, DoorbellListener


class Calls:
    """An on_ring that counts."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def test_every_ring_is_sent_and_a_burst_is_heard_once(tmp_path: Path) -> None:
    path = tmp_path / "relay.sock"

    async def scenario() -> tuple[int, int]:
        calls = Calls()
        listener = DoorbellListener(path, calls)
        bell = Doorbell(path)
        try:
            for _ in range(50):  # rung before the loop reads: one burst
                bell.ring()
            listener.start(asyncio.get_running_loop())
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            bell.ring()
            deadline = time.monotonic() + 2
            while not calls.n and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            return calls.n, bell.rung
        finally:
            bell.close()
            listener.stop()

    calls, rung = asyncio.run(scenario())
    assert rung == 1  # the first 50 found no listener yet; the last one was sent
    assert calls == 1
    assert not path.exists()  # the listener removes its socket when it stops


def test_rings_in_a_burst_are_heard_together(tmp_path: Path) -> None:
    path = tmp_path / "relay.sock"

    async def scenario() -> tuple[int, int]:
        calls = Calls()
        listener = DoorbellListener(path, calls)
        listener.start(asyncio.get_running_loop())
        bell = Doorbell(path)
        try:
            for _ in range(20):  # sent while the loop is busy here: read in one go
                bell.ring()
            await asyncio.sleep(0.1)
            return calls.n, bell.rung
        finally:
            bell.close()
            listener.stop()

    calls, rung = asyncio.run(scenario())
    # the kernel queues a few datagrams per socket (net.unix.max_dgram_qlen); a ring that finds the
    # queue full is dropped, harmlessly: the waiting ones already wake the relay
    assert 1 <= rung <= 20
    assert calls == 1


def test_ringing_with_nobody_listening_is_harmless(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path / "nobody.sock")
    started = time.monotonic()
    bell.ring()
    assert bell.rung == 0  # not sent: the relay's poll finds the messages
    assert time.monotonic() - started < 0.5
    bell.close()


def test_a_socket_left_by_a_killed_leader_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "relay.sock"
    path.write_bytes(b"")  # what a killed leader leaves behind

    async def scenario() -> bool:
        heard = asyncio.Event()
        listener = DoorbellListener(path, heard.set)
        listener.start(asyncio.get_running_loop())
        bell = Doorbell(path)
        try:
            bell.ring()
            await asyncio.wait_for(heard.wait(), 2)
            return heard.is_set()
        finally:
            bell.close()
            listener.stop()

    assert asyncio.run(scenario())
