"""One writer for all API processes (hub.store.shared): an API process's ingest units are written
by the leader's writer over a Unix socket, answered per batch, with the hub's errors intact; what
has no wire form, or finds no leader, is written by the process itself, and nothing is lost when
the leader goes away with units in flight."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub import envelope as env
from hub.audit import AuditEvent, verify
from hub.directory import Forwarding
from hub.errors import Conflict, StoreError
from hub.identifiers import parse_subject
from hub.service import WIRE, Accepted, Hub, _AuditUnit, _IngestUnit
from hub.settings import Settings
from hub.store.shared import _HEADER
from hub.store.tables import audit_events, messages
from hub.transport.memory import MemoryTransport

PROTOCOL = "nl-inburgeringsplicht"


@pytest.fixture
def leader(settings: Settings, tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(settings)
    hub.open_store()
    hub.serve_writer(tmp_path / "writer.sock")
    yield hub
    assert hub.writer_server is not None
    hub.writer_server.stop()
    hub.close_store()


@contextlib.contextmanager
def api_process(settings: Settings, path: Path) -> Iterator[Hub]:
    """An API process's hub, its units sent to the leader at ``path``."""
    hub = Hub(settings, shared_writer=path)
    hub.open_store()
    try:
        yield hub
    finally:
        hub.close_store()


@pytest.fixture
def api(settings: Settings, leader: Hub, tmp_path: Path) -> Iterator[Hub]:
    """An API process of the ``leader``."""
    with api_process(settings, tmp_path / "writer.sock") as hub:
        yield hub


def ingest_unit(hub: Hub, message_id: uuid.UUID | None = None, *, payload: bytes = b"payload") -> _IngestUnit:
    key_id, _ = hub.writer.run_sync(hub.keys.ensure_unit(PROTOCOL, datetime.now(UTC).strftime("%Y-%m")))
    envelope = env.Envelope(
        message_id=message_id or uuid.uuid4(),
        type="inburgeringsplicht",
        version="1.0",
        sender="duo",
        subject=parse_subject("BSN", "999990019", allow_test_numbers=True),
        purpose=PROTOCOL,
        receivers=("gemeente-ede",),
    )
    return _IngestUnit(
        envelope=envelope,
        protocol_id=PROTOCOL,
        digest=payload.hex(),
        subject_hash="h" * 64,
        key_id=key_id,
        nonce=b"n" * 12,
        ciphertext=payload,
        size=len(payload),
        channel="rest-xml",
        transport=None,
    )


def stored(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def test_an_api_process_has_its_ingest_units_written_by_the_leader(leader: Hub, api: Hub) -> None:
    leader_units = leader.writer.units
    units = [ingest_unit(api) for _ in range(20)]
    own_units = api.writer.units  # the data key above: written by the API process itself

    async def send() -> list[Accepted]:
        return list(await asyncio.gather(*(api.writer.submit(u) for u in units)))

    answers = asyncio.run(send())
    assert [a.message_id for a in answers] == [str(u.envelope.message_id) for u in units]
    assert all(isinstance(a, Accepted) and not a.duplicate for a in answers)
    assert all(a.receivers == ("gemeente-ede",) for a in answers)
    # written by the leader's writer, in fewer transactions than units, none by the API process
    assert leader.writer.units - leader_units == 20
    assert api.writer.units == own_units
    assert leader.writer_server is not None
    assert leader.writer_server.units == 20
    assert stored(leader) == 20
    with leader.engine.connect() as conn:
        received = conn.execute(
            select(func.count()).select_from(audit_events).where(audit_events.c.event == "received")
        ).scalar_one()
        assert received == 20
        assert verify(conn).ok


def test_a_replay_and_a_conflict_come_back_as_the_leader_saw_them(leader: Hub, api: Hub) -> None:
    first = ingest_unit(api)
    same = ingest_unit(api, first.envelope.message_id)
    other = ingest_unit(api, first.envelope.message_id, payload=b"another payload")

    async def send() -> tuple[Accepted, Accepted, BaseException]:
        a = await api.writer.submit(first)
        b = await api.writer.submit(same)
        try:
            await api.writer.submit(other)
        except Conflict as exc:
            return a, b, exc
        raise AssertionError("a different message under a used id was accepted")

    a, b, conflict = asyncio.run(send())
    assert not a.duplicate
    assert b.duplicate
    assert b.received_at == a.received_at
    # the hub's own error class and words, as if the API process had written it itself
    assert type(conflict) is Conflict
    assert conflict.status == 409
    assert "al gebruikt" in conflict.detail
    assert stored(leader) == 1


def test_the_leader_publishes_what_it_wrote_for_an_api_process(leader: Hub, api: Hub) -> None:
    async def run() -> int:
        transport = MemoryTransport(asyncio.get_running_loop())
        leader.transport = transport
        await api.writer.submit(ingest_unit(api))
        for _ in range(100):  # the writer thread hands the job to this loop
            if transport.depth():
                break
            await asyncio.sleep(0.01)
        return transport.depth()

    assert asyncio.run(run()) == 1


def test_units_without_a_wire_form_are_written_by_the_api_process(leader: Hub, api: Hub) -> None:
    before = leader.writer.units
    asyncio.run(api.writer.submit(_AuditUnit(AuditEvent("refused", status="refused", detail={"code": "x"}))))
    assert leader.writer.units == before
    assert api.writer.units >= 1


def test_without_a_leader_the_api_process_writes_itself(settings: Settings, tmp_path: Path) -> None:
    with api_process(settings, tmp_path / "nobody-listens.sock") as api:
        answer = asyncio.run(api.writer.submit(ingest_unit(api)))
        assert not answer.duplicate
        assert stored(api) == 1


class _LeaderThatDies:
    """A 'leader' that reads one unit and closes the connection without answering it."""

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.took = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            size, _ = _HEADER.unpack(conn.recv(_HEADER.size, socket.MSG_WAITALL))
            conn.recv(size, socket.MSG_WAITALL)
            self.took.set()
        self.listener.close()


def test_a_unit_the_leader_never_answered_is_written_by_the_api_process(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "writer.sock"
    dying = _LeaderThatDies(path)
    with api_process(settings, path) as api:
        unit = ingest_unit(api)
        answer = asyncio.run(asyncio.wait_for(api.writer.submit(unit), 10))
        assert dying.took.is_set()  # it did reach the leader
        assert answer.message_id == str(unit.envelope.message_id)
        assert stored(api) == 1


def test_only_the_exchanged_classes_are_unpickled(leader: Hub, api: Hub, tmp_path: Path) -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system"):
        WIRE.loads(pickle.dumps(os.system))
    # a frame naming another class is answered with an error; the connection goes on
    path = tmp_path / "writer.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(path))
        body = pickle.dumps(os.system)
        conn.sendall(_HEADER.pack(len(body), 7) + body)
        size, request_id = _HEADER.unpack(conn.recv(_HEADER.size, socket.MSG_WAITALL))
        ok, value = WIRE.loads(conn.recv(size, socket.MSG_WAITALL))
        assert (request_id, ok, value[0]) == (7, False, "StoreError")
    assert not asyncio.run(api.writer.submit(ingest_unit(api))).duplicate
    assert stored(leader) == 1


def test_the_socket_is_for_the_hubs_own_user_only(leader: Hub, tmp_path: Path) -> None:
    mode = (tmp_path / "writer.sock").stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_an_unknown_error_class_comes_back_as_a_store_error() -> None:
    from hub.store.shared import _error_from_wire, _error_wire

    assert type(_error_from_wire(_error_wire(ValueError("x")))) is StoreError
    assert type(_error_from_wire(("NoSuchError", "x", []))) is StoreError
    back = _error_from_wire(_error_wire(Conflict("bezet")))
    assert type(back) is Conflict
    assert back.detail == "bezet"


def test_a_unit_crosses_the_socket_unchanged(settings: Settings) -> None:
    hub = Hub(settings)
    hub.open_store()
    try:
        unit = ingest_unit(hub)
        unit.forwarding = Forwarding(("gemeente-ede",), {"partner_inactive": 1}, follows=(("gemeente-ede", "x"),))
        unit.envelope = replace(
            unit.envelope, conversation_id=uuid.uuid4(), traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
        )
        assert _IngestUnit.from_wire(WIRE.loads(WIRE.dumps(unit.wire())), None) == unit
    finally:
        hub.close_store()


def test_a_person_bound_answer_keeps_its_forwarding(api: Hub) -> None:
    first = ingest_unit(api)
    first.forwarding = Forwarding(("gemeente-ede",), {"capacity_not_allowed": 2})
    again = ingest_unit(api, first.envelope.message_id)
    again.forwarding = first.forwarding

    async def send() -> tuple[Accepted, Accepted]:
        return await api.writer.submit(first), await api.writer.submit(again)

    a, b = asyncio.run(send())
    assert a.forwarding == first.forwarding
    assert a.forwarding is not None
    assert a.forwarding.not_forwarded == {"capacity_not_allowed": 2}
    assert b.duplicate
    assert b.forwarding == Forwarding(("gemeente-ede",), replayed=True)


def test_when_the_leaders_writer_has_stopped_the_api_process_writes_itself(leader: Hub, api: Hub) -> None:
    first = asyncio.run(api.writer.submit(ingest_unit(api)))  # connected, written by the leader
    leader.writer.stop()  # the leader is stopping: its socket is still open, its writer not
    unit = ingest_unit(api)
    second = asyncio.run(asyncio.wait_for(api.writer.submit(unit), 10))
    assert not first.duplicate
    assert not second.duplicate
    assert second.message_id == str(unit.envelope.message_id)
    assert stored(api) == 2
