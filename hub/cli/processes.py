"""Supervised child processes of `knooppunt run`: delivery workers (`--workers N`, scale mode) and
extra API processes (`--processes N`, the embedded default), each restarted when it dies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def hub_module() -> list[str]:
    """``python -m hub.cli.main`` of this interpreter, without the working directory on the path
    (``-P``): a child imports the hub the parent runs, not a ``hub`` directory where it was started."""
    return [sys.executable, "-P", "-m", "hub.cli.main"]


class WorkerSupervisor:
    """Keeps N child processes alive (restart with a pause) until :meth:`stop`.

    By default the children are `knooppunt worker`s; ``command`` (given the child's index),
    ``env`` and ``new_session`` let `knooppunt run --processes` supervise its API processes.
    """

    def __init__(
        self,
        count: int,
        *,
        restart_pause: float = 1.0,
        command: Callable[[int], list[str]] | None = None,
        env: Mapping[str, str] | None = None,
        new_session: bool = False,
        name: str = "worker",
    ) -> None:
        self.count = count
        self.restart_pause = restart_pause
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._command = command
        self._env = dict(env) if env is not None else None
        # in a session of its own a child does not get the terminal's Ctrl-C: the supervisor stops it
        self._new_session = new_session
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"knooppunt-{name}s", daemon=True)
        self.restarts = 0

    @staticmethod
    def worker_command() -> list[str]:
        return [*hub_module(), "worker"]

    def command(self, index: int) -> list[str]:
        return self._command(index) if self._command is not None else self.worker_command()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command(index), env=self._env, start_new_session=self._new_session
        )

    def start(self) -> None:
        for i in range(self.count):
            self.procs[i] = self._spawn(i)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stop.is_set():
                    log.warning(f"{self.name}_exited", index=i, returncode=proc.returncode)
                    if self._stop.wait(self.restart_pause):
                        return  # stopping meanwhile: no new child
                    self.procs[i] = self._spawn(i)
                    self.restarts += 1

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to every child, SIGKILL to those still running after ``timeout`` seconds."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.restart_pause + 5)
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- `knooppunt run --processes N`: API processes sharing one port --------------------------------


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port with SO_REUSEPORT: every API process binds its own,
    and the kernel spreads new connections over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # that say they are TCP. With it on, a response written as head and body waits for the
    # client's delayed ACK of the head: 40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def port_is_free(host: str, port: int) -> bool:
    """True when nothing (with or without SO_REUSEPORT) holds host:port: the leader checks this
    before it binds, so a second hub on the same port fails instead of sharing its connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class ApiProcesses:
    """The N-1 extra API processes of `knooppunt run --processes N` (the leader is the Nth)."""

    def __init__(
        self, count: int, host: str, port: int, env: Mapping[str, str], ready_dir: Path, *, restart_pause: float = 1.0
    ) -> None:
        self.ready_dir = ready_dir
        self.supervisor = WorkerSupervisor(
            count,
            restart_pause=restart_pause,
            command=lambda i: [
                *hub_module(),
                "api-process",
                "--host",
                host,
                "--port",
                str(port),
                "--index",
                str(i + 1),
                "--leader",
                str(os.getpid()),
                "--ready-file",
                str(ready_dir / f"api-{i + 1}.ready"),
            ],
            env=env,
            new_session=True,
            name="api_process",
        )

    @property
    def procs(self) -> list[subprocess.Popen[bytes] | None]:
        return self.supervisor.procs

    def start(self, timeout: float = 60.0) -> None:
        """Start them and wait until each one serves (its ready file names its pid)."""
        self.supervisor.start()
        deadline = time.monotonic() + timeout
        while not self.all_ready():
            for proc in self.procs:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"API-proces {proc.pid} stopte meteen (code {proc.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError("API-processen niet op tijd gestart")
            time.sleep(0.05)

    def all_ready(self) -> bool:
        for i, proc in enumerate(self.procs):
            marker = self.ready_dir / f"api-{i + 1}.ready"
            try:
                if proc is None or marker.read_text().strip() != str(proc.pid):
                    return False
            except OSError:
                return False
        return True

    def stop(self, timeout: float = 15.0) -> None:
        self.supervisor.stop(timeout)
