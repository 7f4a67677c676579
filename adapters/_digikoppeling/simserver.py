"""What the partner simulators share: fault injection, a ledger of what they
sent and received, and a uvicorn server in a background thread.

Control endpoint (both simulators), JSON::

    GET  /control                      the current fault settings
    POST /control                      {"delaySeconds": 2.5}             answer every contract call late
                                       {"downForSeconds": 60}            answer 503 + Retry-After for a while
                                       {"down": true} / {"down": false}  answer 503 until told otherwise
                                       {"refuseForSeconds": 60}          close the port for a while
                                                                         (only when run by serve()/SimulatorServer)
                                       {"fault": {"code": "server_busy", "transient": true, "count": 2}}
                                                                         answer the next N calls with a fault
                                                                         (count absent: until reset)
                                       {"hostile": {"kind": "xxe", "count": 1}}
                                                                         answer with a hostile or broken body: xxe,
                                                                         truncated, wrong-envelope, huge, unsigned,
                                                                         not-xml, not-json, wrong-shape
                                       {"dropNext": 1}                   acknowledge the next N messages but lose them
                                                                         (a gap for reconcile to find)
                                       {"reset": true}                   back to normal (combine freely)
    GET  /control/received             received message ids with counts per type
    GET  /control/reconcile?period=P   {"received": PeriodSummary, "sent": PeriodSummary}
    DELETE /control/received/{id}      forget one received message (to make a gap on purpose)
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvicorn

from adapters._digikoppeling.reconcile import PeriodSummary, check_period, in_period
from adapters._digikoppeling.reliability import DuplicateStore
from adapters._digikoppeling.wss import utcnow
from hub.errors import InputError
from hub.loopback import free_port
from hub.ports import JSON

HOSTILE_KINDS = ("xxe", "truncated", "wrong-envelope", "huge", "unsigned", "not-xml", "not-json", "wrong-shape")
"""Hostile or broken answers a simulator can give instead of its real one."""
HUGE_BYTES = 6_000_000


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """A fault the simulator answers with instead of processing."""

    code: str
    message: str
    transient: bool


@dataclass(slots=True)
class FaultInjection:
    """The simulator's misbehaviour, set through ``POST /control``."""

    delay_seconds: float = 0.0
    down_until: float = 0.0
    fault: InjectedFault | None = None
    fault_count: int | None = None
    refuse: Callable[[float], None] | None = None
    drop_next: int = 0
    hostile: str | None = None
    hostile_count: int | None = None

    def configure(self, doc: Any) -> None:
        """Apply a control document (see the module docstring).

        Raises:
            InputError: an unknown key or a wrong value.
        """
        if not isinstance(doc, dict):
            raise InputError("verwacht een JSON-object")
        unknown = set(doc) - {
            "delaySeconds",
            "down",
            "downForSeconds",
            "refuseForSeconds",
            "fault",
            "dropNext",
            "hostile",
            "reset",
        }
        if unknown:
            raise InputError(f"onbekende sleutels: {sorted(unknown)}")
        if doc.get("reset"):
            self.delay_seconds, self.down_until, self.fault, self.fault_count = 0.0, 0.0, None, None
            self.drop_next, self.hostile, self.hostile_count = 0, None, None
        if "hostile" in doc:
            spec = doc["hostile"]
            if spec is None:
                self.hostile, self.hostile_count = None, None
            elif isinstance(spec, dict) and spec.get("kind") in HOSTILE_KINDS:
                count = spec.get("count")
                if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                    raise InputError("hostile.count is een positief geheel getal")
                self.hostile, self.hostile_count = str(spec["kind"]), count
            else:
                raise InputError(f"hostile is {{kind: {'|'.join(HOSTILE_KINDS)}, count?}} of null")
        if "dropNext" in doc:
            drop = doc["dropNext"]
            if isinstance(drop, bool) or not isinstance(drop, int) or drop < 0:
                raise InputError("dropNext is een geheel getal >= 0")
            self.drop_next = drop
        if "delaySeconds" in doc:
            self.delay_seconds = _non_negative(doc["delaySeconds"], "delaySeconds")
        if "down" in doc:
            if not isinstance(doc["down"], bool):
                raise InputError("down is true of false")
            self.down_until = math.inf if doc["down"] else 0.0
        if "downForSeconds" in doc:
            self.down_until = time.monotonic() + _non_negative(doc["downForSeconds"], "downForSeconds")
        if "fault" in doc:
            spec = doc["fault"]
            if spec is None:
                self.fault, self.fault_count = None, None
            elif isinstance(spec, dict) and isinstance(spec.get("code", "server_error"), str):
                count = spec.get("count")
                if count is not None and (not isinstance(count, int) or count < 1):
                    raise InputError("fault.count is een positief geheel getal")
                self.fault = InjectedFault(
                    code=str(spec.get("code", "server_error")),
                    message=str(spec.get("message", "gesimuleerde fout")),
                    transient=bool(spec.get("transient", True)),
                )
                self.fault_count = count
            else:
                raise InputError("fault is {code, message?, transient?, count?} of null")
        if "refuseForSeconds" in doc:
            seconds = _non_negative(doc["refuseForSeconds"], "refuseForSeconds")
            if self.refuse is None:
                raise InputError("refuseForSeconds werkt alleen met serve() of SimulatorServer")
            self.refuse(seconds)

    def state(self) -> dict[str, JSON]:
        fault: JSON = None
        if self.fault is not None:
            fault = {"code": self.fault.code, "transient": self.fault.transient, "count": self.fault_count}
        return {
            "delaySeconds": self.delay_seconds,
            "down": self.is_down() > 0,
            "downForSeconds": None
            if math.isinf(self.down_until)
            else max(0.0, round(self.down_until - time.monotonic(), 3)),
            "fault": fault,
            "dropNext": self.drop_next,
            "hostile": self.hostile,
        }

    def is_down(self) -> float:
        """Seconds of outage left (0 when up)."""
        return max(0.0, self.down_until - time.monotonic())

    def retry_after(self) -> str:
        """The Retry-After value (seconds) for an outage: what is left, or 60 for an open-ended one."""
        left = self.is_down()
        return "60" if math.isinf(left) else str(int(left) + 1)

    async def delay(self) -> None:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)

    def take_hostile(self) -> str | None:
        """The kind of hostile answer to give this call (counting it down), or None."""
        kind = self.hostile
        if kind is not None and self.hostile_count is not None:
            self.hostile_count -= 1
            if self.hostile_count <= 0:
                self.hostile, self.hostile_count = None, None
        return kind

    def take_drop(self) -> bool:
        """Whether to acknowledge this message but lose it (counting down ``dropNext``)."""
        if self.drop_next > 0:
            self.drop_next -= 1
            return True
        return False

    def take_fault(self) -> InjectedFault | None:
        """The fault to answer this call with (counting it down), or None."""
        fault = self.fault
        if fault is not None and self.fault_count is not None:
            self.fault_count -= 1
            if self.fault_count <= 0:
                self.fault, self.fault_count = None, None
        return fault


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(f"{name} is een getal >= 0")
    return float(value)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One message a simulator received or sent."""

    message_id: str
    message_type: str
    created_at: datetime
    at: datetime
    payload_sha256: str
    counterpart_oin: str | None = None
    replaces: str | None = None
    answer: bytes = b""


@dataclass(slots=True)
class Ledger:
    """What the simulator received (deduplicated on message id) and sent."""

    duplicates: DuplicateStore[LedgerEntry]
    received: dict[str, LedgerEntry] = field(default_factory=dict)
    sent: dict[str, LedgerEntry] = field(default_factory=dict)
    duplicate_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, message_id: str) -> LedgerEntry | None:
        """The first receipt of a message id still remembered, or None."""
        entry = self.duplicates.get(message_id)
        if entry is not None:
            with self.lock:
                self.duplicate_count += 1
        return entry

    def accept(self, entry: LedgerEntry) -> LedgerEntry:
        """Record a received message; returns the first entry if it raced with a duplicate."""
        first = self.duplicates.remember(entry.message_id, entry)
        if first is entry:
            with self.lock:
                self.received[entry.message_id] = entry
        return first

    def record_sent(self, entry: LedgerEntry) -> None:
        with self.lock:
            self.sent[entry.message_id] = entry

    def forget(self, message_id: str) -> bool:
        """Drop a received message from the books (not from duplicate elimination)."""
        with self.lock:
            return self.received.pop(message_id, None) is not None

    def is_known(self, message_id: uuid.UUID) -> bool:
        key = str(message_id)
        with self.lock:
            return key in self.received or key in self.sent

    def listing(self) -> dict[str, JSON]:
        with self.lock:
            entries = list(self.received.values())
            sent = list(self.sent.values())
            duplicates = self.duplicate_count
        by_type: dict[str, JSON] = {}
        for entry in entries:
            count = by_type.get(entry.message_type, 0)
            by_type[entry.message_type] = (count if isinstance(count, int) else 0) + 1
        return {
            "count": len(entries),
            "duplicatesEliminated": duplicates,
            "byType": by_type,
            "messageIds": [e.message_id for e in entries],
            "sentMessageIds": [e.message_id for e in sent],
        }

    def summaries(self, period: str) -> tuple[PeriodSummary, PeriodSummary]:
        """(received, sent) in a period of the messages' creation time."""
        check_period(period)
        with self.lock:
            received = [
                (e.message_id, e.message_type) for e in self.received.values() if in_period(e.created_at, period)
            ]
            sent = [(e.message_id, e.message_type) for e in self.sent.values() if in_period(e.created_at, period)]
        return PeriodSummary.of(period, received), PeriodSummary.of(period, sent)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SimulatorServer:
    """Runs an ASGI app with uvicorn in a daemon thread on loopback; can stop and start again on the same port.

    ``refuse_for(seconds)`` closes the port (connections are refused) and
    reopens it afterwards; the app and its state live on.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Serve in a background thread; retries the bind while the port is still being released."""
        with self._lock:
            if self._thread is not None:
                return
            deadline = time.monotonic() + timeout
            while True:
                config = uvicorn.Config(
                    self.app,
                    host=self.host,
                    port=self.port,
                    log_level="warning",
                    lifespan="off",
                    timeout_graceful_shutdown=1,
                )
                server = uvicorn.Server(config)
                thread = threading.Thread(target=server.run, name=f"simulator-{self.port}", daemon=True)
                thread.start()
                while not server.started and thread.is_alive() and time.monotonic() < deadline:
                    time.sleep(0.01)
                if server.started:
                    self._server, self._thread = server, thread
                    return
                server.should_exit = True
                thread.join(1)
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"simulator did not start on {self.url}")
                time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: graceful first, forced when connections linger."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout / 2)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout / 2)

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C); survives refuse_for() restarts."""
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return

    def refuse_for(self, seconds: float) -> None:
        """Close the port now (after the current answers) and reopen it after ``seconds``."""

        def outage() -> None:
            time.sleep(0.05)  # let the control request that asked for this be answered
            self.stop()
            time.sleep(seconds)
            self.start()

        threading.Thread(target=outage, name=f"outage-{self.port}", daemon=True).start()

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def now() -> datetime:
    return utcnow()
