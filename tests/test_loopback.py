"""free_port: a port a server can bind later, which no outgoing connection takes meanwhile."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from hub import loopback
from hub.loopback import ephemeral_range, free_port


def test_a_picked_port_lies_below_the_ephemeral_range_and_can_be_bound() -> None:
    low, _ = ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert all(20000 <= p < low for p in ports), sorted(ports)
    assert len(ports) > 40  # random picks, not one port handed to every caller
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports.pop()))
        server.listen()


def test_a_port_held_by_a_server_is_never_picked() -> None:
    rng = random.Random(7)
    first = free_port(rng=random.Random(7))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", first))
        holder.listen()
        assert free_port(rng=rng) != first  # the same random sequence: the held port is skipped


def test_outgoing_connections_never_land_on_a_picked_port() -> None:
    """The race CI lost a run to: a client's local port is drawn from the ephemeral range,
    so a port below it stays free for the server that asked for it."""
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        target = server.getsockname()
        clients = [socket.create_connection(target) for _ in range(40)]
        try:
            local = {c.getsockname()[1] for c in clients}
        finally:
            for c in clients:
                c.close()
    assert port not in local
    low, high = ephemeral_range()
    assert all(low <= p <= high for p in local)


def test_without_room_below_the_range_the_os_picks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wide = tmp_path / "range"
    wide.write_text("1024\t65000\n")
    monkeypatch.setattr(loopback, "_RANGE_FILE", wide)
    port = free_port()
    assert 1024 <= port <= 65000
    broken = tmp_path / "broken"
    broken.write_text("geen getallen")
    assert ephemeral_range(broken) == (32768, 60999)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)
