"""The hub's HTTP client to its partners: httpx over a lean HTTP/1.1 transport.

Adapters get an ``httpx.AsyncClient`` (see :mod:`hub.ports`); :func:`partner_client` builds
the one the hub injects. Its transport, :class:`LeanTransport`, replaces httpcore's
connection pool for plain HTTP/1.1: one ``asyncio.Protocol`` per connection feeding
``httptools`` (the C parser uvicorn uses), keep-alive connections per origin, request
head and body in one write, and timeouts as loop timers instead of cancel scopes and
tasks. httpcore spent most of a synchronous lookup's CPU in the hub (anyio cancel scopes,
locks and events per request, headers and body in two writes); see docs/performance.md.

What it does (and what httpx above it still does: URLs, headers, redirects, cookies,
content decoding, the ``httpx`` exception types):

- ``http`` and ``https`` (TLS verified like httpx's default, SNI, no client certificate);
- request bodies sent whole (a streamed body is read first; chunked framing if the
  request says so); responses streamed as they arrive (``Content-Length``, chunked, or
  until the server closes);
- a connection goes back to the pool only when its response was read to the end and
  both sides keep it alive; an idle connection the server closed is dropped, and one
  idle longer than ``keepalive_expiry`` is not used again. A request is never retried on
  another connection (a POST may not be sent twice);
- at most ``max_connections`` open connections (one more is refused at once with
  ``httpx.PoolTimeout``); the request is written whole, so there is no write timeout.

Not supported, so :func:`partner_client` keeps httpx's own transport: HTTP proxies from
the environment (``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``). HTTP/2 and ``Expect:
100-continue`` are not used by the hub.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools
import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def partner_client(timeout: float) -> httpx.AsyncClient:
    """The client the hub injects into its adapters: the lean transport unless a proxy is configured."""
    proxied = any(k.lower() in ("http", "https", "all") for k in urllib.request.getproxies())
    if proxied:
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout))
    else:
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=LeanTransport())
    # One client serves every partner, and a cookie's domain ignores the port: a cookie one partner
    # set must never travel to another. Partner protocols here are stateless, so keep none at all.
    client.cookies.jar.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return client


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the socket's protocol and the response parser's callbacks."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._error: httpx.TransportError | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False  # no Content-Length, not chunked: the body ends when the server closes

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not a subclass of asyncio.Transport, so no isinstance)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - the hub never asks for an upgrade
            self._fail(httpx.RemoteProtocolError("onverwachte protocolwissel"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"ongeldig HTTP-antwoord: {exc}"))
        self._wake()

    def eof_received(self) -> bool | None:
        self._ended()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._ended()

    def _ended(self) -> None:
        if self.headers_done and not self.complete and self.until_close:
            self.complete = True
            self.keep_alive = False
        elif not self.complete and self._error is None:
            self._error = httpx.RemoteProtocolError("de server sloot de verbinding voor het antwoord volledig was")
        self.lost = True
        self._wake()

    # -- httptools callbacks -----------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        names = {k.lower() for k, _ in self.headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names
        if 100 <= self.status < 200:  # an interim answer: the real one follows on this connection
            self.headers = []
            return
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True

    # -- waiting -----------------------------------------------------------------

    def _fail(self, error: httpx.TransportError) -> None:
        self._error = error
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until more of the response arrived, the connection ended, or ``timeout`` passed.

        Raises:
            httpx.ReadTimeout: nothing arrived in time.
            httpx.TransportError: the connection failed or the answer is not HTTP.
        """
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, waiter.cancel) if timeout is not None else None
        try:
            await waiter
        except asyncio.CancelledError:
            if timer is not None and waiter.cancelled() and not _current_task_cancelling():
                raise httpx.ReadTimeout("geen antwoord binnen de leestijd") from None
            raise
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if self._error is not None:
            raise self._error

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise httpx.WriteError("de verbinding is gesloten")
        self.transport.write(data)

    def take_chunks(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data

    def reusable(self, expiry: float) -> bool:
        return (
            not self.lost
            and self.transport is not None
            and not self.transport.is_closing()
            and time.monotonic() - self.idle_since < expiry
        )

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _ResponseBody(httpx.AsyncByteStream):
    """The body as it arrives; at the end the connection goes back to the pool (or is closed)."""

    def __init__(self, pool: LeanTransport, conn: _Connection, read_timeout: float | None, head: bool) -> None:
        self._pool = pool
        self._conn = conn
        self._timeout = read_timeout
        self._head = head
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if self._head:
            return
        while True:
            if conn.chunks:
                yield conn.take_chunks()
            if conn.complete:
                return
            await conn.wait(self._timeout)

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        done = conn.complete and not conn.chunks and not self._head
        self._pool.release(conn, reuse=done and conn.keep_alive)


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio, for httpx (see the module docstring)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        keepalive_expiry: float = 4.0,
    ) -> None:
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open = 0
        self._max = max_connections
        self._expiry = keepalive_expiry
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("de HTTP-client is gesloten")
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"schema {scheme!r} wordt niet ondersteund")
        origin: Origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = await request.aread()
        conn = await self._connection(origin, timeouts)
        try:
            conn.send(_head(request) + _framed(request, body))
            while not conn.headers_done:
                await conn.wait(timeouts.get("read"))
        except BaseException:
            self.release(conn, reuse=False)
            raise
        head = request.method == "HEAD"
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_ResponseBody(self, conn, timeouts.get("read"), head),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _connection(self, origin: Origin, timeouts: dict[str, float | None]) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.reusable(self._expiry):
                conn._reset()
                return conn
            conn.close()
            self._open -= 1
        if self._open >= self._max:
            raise httpx.PoolTimeout(f"al {self._max} verbindingen open")
        self._open += 1
        try:
            return await self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            raise

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {"ssl": self._ssl_context(), "server_hostname": host} if scheme == "https" else {}
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: _Connection(origin), host, port, **tls)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"geen verbinding met {host}:{port} binnen de tijd") from exc
        except OSError as exc:  # refused, unreachable, name resolution, TLS handshake
            raise httpx.ConnectError(f"geen verbinding met {host}:{port}: {exc}") from exc
        return conn

    def release(self, conn: _Connection, *, reuse: bool) -> None:
        """Back to the pool when it can carry another request, else closed."""
        if reuse and not self._closed and conn.reusable(float("inf")):
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.origin, []).append(conn)
            return
        conn.close()
        self._open -= 1

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
                self._open -= 1
        self._idle.clear()


def _head(request: httpx.Request) -> bytes:
    target = request.url.raw_path
    lines = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def _framed(request: httpx.Request, body: bytes) -> bytes:
    if request.headers.get("transfer-encoding", "").lower() == "chunked":
        return (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    return body
