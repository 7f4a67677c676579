"""hub.http: the lean HTTP/1.1 transport under the hub's partner client, against raw local servers."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from hub import pki
from hub.http import LeanTransport, partner_client

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read one request: its head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def _ok(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        b"".join(e + b"\r\n" for e in extra),
        body,
    )


async def _serve(
    handler: Handler, scenario: Callable[[str], Awaitable[None]], tls: ssl.SSLContext | None = None
) -> int:
    """Run ``scenario(base_url)`` against a server calling ``handler`` per connection; returns connections."""
    connections = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        await scenario(f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    finally:
        server.close()
        await server.wait_closed()
    return connections


async def _keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        _, body = await _request(reader)
        writer.write(_ok(b"echo:" + body))
        await writer.drain()


def test_connections_are_kept_alive_and_bodies_arrive_whole() -> None:
    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            for i in range(3):
                reply = await client.post(base + "/x?q=1", content=b"payload %d" % i)
                assert reply.status_code == 200
                assert reply.content == b"echo:payload %d" % i

    assert asyncio.run(_serve(_keep_alive, scenario)) == 1


def test_chunked_and_close_delimited_bodies_are_read() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await _request(reader)
            if b"/chunked" in head:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
                await writer.drain()
                continue
            # no length: the body ends when the server closes
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            await writer.drain()
            return

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            for _ in range(2):  # the second on the same connection
                assert (await client.get(base + "/chunked")).content == b"hello world"
            assert (await client.get(base + "/close")).content == b"until the end"
            assert (await client.get(base + "/close")).content == b"until the end"  # a new connection

    assert asyncio.run(_serve(handler, scenario)) == 2


def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(_ok(b"once"))
        await writer.drain()  # and close: the client keeps its side idle in the pool

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            assert (await client.get(base)).content == b"once"
            await asyncio.sleep(0.05)  # the close reaches the client
            assert (await client.get(base)).content == b"once"

    assert asyncio.run(_serve(handler, scenario)) == 2


def test_a_slow_answer_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _request(reader)
        if b"/slow" in head:
            await asyncio.sleep(1)
        writer.write(_ok(b"late"))
        await writer.drain()
        await _keep_alive(reader, writer)

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport(), timeout=0.1) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(base + "/slow")
            assert (await client.get(base + "/fast")).content == b"late"

    assert asyncio.run(_serve(handler, scenario)) == 2


async def _slow_keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive, each answer after its request's ``/sleep/<ms>`` (or at once)."""
    while True:
        head, _ = await _request(reader)
        path = head.split(b" ")[1]
        if path.startswith(b"/sleep/"):
            await asyncio.sleep(int(path.split(b"?")[0].rsplit(b"/", 1)[1]) / 1000)
        writer.write(_ok(path))
        await writer.drain()


def test_more_requests_than_connections_wait_their_turn_and_all_succeed() -> None:
    """A worker holds more jobs than its client has connections: the extra requests wait for a
    free connection (in order), they do not fail."""
    transport = LeanTransport(max_connections=2)
    most_open = 0

    async def scenario(base: str) -> None:
        nonlocal most_open

        async def one(i: int) -> bytes:
            nonlocal most_open
            response = await client.get(f"{base}/sleep/30?n={i}")
            most_open = max(most_open, transport._open)
            return response.content

        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            answers = await asyncio.gather(*(one(i) for i in range(12)))
        assert answers == [b"/sleep/30?n=%d" % i for i in range(12)]

    assert asyncio.run(_serve(_slow_keep_alive, scenario)) == 2
    assert most_open == 2


def test_a_request_waits_for_a_connection_no_longer_than_the_pool_timeout() -> None:
    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport(max_connections=1), timeout=5) as client:
            holder = asyncio.create_task(client.get(base + "/sleep/600"))
            await asyncio.sleep(0.05)
            started = asyncio.get_running_loop().time()
            with pytest.raises(httpx.PoolTimeout, match=r"alle 1 verbindingen naar 127\.0\.0\.1:\d+ in gebruik"):
                await client.get(base + "/other", timeout=httpx.Timeout(5, pool=0.2))
            waited = asyncio.get_running_loop().time() - started
            assert 0.15 < waited < 0.5
            assert (await holder).content == b"/sleep/600"  # the one holding the connection is unharmed
            assert (await client.get(base + "/after")).content == b"/after"

    asyncio.run(_serve(_slow_keep_alive, scenario))


def test_idle_connections_to_one_partner_make_room_for_another() -> None:
    """A full pool of idle connections to partner A must not refuse partner B: the longest
    idle one is closed to make room."""
    transport = LeanTransport(max_connections=2)

    async def scenario_b(base_b: str) -> None:
        async def scenario_a(base_a: str) -> None:
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                both = await asyncio.gather(client.get(base_a + "/sleep/20"), client.get(base_a + "/sleep/20"))
                assert [r.status_code for r in both] == [200, 200]
                assert transport._open == 2  # both idle, kept for partner A
                assert (await client.get(base_b + "/b", timeout=httpx.Timeout(5, pool=0.1))).content == b"/b"
                assert transport._open == 2
                assert (await client.get(base_a + "/a")).content == b"/a"  # the one left idle for A

        assert await _serve(_slow_keep_alive, scenario_a) == 2

    asyncio.run(_serve(_slow_keep_alive, scenario_b))


def test_a_slow_partner_cannot_take_every_connection_from_the_others() -> None:
    """Per-origin cap: six hanging calls to partner A hold two connections; partner B's call is
    answered at once, and A's calls beyond its cap wait for A's own connections."""
    transport = LeanTransport(max_connections=4, max_per_origin=2)

    async def scenario_b(base_b: str) -> None:
        async def scenario_a(base_a: str) -> None:
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                slow = [asyncio.create_task(client.get(f"{base_a}/sleep/400?n={i}")) for i in range(6)]
                await asyncio.sleep(0.05)
                started = asyncio.get_running_loop().time()
                assert (await client.get(base_b + "/b")).content == b"/b"
                assert asyncio.get_running_loop().time() - started < 0.2
                assert transport._open_to[("http", "127.0.0.1", int(base_a.rsplit(":", 1)[1]))] == 2
                assert [r.status_code for r in await asyncio.gather(*slow)] == [200] * 6

        assert await _serve(_slow_keep_alive, scenario_a) == 2

    asyncio.run(_serve(_slow_keep_alive, scenario_b))


def test_a_waiter_that_gives_up_leaves_the_line_and_closing_the_client_ends_every_wait() -> None:
    async def scenario(base: str) -> None:
        transport = LeanTransport(max_connections=1)
        client = httpx.AsyncClient(transport=transport, timeout=5)
        holder = asyncio.create_task(client.get(base + "/sleep/200"))
        await asyncio.sleep(0.05)
        quitter = asyncio.create_task(client.get(base + "/quitter"))
        patient = asyncio.create_task(client.get(base + "/patient"))
        await asyncio.sleep(0.05)
        quitter.cancel()
        assert (await holder).content == b"/sleep/200"
        assert (await patient).content == b"/patient"  # the turn went past the one that left
        assert quitter.cancelled()
        assert not transport._waiting

        holder = asyncio.create_task(client.get(base + "/sleep/300"))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(client.get(base + "/waiting"))
        await asyncio.sleep(0.05)
        await transport.aclose()
        with pytest.raises(httpx.ConnectError, match="gesloten"):
            await asyncio.wait_for(waiting, 1)
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)

    asyncio.run(_serve(_slow_keep_alive, scenario))


def test_a_whole_short_answer_is_handed_over_read_like_a_streamed_one() -> None:
    """A reply that arrived whole with a Content-Length skips the streaming layers: same status,
    headers, body and elapsed time as a streamed reply, and the connection is reused at once."""
    gz = gzip.compress(b"ingepakt " * 1000)
    answers = {
        b"/plain": _ok(b"klein", b"X-Reference: r-1"),
        b"/gzip": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Encoding: gzip\r\n\r\n%s" % (len(gz), gz),
    }

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await _request(reader)
            writer.write(answers[head.split(b" ")[1]])
            await writer.drain()

    transport = LeanTransport()

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            plain = await client.post(base + "/plain", content=b"x")
            assert (plain.status_code, plain.content, plain.headers["x-reference"]) == (200, b"klein", "r-1")
            assert list(plain.headers.keys()) == ["content-length", "x-reference"]  # nothing added
            assert plain.elapsed.total_seconds() > 0
            async with client.stream("POST", base + "/plain", content=b"x") as early:
                assert transport._open == 1
                assert sum(map(len, transport._idle.values())) == 1  # back in the pool before it is read
                assert await early.aread() == b"klein"
            # a coded answer streams: a caller counting decoded bytes can stop a bomb early
            async with client.stream("GET", base + "/gzip") as coded:
                assert not hasattr(coded, "_content")
                seen = 0
                async for chunk in coded.aiter_bytes():
                    seen += len(chunk)
            assert seen == 9000
            assert (await client.get(base + "/gzip")).content == b"ingepakt " * 1000

    assert asyncio.run(_serve(handler, scenario)) == 1


def test_a_server_that_hangs_up_or_speaks_no_http_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _request(reader)
        if b"/garbage" in head:
            writer.write(b"SMTP ready\r\n\r\n")
            await writer.drain()
        elif b"/short" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            await writer.drain()
        # else: hang up without an answer

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            for path in ("/garbage", "/hangup", "/short"):
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get(base + path)

    assert asyncio.run(_serve(handler, scenario)) == 3


def test_refused_connection_is_a_connect_error() -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1:9/")  # discard port: nothing listens

    asyncio.run(scenario())


def test_head_answers_without_waiting_for_a_body_and_a_partly_read_body_drops_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _request(reader)
        if head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 65536)
        await writer.drain()
        await asyncio.sleep(0.5)

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport(), timeout=0.3) as client:
            reply = await client.head(base)
            assert reply.status_code == 200
            assert reply.headers["content-length"] == "4096"
            async with client.stream("GET", base) as streamed:
                async for chunk in streamed.aiter_bytes():
                    assert chunk
                    break  # a size cap stops reading: the connection must not be reused

    assert asyncio.run(_serve(handler, scenario)) == 2


def test_the_partner_client_keeps_httpx_transport_behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async def transports() -> tuple[object, object]:
        async with partner_client(5.0) as direct:
            monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
            async with partner_client(5.0) as proxied:
                return direct._transport, proxied._transport

    direct, proxied = asyncio.run(transports())
    assert isinstance(direct, LeanTransport)
    assert not isinstance(proxied, LeanTransport)


def test_behind_a_proxy_the_partner_client_keeps_the_profiles_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """An outgoing TLS profile's context (client certificate, partner CAs) also holds through a proxy."""
    context = ssl.create_default_context()

    async def contexts() -> list[object]:
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
        async with partner_client(5.0, ssl_context=context) as proxied:
            transports = [proxied._transport, *proxied._mounts.values()]
            return [t._pool._ssl_context for t in transports if t is not None]  # type: ignore[attr-defined]

    found = asyncio.run(contexts())
    assert len(found) == 2  # direct and through the proxy
    assert all(c is context for c in found)


def test_https_is_verified_against_the_trusted_authorities(tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path)
    server = pki.create_server(ca, tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(server.cert, server.key)
    trusting = ssl.create_default_context(cafile=str(ca.cert))

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport(ssl_context=trusting)) as client:
            for _ in range(2):
                assert (await client.post(base, content=b"over tls")).content == b"echo:over tls"
        async with httpx.AsyncClient(transport=LeanTransport()) as client:  # the system's authorities only
            with pytest.raises(httpx.ConnectError):
                await client.get(base)

    # one kept-alive connection; the refused handshake never reaches the server's handler
    assert asyncio.run(_serve(_keep_alive, scenario, tls)) == 1


def test_the_partner_client_keeps_no_cookie_from_one_partner_for_another() -> None:
    """Two partners on the same host (ports differ, cookie domains do not): a Set-Cookie of the
    first is neither kept nor sent to the second."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await _request(reader)
            seen.append(head)
            writer.write(_ok(b"ok", b"Set-Cookie: session=partner-a; Path=/"))
            await writer.drain()

    async def scenario(base: str) -> None:
        client = partner_client(5)
        try:
            assert (await client.get(f"{base}/a")).status_code == 200
            assert (await client.get(f"{base}/b")).status_code == 200
            assert len(client.cookies.jar) == 0
        finally:
            await client.aclose()

    asyncio.run(_serve(handler, scenario))
    assert len(seen) == 2
    assert all(b"cookie:" not in head.lower() for head in seen)
