"""Ports for servers that must know their port before they listen (the demo, tests, benchmarks).

A server that can bind port 0 itself should: the OS then picks a port nobody holds. Some
cannot: a simulator that must come back on the same port after a restart, or a hub whose
own URL goes into its partners' configuration before it starts. For those,
:func:`free_port` picks a port that is free now.

It picks it *outside* the kernel's ephemeral range. A port taken there and released is
what every outgoing connection on the machine draws its local port from: between the
pick and the server's bind, a client connecting anywhere could take it, and the server
fails with "address already in use" (CI lost a run to exactly that, on port 60053). A
port below the range is never given to a client, so only another server picking the
same port could collide; the pick is random to make that unlikely too.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000  # above the well-known and most registered service ports
_TRIES = 200


def ephemeral_range(path: Path | None = None) -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux's default where unknown)."""
    try:
        low, high = (int(x) for x in (path or _RANGE_FILE).read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port(host: str = "127.0.0.1", *, rng: random.Random | None = None) -> int:
    """A port on ``host`` that no socket holds now and no outgoing connection will take.

    Falls back to a port the OS picks (in the ephemeral range) only when the range leaves
    no room below it or every try is taken.
    """
    low, _ = ephemeral_range()
    pick = rng or random.SystemRandom()
    if low - 1 > _LOWEST:
        for _ in range(_TRIES):
            port = pick.randint(_LOWEST, low - 1)
            if _bindable(host, port):
                return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _bindable(host: str, port: int) -> bool:
    """Whether a listening server could bind ``host:port`` now. Without SO_REUSEADDR, so a
    port with connections lingering in TIME_WAIT counts as taken too."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
