"""`knooppunt run --workers N` and `knooppunt worker`: scale mode refuses half a configuration and
fails fast, within its deadline, when the broker cannot be reached."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.settings import ROOT, Settings
from tests.scale.cluster import Cluster


def test_run_with_workers_needs_rabbitmq_and_postgres(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["run", "--workers", "2"], env={"KNOOPPUNT_DATABASE_URL": settings.database_url})
    assert result.exit_code == 2
    assert "schaalmodus" in result.output


def test_worker_gives_up_within_its_deadline_when_the_broker_is_unreachable(settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    env = {
        "KNOOPPUNT_DATABASE_URL": settings.database_url,
        "KNOOPPUNT_TRANSPORT": "rabbitmq",
        "KNOOPPUNT_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F",
        "KNOOPPUNT_BROKER__TIMEOUT_SECONDS": "1",
        "KNOOPPUNT_LOG_LEVEL": "warning",
        "PATH": "/usr/bin:/bin",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "worker"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert time.monotonic() - started < 30
    assert "RabbitMQ was niet klaar" in proc.stderr.decode()


@pytest.mark.scale
def test_run_with_workers_restarts_a_worker_that_was_killed(
    cluster_factory: type[Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.cli.processes import WorkerSupervisor

    cluster = cluster_factory().start(apis=1, workers=0)
    for key, value in cluster.env().items():
        monkeypatch.setenv(key, value)
    supervisor = WorkerSupervisor(2, restart_pause=0.2)
    supervisor.start()
    try:
        first = supervisor.procs[0]
        assert first is not None
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        deadline = time.monotonic() + 20
        while supervisor.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert supervisor.restarts == 1
        sent = asyncio.run(cluster.send(50, concurrency=8))
        cluster.wait_delivered(60)
        cluster.check_exactly_once(sent)
    finally:
        supervisor.stop()
    assert all(p is not None and p.poll() is not None for p in supervisor.procs)
