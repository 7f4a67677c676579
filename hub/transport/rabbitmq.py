"""The RabbitMQ transport (scale mode), on pika's SelectConnection in a thread of its own.

Topology (``<ns>`` is ``broker.namespace``)::

    exchange <ns>.jobs (direct, durable)
        --routing key = receiver--> queue <ns>.jobs.<receiver>
                                    (quorum, x-delivery-limit, dead letters -> <ns>.dead)
    exchange <ns>.dead (fanout, durable) --> queue <ns>.dead (quorum)

One queue per receiving partner, each with its own consumer and prefetch, so
a slow partner fills its own queue and nobody else's. The jobs of one partner
published together travel as one message (up to ``jobs_per_message``): the
broker's work, and pika's on both sides, is per message (a publish, a confirm,
a delivery, an ack), so a batch of accepted messages costs the broker a few
messages, not one per job. A message is acked when every job in it finished,
and nacked (requeued, all of it) when one crashed: the jobs that did finish are
recorded as delivered, and the workers skip them when they come back. Workers consume with
consumer priorities (``fill_first``, a random priority per process): a queue's
jobs go to one worker until its prefetch window is full, and only the overflow
to the next, so a load one worker can carry is not split into small batches
(each with its fixed cost) over all of them; a worker that dies hands its jobs
to the next. Finished jobs are acked together (``multiple``) where they can
be. Messages are persistent; publishing uses publisher confirms with a window
(many messages in flight, acknowledged in bulk by the broker), and a job the
broker did not confirm is published again after a reconnect. A consumed job is acked only
after the handler returned, that is after the delivery was recorded in the
database; a job whose handler crashed is nacked and requeued, and after
``delivery_limit`` redeliveries it goes to the dead-letter queue. The
database outbox stays the source of truth: what the broker loses, the relay
publishes again.

Threads: every pika call runs in the IO thread (``knooppunt-rabbitmq``).
Other threads hand work over with ``IOLoop.add_callback_threadsafe``; consumed
jobs go to the asyncio loop with ``call_soon_threadsafe`` and their acks come
back the same way, tagged with the channel generation so that an ack never
lands on a newer channel than the one the job came from. Both directions hand
over a burst at a time (a list under a lock, one wake-up for all of it).

Deadlines: connecting (``socket_timeout``, ``stack_timeout``), heartbeats and
blocked connections all use ``broker.timeout_seconds`` / ``heartbeat_seconds``;
a watchdog closes a connection whose declarations or publisher confirms take
longer than ``timeout_seconds`` (what was not confirmed is published again);
:meth:`RabbitMQTransport.start` gives up after ``3 x timeout_seconds``. A lost
connection is re-opened every ``reconnect_seconds`` until :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import orjson
import pika
import structlog
from pika.adapters.select_connection import IOLoop

from hub.errors import TransportError
from hub.settings import BrokerSettings
from hub.transport import Handler, Job

log = structlog.get_logger(__name__)

Step = Callable[[Callable[..., None]], None]
_PROBE = "_probe"


def encode(jobs: list[Job]) -> bytes:
    """One message for jobs of one receiver: ``{"r": receiver, "m": [message id, ...]}``."""
    return orjson.dumps({"r": jobs[0].receiver, "m": [job.message_id for job in jobs]})


def decode(body: bytes) -> list[Job]:
    """The jobs of a message; also the one-job form ``{"m": id, "r": receiver}`` of earlier versions,
    which queues may still hold after an upgrade. Raises ValueError, KeyError or TypeError."""
    doc = orjson.loads(body)
    receiver, ids = doc["r"], doc["m"]
    if not isinstance(receiver, str):
        raise TypeError("receiver is not a string")
    if isinstance(ids, str):
        return [Job(ids, receiver)]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError("no message ids")
    return [Job(i, receiver) for i in ids]


class RabbitMQTransport:
    """Jobs in durable quorum queues, one per receiver; see the module docstring."""

    name = "rabbitmq"

    def __init__(self, url: str, settings: BrokerSettings, loop: asyncio.AbstractEventLoop) -> None:
        params = pika.URLParameters(url)
        params.heartbeat = settings.heartbeat_seconds
        params.blocked_connection_timeout = settings.timeout_seconds
        params.socket_timeout = settings.timeout_seconds
        params.stack_timeout = settings.timeout_seconds
        params.connection_attempts = 1
        params.client_properties = {"connection_name": "knooppunt"}
        self._params = params
        self.settings = settings
        ns = settings.namespace
        self.exchange = f"{ns}.jobs"
        self.dead_exchange = f"{ns}.dead"
        self.dead_queue = f"{ns}.dead"
        self._loop = loop
        self._ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name="knooppunt-rabbitmq", daemon=True)
        # everything below is touched only in the IO thread
        self._conn: pika.SelectConnection | None = None
        self._pub: Any = None
        self._con: Any = None
        self._mon: Any = None
        self._gen = 0
        self._con_gen = 0
        self._tag = 0
        self._outgoing: deque[Job] = deque()
        # publish tag -> (the jobs of that message, or None for the probe; when it was sent)
        self._unconfirmed: dict[int, tuple[list[Job] | None, float]] = {}
        self._declared: set[str] = set()
        self._declaring: set[str] = set()
        self._wanted: set[str] = set()
        self._consuming: set[str] = set()
        # this process's consumer priority (fill_first): the broker hands a queue's jobs to the
        # consumer of highest priority that has room in its prefetch window, the next one only
        # when that window is full (or the consumer gone)
        self._priority = random.randrange(1, 1_000_000)  # noqa: S311 - an order, not a secret
        self._unacked: set[int] = set()  # delivery tags in hand on the consumer channel (generation _con_gen)
        self.acks = 0  # ack frames sent (one may settle many jobs)
        self._topology = False
        self._closing = False
        self._depths: dict[str, int] = {}
        # shared with the asyncio side
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._handler: Handler | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        # jobs and acks cross between the threads in bursts: one wake-up per burst, not per job
        self._publishing: list[Job] = []  # any thread -> IO thread
        self._from_loop: list[Job] = []  # published in the loop's turn, handed over after it
        self._loop_thread = -1  # the loop's thread, known once start() runs in it
        self._publishing_lock = threading.Lock()
        self._arrived: list[tuple[list[Job], int, int]] = []  # IO thread -> loop: (jobs, gen, tag)
        self._arrived_lock = threading.Lock()
        # loop side: (gen, tag) of a message in hand -> [its jobs not finished yet, all finished ok]
        self._in_hand: dict[tuple[int, int], list[Any]] = {}
        self._settled: list[tuple[int, int, bool]] = []  # loop -> IO thread
        self._settled_lock = threading.Lock()
        self.published = 0  # jobs
        self.confirmed = 0  # jobs
        self.messages_published = 0  # broker messages (each carries one or more jobs)
        self.reconnects = 0

    def queue_name(self, receiver: str) -> str:
        return f"{self.exchange}.{receiver}"

    # -- the asyncio side ----------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare the topology and wait for a confirmed publish, within a deadline.

        Raises:
            TransportError: the broker was not ready within 3 x ``timeout_seconds``.
        """
        self._loop_thread = threading.get_ident()
        self._thread.start()
        deadline = self.settings.timeout_seconds * 3
        ok = await asyncio.to_thread(self._ready.wait, deadline)
        if not ok:
            await self.close()
            raise TransportError(
                f"RabbitMQ was niet klaar binnen {deadline:g} s (verbinding, declaraties, bevestigde publicatie)"
            )
        log.info("transport_started", transport="rabbitmq", exchange=self.exchange)

    def publish(self, jobs: list[Job]) -> None:
        if not jobs or self._stopped.is_set():
            return
        if threading.get_ident() == self._loop_thread:
            # Every message the event loop commits publishes its jobs from an after-commit hook,
            # just before its request is answered. Handing them over at once would wake the IO
            # thread, which then takes the GIL while the loop answers the batch's requests; the
            # jobs of the turn are handed over together, after those answers: two hops behind,
            # since the answers are written by the tasks the same batch woke.
            first = not self._from_loop
            self._from_loop.extend(jobs)
            if first:
                self._loop.call_soon(self._loop.call_soon, self._hand_from_loop)
            return
        self._hand(jobs)

    def _hand_from_loop(self) -> None:
        jobs, self._from_loop = self._from_loop, []
        if jobs and not self._stopped.is_set():
            self._hand(jobs)

    def _hand(self, jobs: list[Job]) -> None:
        """Give jobs to the IO thread: one wake-up for a burst, whoever hands them over."""
        with self._publishing_lock:
            first = not self._publishing
            self._publishing.extend(jobs)
        if first:
            self._ioloop.add_callback_threadsafe(self._take_publishing)

    def ensure_queues(self, receivers: Iterable[str]) -> None:
        wanted = set(receivers)
        if wanted and not self._stopped.is_set():
            self._ioloop.add_callback_threadsafe(partial(self._want, wanted))

    async def consume(self, handler: Handler, concurrency: int) -> None:
        """Consume every declared receiver queue until :meth:`close`.

        ``concurrency`` is unused: the broker's prefetch per queue bounds the jobs in hand.
        """
        del concurrency
        self._handler = handler
        self._ioloop.add_callback_threadsafe(self._start_consuming)
        try:
            await self._closed.wait()
        finally:
            self._handler = None
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Publish what is still waiting (bounded), then close the connection and stop the IO thread."""
        if self._stopped.is_set():
            return
        deadline = time.monotonic() + self.settings.timeout_seconds
        while (
            self._ready.is_set()
            and (self._from_loop or self._publishing or self._outgoing or self._unconfirmed)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)
        self._closed.set()
        self._ioloop.add_callback_threadsafe(self._shutdown)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, self.settings.timeout_seconds)
        self._stopped.set()

    def depth(self) -> int:
        return sum(self._depths.values())

    def depths(self) -> dict[str, int]:
        return dict(self._depths)

    def ready(self) -> bool:
        return self._ready.is_set()

    def _spawn_arrived(self) -> None:
        with self._arrived_lock:
            arrived, self._arrived = self._arrived, []
        handler = self._handler
        if handler is None:
            return  # not consuming any more: the broker requeues the unacked jobs
        for jobs, gen, tag in arrived:
            self._in_hand[(gen, tag)] = [len(jobs), True]
            for job in jobs:
                task = self._loop.create_task(self._run_job(handler, job, gen, tag))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run_job(self, handler: Handler, job: Job, gen: int, tag: int) -> None:
        ok = True
        try:
            await handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the consumer; the broker redelivers it
            ok = False
            log.error("job_crashed", message_id=job.message_id, receiver=job.receiver, error=repr(exc))
        # the message is settled once every job in it finished: acked, or requeued if one crashed
        left = self._in_hand[(gen, tag)]
        left[0] -= 1
        left[1] = left[1] and ok
        if left[0] > 0:
            return
        del self._in_hand[(gen, tag)]
        ok = left[1]
        with self._settled_lock:
            first = not self._settled
            self._settled.append((gen, tag, ok))
        if first:
            self._ioloop.add_callback_threadsafe(self._settle_all)

    # -- the IO thread -----------------------------------------------------------------

    def _run(self) -> None:
        self._connect()
        try:
            self._ioloop.start()
        finally:
            self._ready.clear()
            self._stopped.set()
            with contextlib.suppress(Exception):
                self._ioloop.close()

    def _connect(self) -> None:
        if self._closing:
            return
        try:
            self._conn = pika.SelectConnection(
                self._params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
                custom_ioloop=self._ioloop,
            )
        except pika.exceptions.AMQPError as exc:
            log.warning("broker_connect_failed", error=repr(exc))
            self._ioloop.call_later(self.settings.reconnect_seconds, self._connect)

    def _on_open_error(self, _conn: Any, error: Any) -> None:
        log.warning("broker_connect_failed", error=repr(error))
        self._reset()
        if self._closing:
            self._ioloop.stop()
        else:
            self._ioloop.call_later(self.settings.reconnect_seconds, self._connect)

    def _on_closed(self, _conn: Any, reason: Any) -> None:
        self._reset()
        if self._closing:
            self._ioloop.stop()
            return
        self.reconnects += 1
        log.warning("broker_connection_lost", reason=repr(reason))
        self._ioloop.call_later(self.settings.reconnect_seconds, self._connect)

    def _reset(self) -> None:
        """Forget the dead connection; what was not confirmed is published again on the next one."""
        self._ready.clear()
        self._gen += 1
        self._pub = self._con = self._mon = None
        self._topology = False
        self._declared.clear()
        self._declaring.clear()
        self._consuming.clear()
        lost = [job for _, (jobs, _sent) in sorted(self._unconfirmed.items()) if jobs is not None for job in jobs]
        self._unconfirmed.clear()
        self._outgoing.extendleft(reversed(lost))

    def _on_open(self, conn: Any) -> None:
        self._gen += 1
        gen = self._gen
        conn.channel(on_open_callback=lambda ch: self._on_pub_open(ch, gen))
        self._ioloop.call_later(1.0, partial(self._watchdog, gen, time.monotonic()))

    def _watchdog(self, gen: int, opened_at: float) -> None:
        """Deadlines for the asynchronous calls: declarations and the probe must be confirmed within
        ``timeout_seconds`` of connecting, and no publish may wait longer than that for its confirm.
        A connection that misses one is closed, which republishes what was not confirmed."""
        if gen != self._gen or self._closing or self._conn is None or not self._conn.is_open:
            return
        now = time.monotonic()
        limit = self.settings.timeout_seconds
        oldest = min((sent for _job, sent in self._unconfirmed.values()), default=now)
        if (not self._ready.is_set() and now - opened_at > limit) or now - oldest > limit:
            log.warning("broker_deadline_missed", ready=self._ready.is_set(), unconfirmed=len(self._unconfirmed))
            self._conn.close()
            return
        self._ioloop.call_later(1.0, partial(self._watchdog, gen, opened_at))

    def _on_pub_open(self, ch: Any, gen: int) -> None:
        if gen != self._gen:
            return
        self._pub = ch
        self._tag = 0
        ch.add_on_close_callback(self._on_channel_closed)
        ch.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _f: self._declare_topology(gen))

    def _on_channel_closed(self, ch: Any, reason: Any) -> None:
        # a channel error (e.g. a refused declaration) leaves the connection in an unknown state: start over
        if self._closing or ch is self._mon:
            return
        log.warning("broker_channel_closed", reason=repr(reason))
        if self._conn is not None and self._conn.is_open:
            self._conn.close()

    def _steps(self, gen: int, steps: list[Step], done: Callable[[], None]) -> None:
        """Run asynchronous pika calls one after the other, while the connection lives."""

        def next_step(*_: Any) -> None:
            if gen != self._gen:
                return
            if not steps:
                done()
                return
            steps.pop(0)(next_step)

        next_step()

    def _queue_steps(self, ch: Any, receiver: str) -> list[Step]:
        name = self.queue_name(receiver)
        arguments = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_exchange,
            "x-delivery-limit": self.settings.delivery_limit,
        }
        return [
            lambda cb: ch.queue_declare(queue=name, durable=True, arguments=arguments, callback=cb),
            lambda cb: ch.queue_bind(queue=name, exchange=self.exchange, routing_key=receiver, callback=cb),
        ]

    def _declare_topology(self, gen: int) -> None:
        ch = self._pub
        steps: list[Step] = [
            lambda cb: ch.exchange_declare(exchange=self.exchange, exchange_type="direct", durable=True, callback=cb),
            lambda cb: ch.exchange_declare(
                exchange=self.dead_exchange, exchange_type="fanout", durable=True, callback=cb
            ),
            lambda cb: ch.queue_declare(
                queue=self.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}, callback=cb
            ),
            lambda cb: ch.queue_bind(queue=self.dead_queue, exchange=self.dead_exchange, callback=cb),
        ]
        receivers = sorted(self._wanted | {j.receiver for j in self._outgoing})
        for receiver in receivers:
            steps += self._queue_steps(ch, receiver)

        def declared() -> None:
            self._declared.update(receivers)
            self._topology = True
            self._open_consumer(gen)
            self._open_monitor(gen)
            self._send_probe()

        self._steps(gen, steps, declared)

    def _send_probe(self) -> None:
        # unroutable on purpose: the broker confirms it, which proves the publish path end to end
        self._tag += 1
        self._unconfirmed[self._tag] = (None, time.monotonic())
        self._pub.basic_publish(exchange=self.exchange, routing_key=_PROBE, body=b"{}")

    def _open_consumer(self, gen: int) -> None:
        def opened(ch: Any) -> None:
            if gen != self._gen:
                return
            ch.add_on_close_callback(self._on_channel_closed)
            self._con_gen += 1
            self._unacked = set()  # the tags of a closed channel were requeued by the broker

            def qos_done(_f: Any) -> None:
                self._con = ch
                self._start_consuming()

            ch.basic_qos(prefetch_count=self.settings.prefetch, callback=qos_done)

        if self._conn is not None:
            self._conn.channel(on_open_callback=opened)

    def _open_monitor(self, gen: int) -> None:
        def opened(ch: Any) -> None:
            if gen == self._gen:
                self._mon = ch
                self._poll_depths(gen)

        if self._conn is not None:
            self._conn.channel(on_open_callback=opened)

    def _poll_depths(self, gen: int) -> None:
        if gen != self._gen or self._mon is None or not self._mon.is_open:
            return
        for receiver in sorted(self._declared):

            def got(frame: Any, receiver: str = receiver) -> None:
                self._depths[receiver] = int(frame.method.message_count)

            self._mon.queue_declare(queue=self.queue_name(receiver), passive=True, callback=got)
        self._ioloop.call_later(2.0, partial(self._poll_depths, gen))

    def _start_consuming(self) -> None:
        ch = self._con
        if self._handler is None or ch is None or not ch.is_open:
            return
        gen = self._con_gen
        arguments = {"x-priority": self._priority} if self.settings.fill_first else None
        for receiver in sorted(self._declared - self._consuming):
            ch.basic_consume(
                queue=self.queue_name(receiver),
                on_message_callback=partial(self._on_message, gen),
                auto_ack=False,
                arguments=arguments,
            )
            self._consuming.add(receiver)

    def _on_message(self, gen: int, ch: Any, method: Any, _props: Any, body: bytes) -> None:
        try:
            jobs = decode(body)
        except (ValueError, KeyError, TypeError):
            log.error("job_unreadable", queue=method.routing_key)
            ch.basic_nack(delivery_tag=method.delivery_tag, requeue=False)  # to the dead-letter queue
            return
        if gen == self._con_gen:
            self._unacked.add(method.delivery_tag)
        with self._arrived_lock:
            first = not self._arrived
            self._arrived.append((jobs, gen, method.delivery_tag))
        if first:
            self._loop.call_soon_threadsafe(self._spawn_arrived)

    def _settle_all(self) -> None:
        """Ack or nack the messages settled since the last call: failures one by one (requeued)
        first, then every success below the oldest message still in hand with one ``multiple`` ack,
        and the rest (above a message still running) one by one."""
        with self._settled_lock:
            settled, self._settled = self._settled, []
        ch = self._con
        gen = self._con_gen
        if ch is None or not ch.is_open:
            return  # the channel they came from is gone; the broker has requeued the jobs already
        acked: list[int] = []
        for job_gen, tag, ok in settled:
            if job_gen != gen or tag not in self._unacked:
                continue  # from an older channel: requeued by the broker when it closed
            self._unacked.discard(tag)
            if ok:
                acked.append(tag)
            else:
                ch.basic_nack(delivery_tag=tag, requeue=True)
        if not acked:
            return
        oldest = min(self._unacked, default=None)
        below = [t for t in acked if oldest is None or t < oldest]
        if below:
            ch.basic_ack(delivery_tag=max(below), multiple=True)
            self.acks += 1
        for tag in acked:
            if oldest is not None and tag > oldest:
                ch.basic_ack(delivery_tag=tag)
                self.acks += 1

    def _want(self, receivers: set[str]) -> None:
        self._wanted |= receivers
        self._declare_missing(receivers)

    def _declare_missing(self, receivers: set[str]) -> None:
        missing = receivers - self._declared - self._declaring
        if not missing or not self._topology or self._pub is None:
            return
        self._declaring |= missing
        gen = self._gen
        steps: list[Step] = []
        for receiver in sorted(missing):
            steps += self._queue_steps(self._pub, receiver)

        def declared() -> None:
            self._declaring -= missing
            self._declared |= missing
            self._start_consuming()
            self._flush()

        self._steps(gen, steps, declared)

    def _take_publishing(self) -> None:
        with self._publishing_lock:
            jobs, self._publishing = self._publishing, []
        self._outgoing.extend(jobs)
        self._flush()

    def _flush(self) -> None:
        """Publish what waits, as messages of up to ``jobs_per_message`` jobs of one receiver each,
        while the confirm window (counted in messages) has room."""
        if not self._ready.is_set() or self._pub is None or not self._pub.is_open or not self._outgoing:
            return
        window = self.settings.confirm_window
        size = self.settings.jobs_per_message
        unknown: set[str] = set()
        held: list[Job] = []
        by_receiver: dict[str, list[Job]] = {}
        for job in self._outgoing:
            if job.receiver in self._declared:
                by_receiver.setdefault(job.receiver, []).append(job)
            else:
                unknown.add(job.receiver)
                held.append(job)
        self._outgoing.clear()
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")
        now = time.monotonic()
        for receiver, jobs in by_receiver.items():
            for start in range(0, len(jobs), size):
                chunk = jobs[start : start + size]
                if len(self._unconfirmed) >= window:
                    held.extend(chunk)  # in order per receiver: the window opens on the next confirms
                    continue
                self._tag += 1
                self._unconfirmed[self._tag] = (chunk, now)
                self._pub.basic_publish(
                    exchange=self.exchange, routing_key=receiver, body=encode(chunk), properties=props
                )
                self.published += len(chunk)
                self.messages_published += 1
        self._outgoing.extend(held)
        if unknown:
            self._declare_missing(unknown)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = int(method.delivery_tag)
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in self._unconfirmed if t <= tag] if method.multiple else [tag]
        for t in tags:
            if t not in self._unconfirmed:
                continue
            jobs, _sent = self._unconfirmed.pop(t)
            if jobs is None:
                if acked and not self._ready.is_set():
                    self._ready.set()
                    log.info("broker_ready", exchange=self.exchange)
                elif not acked:
                    self._send_probe()
                continue
            if acked:
                self.confirmed += len(jobs)
            else:
                self._outgoing.extend(jobs)
        self._flush()

    def _shutdown(self) -> None:
        self._closing = True
        self._ready.clear()
        if self._conn is not None and not (self._conn.is_closed or self._conn.is_closing):
            try:
                self._conn.close()
            except pika.exceptions.AMQPError:
                self._ioloop.stop()
        else:
            self._ioloop.stop()
