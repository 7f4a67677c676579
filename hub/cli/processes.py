"""`knooppunt run --workers N`: start N `knooppunt worker` processes beside the API and restart any that die."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import structlog

log = structlog.get_logger(__name__)


class WorkerSupervisor:
    """Keeps N worker processes alive (restart with a pause) until :meth:`stop`."""

    def __init__(self, count: int, *, restart_pause: float = 1.0) -> None:
        self.count = count
        self.restart_pause = restart_pause
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="knooppunt-workers", daemon=True)
        self.restarts = 0

    @staticmethod
    def command() -> list[str]:
        return [sys.executable, "-m", "hub.cli.main", "worker"]

    def start(self) -> None:
        for i in range(self.count):
            self.procs[i] = subprocess.Popen(self.command())  # noqa: S603 - our own interpreter and module
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stop.is_set():
                    log.warning("worker_exited", index=i, returncode=proc.returncode)
                    time.sleep(self.restart_pause)
                    self.procs[i] = subprocess.Popen(self.command())  # noqa: S603
                    self.restarts += 1

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
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
