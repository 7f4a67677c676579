"""A small TCP fault proxy (toxiproxy is not available here): forwards 127.0.0.1:<port> to a
target and can cut every connection and refuse new ones until restored."""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
import time


class FaultProxy:
    """Forward one local port to ``target``; ``cut()`` drops all connections, ``restore()`` heals."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = int(self.listener.getsockname()[1])
        self._up = True
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._stop = False
        self._stalled = False
        self.cuts = 0
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}")

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            # no Nagle: small database and AMQP frames must not wait for the delayed ACK (40 ms each)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        a, b = pair
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                if self._stalled:
                    # a black hole: connections stay open, nothing passes (a hung broker, a dead route)
                    time.sleep(0.05)
                    with self._lock:
                        if pair not in self._pairs:
                            return
                    continue
                for key, _ in sel.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
                with self._lock:
                    if pair not in self._pairs:
                        return
        except OSError:
            return
        finally:
            sel.close()
            self._drop(pair)

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for s in pair:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self._up = False
        self.cuts += 1
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair)

    def stall(self) -> None:
        """Keep every connection open but let nothing through (until :meth:`restore`)."""
        self._stalled = True

    def restore(self) -> None:
        self._up = True
        self._stalled = False

    def close(self) -> None:
        self._stop = True
        self.cut()
        self.listener.close()


class ProxyProcess:
    """A :class:`FaultProxy` in a process of its own (its own GIL: a busy test process must not slow
    the traffic it forwards). SIGUSR1 cuts, SIGUSR2 restores."""

    def __init__(self, target_port: int) -> None:
        import subprocess
        import sys

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        sock.close()
        self.cuts = 0
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.faults.proxy", str(target_port), str(self.port)])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the fault proxy did not start") from None
                time.sleep(0.05)

    def start(self) -> ProxyProcess:
        return self

    def cut(self) -> None:
        self.cuts += 1
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.1)

    def restore(self) -> None:
        self.proc.send_signal(signal.SIGUSR2)
        time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _main() -> None:
    import sys

    target, port = int(sys.argv[1]), int(sys.argv[2])
    proxy = FaultProxy(target)
    proxy.listener.close()
    proxy.listener = socket.socket()
    proxy.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    proxy.listener.bind(("127.0.0.1", port))
    proxy.listener.listen(256)
    proxy.port = port
    signal.signal(signal.SIGUSR1, lambda *_: proxy.cut())
    signal.signal(signal.SIGUSR2, lambda *_: proxy.restore())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proxy._accept()


if __name__ == "__main__":
    _main()
