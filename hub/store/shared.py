"""One writer for all API processes of `knooppunt run --processes N` (the embedded default).

SQLite lets one connection write at a time. When every API process ran its own group-commit
writer, the processes took the write lock in turn and each waited in SQLite's busy handler:
two processes accepted fewer messages than one. So the leader's writer writes for all of
them. An API process still does the work of a message itself (parse, validate, authorize,
route, encrypt) and hands the prepared unit to the leader over a Unix socket; the leader
runs it in its next batch and answers once that batch is committed. One transaction and
one fsync then cover the units of every process.

- **What travels**: a unit that has a wire form (``unit.wire()`` returns a value; the
  ingest unit) goes to the leader, which rebuilds it with ``rebuild`` (given by the hub);
  a unit may also say how its answer travels (``answer_wire`` on the leader's copy,
  ``answer_from_wire`` on the API process's);
  every other unit (refusals, keys, the reference directory's changes, the CLI) is written
  by the API process's own writer, as before. Both are the same transaction code.
- **The socket** lives in the leader's private directory (mode 0700) and the leader
  accepts only peers of its own user (SO_PEERCRED). Values are pickled, and unpickled
  with an allow-list of the classes the two sides exchange, nothing else.
- **A lost leader** loses no message: a unit whose answer did not come back is run again
  by the API process's own writer. Units are idempotent on the message id, so a unit the
  leader did commit is then answered as a replay of itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pickle
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine

from hub import errors as hub_errors
from hub.errors import HubError, InvalidParam, StoreError
from hub.store.database import Unit, Writer

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: frame header: body length, request id
_HEADER = struct.Struct("!IQ")
_MAX_FRAME = 64 * 1024 * 1024
#: how long an API process waits for the leader's socket before it writes itself
CONNECT_TIMEOUT = 5.0
#: after a failed connection, the API process writes itself this long before it tries again
RECONNECT_PAUSE = 2.0


class Wire:
    """Pickling restricted to an allow-list of classes, for both directions of the socket."""

    def __init__(self, classes: Iterable[type]) -> None:
        self.allowed = {(c.__module__, c.__qualname__): c for c in classes}

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return _Unpickler(io.BytesIO(data), self.allowed).load()


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, allowed: dict[tuple[str, str], type]) -> None:
        super().__init__(file)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not exchanged between hub processes")
        return found


def _error_wire(exc: BaseException) -> tuple[str, str, list[tuple[str, str, str]]]:
    """A unit's failure as plain values: the hub's error class by name, its detail and fields.
    Anything else (a database error) travels as the StoreError the caller would have seen."""
    if isinstance(exc, HubError) and getattr(hub_errors, type(exc).__name__, None) is type(exc):
        params = [(p.name, p.reason, p.code) for p in exc.invalid_params]
        return type(exc).__name__, exc.detail, params
    return "StoreError", f"de database weigerde de transactie: {exc.__class__.__name__}", []


def _error_from_wire(value: tuple[str, str, list[tuple[str, str, str]]]) -> HubError:
    name, detail, params = value
    cls = getattr(hub_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, HubError)) or cls is hub_errors.RateLimited:
        cls = StoreError
    exc = cls.__new__(cls)
    HubError.__init__(exc, detail, invalid_params=[InvalidParam(*p) for p in params])
    return exc


def _frame(request_id: int, body: bytes) -> bytes:
    return _HEADER.pack(len(body), request_id) + body


class WriterServer:
    """The leader's side: units from the API processes, run by the leader's own writer.

    A thread accepts connections and one thread per API process reads its units; the
    answers are sent by the writer thread once the batch is committed.
    """

    def __init__(self, writer: Writer, path: Path, rebuild: Callable[[Any], Unit[Any]], wire: Wire) -> None:
        self.writer = writer
        self.path = path
        self.rebuild = rebuild
        self.wire = wire
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.units = 0

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a leader that died
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, name="knooppunt-writer-server", daemon=True).start()
        log.info("writer_server_started", path=str(self.path))

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if uid != os.getuid():
                log.warning("writer_peer_refused", uid=uid)
                conn.close()
                continue
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="knooppunt-writer-peer", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """Read frames as they come (all that one ``recv`` brings, in one go) and answer each
        batch's units with one ``sendall``: every hand-over of the GIL between this thread,
        the writer and the event loop can cost a switch interval."""
        peer = _Peer(conn, self.wire)
        buffer = bytearray()
        try:
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    return
                buffer += chunk
                offset = 0
                while len(buffer) - offset >= _HEADER.size:
                    size, request_id = _HEADER.unpack_from(buffer, offset)
                    if size > _MAX_FRAME:
                        log.error("writer_frame_too_large", size=size)
                        return
                    if len(buffer) - offset - _HEADER.size < size:
                        break
                    body = bytes(buffer[offset + _HEADER.size : offset + _HEADER.size + size])
                    offset += _HEADER.size + size
                    if not self._take(peer, request_id, body):
                        return
                del buffer[:offset]
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            peer.closed = True
            conn.close()

    def _take(self, peer: _Peer, request_id: int, body: bytes) -> bool:
        """Hand one unit to the writer; False when this connection should close."""
        try:
            unit = self.rebuild(self.wire.loads(body))
        except Exception as exc:  # noqa: BLE001 - a bad unit is answered, the connection stays
            peer.send([(request_id, False, StoreError(f"onleesbare eenheid: {exc.__class__.__name__}"))])
            return True
        try:
            self.writer.submit_to(unit, peer.answer, request_id)
        except StoreError:
            return False  # the leader's writer has stopped: closing makes the API process write its units itself
        self.units += 1
        return True


class _Peer:
    """One API process's connection: answers go back a batch at a time."""

    def __init__(self, conn: socket.socket, wire: Wire) -> None:
        self.conn = conn
        self.wire = wire
        self.closed = False
        self._lock = threading.Lock()

    def answer(self, items: list[tuple[Any, bool, Any]]) -> None:
        answers = []
        for job, ok, value in items:
            encode = getattr(job.unit, "answer_wire", None) if ok else None
            answers.append((job.tag, ok, encode(value) if encode is not None else value))
        self.send(answers)

    def send(self, answers: list[tuple[int, bool, Any]]) -> None:
        frames = []
        for request_id, ok, value in answers:
            try:
                body = self.wire.dumps((True, value) if ok else (False, _error_wire(value)))
            except Exception as exc:  # noqa: BLE001 - a value that does not pickle fails its unit only
                body = self.wire.dumps((False, _error_wire(exc)))
            frames.append(_frame(request_id, body))
        if self.closed:
            return  # the API process is gone; it runs its units again itself
        try:
            with self._lock:
                self.conn.sendall(b"".join(frames))
        except OSError:
            pass


class SharedWriter(Writer):
    """An API process's writer: units with a wire form go to the leader, the rest it writes itself."""

    def __init__(self, engine: Engine, path: Path, wire: Wire, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        self.path = path
        self.wire = wire
        self._stream: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None  # the answers' reader (a task needs a reference)
        self._connecting: asyncio.Lock | None = None
        self._retry_at = 0.0
        self._next_id = 0
        self._pending: dict[int, tuple[Unit[Any], asyncio.Future[Any]]] = {}
        self.sent = 0

    async def submit(self, unit: Unit[T]) -> T:
        wire = getattr(unit, "wire", None)
        payload = wire() if wire is not None else None
        # connected: no await before the unit is on its way (this is every message of an API process)
        if payload is None or (self._stream is None and not await self._connected()):
            return await super().submit(unit)
        assert self._stream is not None
        self._next_id += 1
        request_id = self._next_id
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (unit, waiter)
        self._stream.write(_frame(request_id, self.wire.dumps(payload)))
        self.sent += 1
        with contextlib.suppress(ConnectionError):
            await self._stream.drain()  # a lost leader: the reader runs the unit here instead
        return await waiter

    async def _connected(self) -> bool:
        if self._stream is not None:
            return True
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            return False
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._stream is not None:
                return True
            try:
                reader, stream = await asyncio.wait_for(asyncio.open_unix_connection(str(self.path)), CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                log.warning("writer_leader_unreachable", path=str(self.path), error=repr(exc))
                self._retry_at = loop.time() + RECONNECT_PAUSE
                return False
            self._stream = stream
            self._reading = asyncio.get_running_loop().create_task(self._read(reader, stream))
            log.info("writer_leader_connected", path=str(self.path))
            return True

    async def _read(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
        try:
            while True:
                size, request_id = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                body = await reader.readexactly(size)
                entry = self._pending.pop(request_id, None)
                if entry is None or entry[1].done():
                    continue
                try:
                    ok, value = self.wire.loads(body)
                except Exception as exc:  # noqa: BLE001 - an unreadable answer fails its unit only
                    ok, value = False, ("StoreError", f"onleesbaar antwoord van de schrijver: {exc!r}", [])
                if ok:
                    decode = getattr(entry[0], "answer_from_wire", None)
                    entry[1].set_result(decode(value) if decode is not None else value)
                else:
                    entry[1].set_exception(_error_from_wire(value))
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.warning("writer_leader_lost", error=repr(exc), pending=len(self._pending))
        finally:
            if self._stream is stream:
                self._stream = None
                self._retry_at = asyncio.get_running_loop().time() + RECONNECT_PAUSE
            stream.close()
            await self._run_locally()

    async def _run_locally(self) -> None:
        """Units the leader did not answer: write them here (a committed one answers as a replay)."""
        pending, self._pending = self._pending, {}

        async def run(unit: Unit[Any], waiter: asyncio.Future[Any]) -> None:
            try:
                value = await Writer.submit(self, unit)
            except Exception as exc:  # noqa: BLE001 - the caller gets what its own writer said
                if not waiter.done():
                    waiter.set_exception(exc)
            else:
                if not waiter.done():
                    waiter.set_result(value)

        await asyncio.gather(*(run(unit, waiter) for unit, waiter in pending.values() if not waiter.done()))

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().stop()
