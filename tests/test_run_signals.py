"""`knooppunt run` stops on the first SIGINT or SIGTERM, whenever it comes (hub/cli/runner.Stop).

A SIGTERM during start-up used to leave `knooppunt run --demo` running: each uvicorn server put
back the signal handler it had found when it stopped, so servers stopping out of order put back
a stopped server's handler, and the SIGTERM handler raised KeyboardInterrupt wherever the main
thread was, once inside a garbage-collector callback that ignored it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from hub.cli.runner import Stop
from hub.loopback import free_port
from tests.helpers import run_demo, wait_for_output


async def _app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]


def _servers(n: int) -> list[uvicorn.Server]:
    return [
        uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=free_port(), log_level="error", lifespan="off"))
        for _ in range(n)
    ]


def test_a_signal_stops_every_server_and_the_handlers_found_come_back() -> None:
    servers = _servers(3)
    stop = Stop()
    stop.watch(servers)
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    async def main() -> None:
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            for s in servers:
                assert (await client.get(f"http://127.0.0.1:{s.config.port}/")).status_code == 204
        seen.append(signal.getsignal(signal.SIGTERM))  # no server put in its own
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)

    with stop.installed():
        asyncio.run(main())
    assert seen == [stop.handle]
    assert stop.signals == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_before_the_servers_exist_stops_them_once_they_are_watched() -> None:
    stop = Stop()
    stop.handle(signal.SIGTERM, None)
    servers = _servers(2)
    stop.watch(servers)

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(s.serve() for s in servers)), 10)

    asyncio.run(main())
    assert all(s.should_exit for s in servers)
    assert not any(s.force_exit for s in servers)


def test_a_second_interrupt_forces_the_servers() -> None:
    servers = _servers(2)
    stop = Stop()
    stop.watch(servers)
    stop.handle(signal.SIGINT, None)
    assert [s.force_exit for s in servers] == [False, False]
    stop.handle(signal.SIGINT, None)
    assert [s.force_exit for s in servers] == [True, True]


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.6])
def test_run_demo_ends_on_sigterm_whenever_it_comes(tmp_path: Path, delay: float) -> None:
    """The whole command, SIGTERM at a few moments of its start-up (the demo's servers starting,
    its scenario under way): it ends, and no simulator keeps its port."""
    with run_demo(tmp_path, free_port()) as (proc, log):
        wait_for_output(proc, log, "Stoppen: Ctrl-C")
        time.sleep(delay)
        proc.terminate()
        assert proc.wait(timeout=20) == 0, log.read_text()
    simulator = httpx.Client(timeout=1)
    with pytest.raises(httpx.ConnectError):
        simulator.get("http://127.0.0.1:9103/berichten")  # gemeente-utrecht's simulator is gone
