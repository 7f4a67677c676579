"""Delivery: retries with backoff, dead letters, replay, and recovery after a restart."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from hub import demo
from hub.cli.main import app
from hub.cli.runner import DEMO_PARTNERS, Simulated, seed_demo
from hub.demo import load_partners
from hub.dispatch import RELAY_IDLE_MAX_SECONDS, Dispatcher, Outcome, backoff, relay_wait
from hub.loopback import free_port
from hub.partners import upsert_partner
from hub.service import Hub
from hub.settings import Settings
from hub.store.tables import deliveries, outbox
from hub.transport import Job
from tests.conftest import LiveHub, start_live_hub
from tests.helpers import audit_rows

rng = random.Random(42)


def test_backoff_grows_exponentially_and_is_capped() -> None:
    for attempt in range(1, 8):
        delay = backoff(attempt, 1.0, 30.0)
        expected = min(30.0, 2 ** (attempt - 1))
        assert expected / 2 <= delay <= expected
    assert backoff(50, 1.0, 30.0) <= 30.0


def test_an_idle_relay_backs_off_in_scale_mode_only() -> None:
    """Scale mode: nothing to publish doubles the wait up to the cap, publishing resets it.
    SQLite: the relay carries what other processes accepted, so it never slows down."""
    waits = [relay_wait(0.5, idle, backs_off=True) for idle in range(6)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert relay_wait(0.5, 1000, backs_off=True) == RELAY_IDLE_MAX_SECONDS
    assert relay_wait(0.5, 0, backs_off=True) == 0.5  # after a poll that published something
    assert relay_wait(10.0, 3, backs_off=True) == 10.0  # a configured poll above the cap is kept
    assert {relay_wait(0.5, idle, backs_off=False) for idle in range(10)} == {0.5}


@pytest.fixture
def patient(settings: Settings) -> Iterator[LiveHub]:
    """A live hub that keeps retrying long enough for a partner to come back on a slow machine."""
    hub = start_live_hub(
        settings.model_copy(update={"delivery": settings.delivery.model_copy(update={"max_attempts": 200})})
    )
    try:
        yield hub
    finally:
        hub.stop()


def test_partner_down_then_up_is_retried_and_delivered_once(patient: LiveHub) -> None:
    live = patient
    live.control("gemeente-utrecht", mode="down")
    doc = demo.inburgeringsplicht(rng, "0344")
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    status = live.wait_status("duo", doc["messageId"], {"retrying"})
    assert status["deliveries"][0]["attempts"] >= 1
    assert "503" in status["deliveries"][0]["lastError"]
    live.control("gemeente-utrecht", mode="up")
    live.wait_status("duo", doc["messageId"], {"delivered"})
    received = live.received("gemeente-utrecht")
    assert [m["messageId"] for m in received["messages"]] == [doc["messageId"]]
    events = [e["event"] for e in audit_rows(live.settings) if e["message_id"] == doc["messageId"]]
    assert events[:2] == ["received", "routed"]
    assert "retry_scheduled" in events
    assert events[-1] == "delivered"


def test_after_the_last_attempt_the_delivery_is_dead_and_audited_failed(live: LiveHub) -> None:
    live.control("stad-gent", mode="down")
    doc = demo.aanmelding(rng, "44021")
    with live.client("agii") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    status = live.wait_status("agii", doc["messageId"], {"dead"})
    assert status["deliveries"][0]["attempts"] == live.settings.delivery.max_attempts
    failed = [e for e in audit_rows(live.settings, "failed") if e["message_id"] == doc["messageId"]]
    assert len(failed) == 1
    assert failed[0]["receiver"] == "stad-gent"


def test_a_partner_whose_adapter_cannot_be_built_is_retried_then_dead_and_fixed_by_replay(settings: Settings) -> None:
    """A configuration the adapter refuses (here an outgoing TLS profile that is not set up) used
    to escape the delivery: no attempt counted, no error shown, and the job came back at once
    for ever (RabbitMQ redelivers it). Now it is a failed attempt with the reason, retried with
    backoff, dead after the last one, and delivered by a replay once the configuration is right."""
    port = free_port()
    gent = next(d for d in load_partners(DEMO_PARTNERS) if d.partner.id == "stad-gent")
    assert gent.simulator is not None
    config = {**gent.partner.adapter_config, "url": Simulated(gent.simulator, port).url}
    broken = replace(gent.partner, adapter_config={**config, "tls_profile": "ontbreekt"})
    # configured so from the start: the hub follows a change only at its next partner refresh
    live = start_live_hub(
        settings.model_copy(update={"partners_refresh_seconds": 0.0}), {"stad-gent": port}, extra=[broken]
    )
    try:
        doc = demo.aanmelding(rng, "44021")
        with live.client("agii") as c:
            assert c.post("/v1/berichten", json=doc).status_code == 202
        status = live.wait_status("agii", doc["messageId"], {"dead"})
        delivery = status["deliveries"][0]
        assert delivery["attempts"] == live.settings.delivery.max_attempts
        assert "tls_profile 'ontbreekt'" in delivery["lastError"]
        events = [e["event"] for e in audit_rows(live.settings) if e["message_id"] == doc["messageId"]]
        assert events.count("retry_scheduled") == live.settings.delivery.max_attempts - 1
        assert events[-1] == "failed"
        assert live.received("stad-gent")["messages"] == []

        store = Hub(live.settings)
        store.open_store()
        try:  # the operator fixes it; the relay reloads the partners (each poll, here) before it publishes
            store.writer.run_sync(upsert_partner(replace(broken, adapter_config=config), actor="test"))
        finally:
            store.close_store()
        env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
        result = CliRunner().invoke(app, ["deliveries", "replay", "--message-id", doc["messageId"]], env=env)
        assert result.exit_code == 0, result.output
        live.wait_status("agii", doc["messageId"], {"delivered"})
        assert [m["messageId"] for m in live.received("stad-gent")["messages"]] == [doc["messageId"]]
    finally:
        live.stop()


def test_a_partner_refusal_is_not_retried(live: LiveHub) -> None:
    live.control("stad-gent", mode="reject")
    doc = demo.aanmelding(rng, "44021")
    with live.client("agii") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    status = live.wait_status("agii", doc["messageId"], {"dead"})
    assert status["deliveries"][0]["attempts"] == 1
    assert "422" in status["deliveries"][0]["lastError"]


def test_a_soap_client_fault_from_duo_is_not_retried(live: LiveHub) -> None:
    # DUO (over WUS) refuses the PIP with a soap:Client fault: a refusal, not an outage
    live.control("duo", fault={"code": "pip_onbekende_gemeente", "transient": False, "count": 1})
    doc = demo.pip(rng, "0344")
    with live.client("gemeente-utrecht") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    status = live.wait_status("gemeente-utrecht", doc["messageId"], {"dead"})
    assert status["deliveries"][0]["attempts"] == 1
    assert "pip_onbekende_gemeente" in status["deliveries"][0]["lastError"]
    assert live.received("duo")["count"] == 0


def test_replay_resends_dead_deliveries(live: LiveHub, monkeypatch: object) -> None:
    live.control("stad-gent", mode="down")
    doc = demo.aanmelding(rng, "44021")
    with live.client("agii") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    live.wait_status("agii", doc["messageId"], {"dead"})
    live.control("stad-gent", mode="up")
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    result = CliRunner().invoke(app, ["deliveries", "replay", "--message-id", doc["messageId"]], env=env)
    assert result.exit_code == 0, result.output
    assert "1 aflevering" in result.output
    live.wait_status("agii", doc["messageId"], {"delivered"})
    assert [m["messageId"] for m in live.received("stad-gent")["messages"]] == [doc["messageId"]]
    assert any(e["message_id"] == doc["messageId"] for e in audit_rows(live.settings, "replayed"))


def test_pending_deliveries_survive_a_restart_and_arrive_once(settings: Settings) -> None:
    settings = settings.model_copy(update={"delivery": settings.delivery.model_copy(update={"max_attempts": 1000})})
    first = start_live_hub(settings)
    ports = {pid: sim.port for pid, sim in first.sims.items()}
    try:
        first.control("gemeente-utrecht", mode="down")
        doc = demo.klantprofiel(rng, "0344")
        with first.client("coa") as c:
            assert c.post("/v1/berichten", json=doc).status_code == 202
        first.wait_status("coa", doc["messageId"], {"retrying"})
    finally:
        first.stop()
    slow = settings.model_copy(
        update={
            "delivery": settings.delivery.model_copy(
                update={"backoff_base_seconds": 3600.0, "backoff_max_seconds": 3600.0}
            )
        }
    )
    second = start_live_hub(slow, sim_ports=ports)
    try:
        # the restarted hub picks the message up from the durable outbox (the backoff is an hour,
        # so only the start-up recovery can deliver it this soon)
        deadline = time.monotonic() + 10
        while not second.received("gemeente-utrecht")["messages"] and time.monotonic() < deadline:
            time.sleep(0.05)
        second.wait_status("coa", doc["messageId"], {"delivered"})
        assert [m["messageId"] for m in second.received("gemeente-utrecht")["messages"]] == [doc["messageId"]]
    finally:
        second.stop()


def _accept(hub: Hub, partner: str, docs: list[dict[str, Any]]) -> None:
    async def send() -> None:
        caller = hub.partners.get(partner)
        assert caller is not None
        for doc in docs:
            await hub.accept(caller, hub.parse_json(orjson.dumps(doc)), channel="rest-json", pointer="json")

    asyncio.run(send())


def _rows(hub: Hub, table: Any) -> dict[str, dict[str, Any]]:
    with hub.engine.connect() as conn:
        return {r["message_id"]: dict(r) for r in conn.execute(select(table)).mappings()}


@pytest.fixture
def quiet_hub(settings: Settings) -> Iterator[Hub]:
    """The hub's store with the demo partners, no transport and no running dispatcher: the test
    hands the jobs over itself."""
    seed_demo(settings)
    hub = Hub(settings)
    hub.open_store()
    try:
        yield hub
    finally:
        hub.close_store()


def test_jobs_that_arrive_together_are_read_and_recorded_together(quiet_hub: Hub) -> None:
    """Embedded default: jobs handed over at once share one read of their deliveries and messages
    and a few record units, and each ends as if handled alone: in the plateau-1 inbox after attempt
    1, its outbox row gone. A delivery settled before its job ran is left as it is (outbox row gone)."""
    hub = quiet_hub
    docs = [demo.inburgeringsplicht(rng, "0228") for _ in range(20)]  # DUO -> gemeente Ede (inbox)
    _accept(hub, "duo", docs)
    ids = [d["messageId"] for d in docs]
    with hub.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.message_id == ids[0]).values(status="delivered"))
    dispatcher = Dispatcher(hub)

    async def run() -> None:
        await asyncio.gather(*(dispatcher.handle(Job(i, "gemeente-ede")) for i in ids))

    asyncio.run(run())
    assert dispatcher._loads.items == 20
    assert dispatcher._loads.batches <= 2  # read together, not one query per job
    assert dispatcher._oks.items == 19
    assert dispatcher._oks.batches < 19
    rows = _rows(hub, deliveries)
    assert (rows[ids[0]]["status"], rows[ids[0]]["attempts"]) == ("delivered", 0)
    assert {(rows[i]["status"], rows[i]["attempts"]) for i in ids[1:]} == {("in_inbox", 1)}
    assert _rows(hub, outbox) == {}
    assert dispatcher.delivered == 19
    assert audit_rows(hub.settings, "delivered") == []  # an inbox delivery is audited when it is read


def test_a_success_recorded_after_the_delivery_settled_keeps_the_settled_status(quiet_hub: Hub) -> None:
    """The batched record of successful deliveries reads each delivery's state in its transaction:
    one that went dead (or was delivered) meanwhile keeps that status and gets no audit record;
    the others are delivered and audited once each."""
    hub = quiet_hub
    docs = [demo.inburgeringsplicht(rng, "0228") for _ in range(3)]
    _accept(hub, "duo", docs)
    ids = [d["messageId"] for d in docs]
    with hub.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.message_id == ids[0]).values(status="dead"))
    dispatcher = Dispatcher(hub)
    items = [
        (Job(i, "gemeente-ede"), 1, Outcome(True, reference=f"ref-{i}"), (hub.load_message(i).envelope, None))
        for i in ids
    ]
    statuses = hub.writer.run_sync(dispatcher._record_ok(items))
    assert statuses == {Job(ids[0], "gemeente-ede"): "dead", **{Job(i, "gemeente-ede"): "delivered" for i in ids[1:]}}
    rows = _rows(hub, deliveries)
    assert rows[ids[0]]["status"] == "dead"
    assert all(rows[i]["status"] == "delivered" and rows[i]["delivered_at"] is not None for i in ids[1:])
    delivered = audit_rows(hub.settings, "delivered")
    assert sorted(e["message_id"] for e in delivered) == sorted(ids[1:])
    assert {e["receiver"] for e in delivered} == {"gemeente-ede"}
    assert _rows(hub, outbox) == {}
