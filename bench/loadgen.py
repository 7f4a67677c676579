"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive, one request in flight per
connection), cheap enough that the server, not the client, is what gets measured.

Traffic goes to 127.0.0.1 only and is bounded by a message count and a time limit.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Result:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_ms_per_message: float = 0.0  # CPU of the server process per answered message, when measured

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(len(data) * p))] * 1000

    def summary(self) -> str:
        return (
            f"{self.rate:8.0f} msg/s  p50 {self.percentile(0.50):6.2f} ms  p99 {self.percentile(0.99):6.2f} ms"
            f"  ok {self.ok}  errors {self.errors}  statuses {dict(sorted(self.statuses.items()))}"
        )


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(
    port: int,
    path: str,
    make_body: Callable[[int], bytes],
    *,
    headers: dict[str, str],
    total: int,
    concurrency: int = 32,
    time_limit: float = 60.0,
    expect: int = 202,
) -> Result:
    """Send ``total`` POSTs over ``concurrency`` keep-alive connections; measure each round trip."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return await drive(
        [port],
        path,
        lambda i: (extra, make_body(i)),
        total=total,
        concurrency=concurrency,
        time_limit=time_limit,
        expect=expect,
    )


async def drive(
    ports: Sequence[int],
    path: str,
    make_request: Callable[[int], tuple[str, bytes]],
    *,
    total: int,
    concurrency: int = 32,
    time_limit: float = 60.0,
    expect: int = 202,
) -> Result:
    """Send ``total`` POSTs, request i being ``make_request(i)`` (its extra header lines, its body),
    over ``concurrency`` keep-alive connections spread over ``ports`` in turn."""
    result = Result()
    counter = iter(range(total))
    deadline = time.perf_counter() + time_limit

    async def connection(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                extra, body = make_request(i)
                request = (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.sent += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == expect:
                    result.ok += 1
                else:
                    result.errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection(ports[n % len(ports)]) for n in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
