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

- ``http`` and ``https`` (TLS verified like httpx's default, SNI, no client certificate; or
  with an outgoing TLS profile's context: a client certificate, the partner's CAs and CRLs);
- request bodies sent whole (a streamed body is read first; chunked framing if the
  request says so); responses streamed as they arrive (``Content-Length``, chunked, or
  until the server closes);
- a connection goes back to the pool only when its response was read to the end and
  both sides keep it alive; an idle connection the server closed is dropped, and one
  idle longer than ``keepalive_expiry`` is not used again. A request is never retried on
  another connection (a POST may not be sent twice);
- at most ``max_connections`` open connections, and at most ``max_per_origin`` to one
  origin, so one slow partner cannot take every connection from the others. When the
  total is reached, the longest-idle connection (to any origin) is closed to make room;
  when that cannot be done, the request waits its turn (first come, first served among
  those that can use the freed room) for up to the ``pool`` timeout, then
  ``httpx.PoolTimeout``. A delivery worker holds many jobs at once (on RabbitMQ, the
  prefetch of every partner queue), so more requests than connections is normal load,
  not an error;
- the request is written whole, so there is no write timeout.

Not supported, so :func:`partner_client` keeps httpx's own transport (with the same TLS
context): HTTP proxies from the environment (``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``). HTTP/2 and ``Expect:
100-continue`` are not used by the hub.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
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


def partner_client(timeout: float, ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """The client the hub injects into its adapters: the lean transport unless a proxy is configured.

    ``ssl_context``: an outgoing TLS profile's context (hub/tls.py: the hub's client certificate,
    the partner's CAs and CRLs); None verifies like httpx's default and presents no certificate.
    """
    proxied = any(k.lower() in ("http", "https", "all") for k in urllib.request.getproxies())
    if proxied:
        verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), verify=verify)
    else:
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=LeanTransport(ssl_context=ssl_context))
    # One client serves every partner, and a cookie's domain ignores the port: a cookie one partner
    # set must never travel to another. Partner protocols here are stateless, so keep none at all.
    client.cookies.jar.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    # ... and skip the cookie jar's work on every response (about a fifth of a delivery's CPU in the
    # client); the policy above still holds should httpx ever stop using this attribute
    if isinstance(getattr(client, "_cookies", None), httpx.Cookies):
        jar = _NoCookies()
        jar.jar.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        client._cookies = jar
    return client


class _NoCookies(httpx.Cookies):
    """The partner client's cookie store: keeps nothing, adds nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


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
        self.plain_sized = False

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
        # a body of a known length, as sent: nothing for httpx to add to the headers or to decode
        codings = {v.strip().lower() for k, v in self.headers if k.lower() == b"content-encoding"}
        sized = b"content-length" in names and b"transfer-encoding" not in names
        self.plain_sized = sized and codings <= {b"", b"identity"}
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
        max_connections: int = 256,
        max_per_origin: int = 64,
        keepalive_expiry: float = 4.0,
    ) -> None:
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open = 0
        self._open_to: collections.Counter[Origin] = collections.Counter()
        self._max = max_connections
        self._max_per_origin = min(max_per_origin, max_connections)
        self._expiry = keepalive_expiry
        self._closed = False
        self._waiting: collections.deque[tuple[Origin, asyncio.Future[None]]] = collections.deque()

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
        started = time.perf_counter()
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
        if conn.complete and conn.plain_sized and not head:
            # The whole answer is already here (a partner's short reply, with a Content-Length and
            # no content coding): hand it over read and the connection straight back to the pool,
            # without httpx's streaming layers (about a fifth of a call's CPU). Coded or chunked
            # answers stream, so a caller's size limit still applies to the decoded bytes.
            body = conn.take_chunks()
            self.release(conn, reuse=conn.keep_alive)
            response = httpx.Response(
                conn.status, headers=conn.headers, content=body, extensions={"http_version": b"HTTP/1.1"}
            )
            response.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
            return response
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_ResponseBody(self, conn, timeouts.get("read"), head),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _connection(self, origin: Origin, timeouts: dict[str, float | None]) -> _Connection:
        deadline: float | None = None
        waited = False
        while True:
            if self._closed:
                raise httpx.ConnectError("de HTTP-client is gesloten")
            conn = self._idle_connection(origin)
            if conn is not None:
                return conn
            if self._may_open(origin):
                break
            if deadline is None:
                pool = timeouts.get("pool")
                deadline = float("inf") if pool is None else time.monotonic() + pool
            # a waiter woken but beaten to the connection keeps its place at the head of the line
            await self._wait_turn(origin, deadline, first=waited)
            waited = True
        if self._open >= self._max:
            self._close_one_idle()
        self._open += 1
        self._open_to[origin] += 1
        try:
            return await self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._forget(origin)
            raise

    def _may_open(self, origin: Origin) -> bool:
        """Room for one more connection to ``origin``: under its own cap, and under the total
        cap or with an idle connection elsewhere to close."""
        if self._open_to[origin] >= self._max_per_origin:
            return False
        return self._open < self._max or any(self._idle.values())

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.reusable(self._expiry):
                conn._reset()
                return conn
            conn.close()
            self._forget(origin, wake=False)
        return None

    def _close_one_idle(self) -> None:
        """Make room: close the longest-idle connection, whatever its origin."""
        oldest: list[_Connection] | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest[0].idle_since):
                oldest = conns
        if oldest is not None:
            conn = oldest.pop(0)
            conn.close()
            self._forget(conn.origin, wake=False)

    def _forget(self, origin: Origin, *, wake: bool = True) -> None:
        """One connection to ``origin`` fewer; the freed room goes to the first who can use it."""
        self._open -= 1
        self._open_to[origin] -= 1
        if not self._open_to[origin]:
            del self._open_to[origin]
        if wake:
            self._pass_turn()

    async def _wait_turn(self, origin: Origin, deadline: float, *, first: bool) -> None:
        """Until a connection is released (or closed) that this request can use, at most until ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._pool_timeout(origin)
        entry = (origin, asyncio.get_running_loop().create_future())
        waiter = entry[1]
        if first:
            self._waiting.appendleft(entry)
        else:
            self._waiting.append(entry)
        woken = False
        try:
            async with asyncio.timeout(None if remaining == float("inf") else remaining):
                await waiter
            woken = True
        except TimeoutError:
            raise self._pool_timeout(origin) from None
        finally:
            if not woken and waiter.done() and not waiter.cancelled():
                self._pass_turn()  # woken, but timed out or cancelled first: the next in line gets the turn
            if not waiter.done():
                waiter.cancel()
            if entry in self._waiting:
                self._waiting.remove(entry)

    def _pool_timeout(self, origin: Origin) -> httpx.PoolTimeout:
        if self._open_to[origin] >= self._max_per_origin:
            where = f"{origin[1]}:{origin[2]}"
            return httpx.PoolTimeout(
                f"alle {self._max_per_origin} verbindingen naar {where} in gebruik, geen kwam vrij"
            )
        return httpx.PoolTimeout(f"alle {self._max} verbindingen in gebruik, geen kwam vrij")

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
            self._pass_turn()
        else:
            conn.close()
            self._forget(conn.origin)

    def _pass_turn(self) -> None:
        """Wake the first waiting request that can now go on: one for an origin with an idle
        connection, or one allowed to open a connection (closing an idle one elsewhere if needed)."""
        for entry in self._waiting:
            origin, waiter = entry
            if waiter.done():
                continue
            if self._idle.get(origin) or self._may_open(origin):
                self._waiting.remove(entry)
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        while self._waiting:  # each wakes to find the client closed
            _, waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
                self._forget(conn.origin, wake=False)
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
