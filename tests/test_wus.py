"""The Dutch chain over Digikoppeling WUS through the hub: DUO signs what it sends in, the hub
verifies and routes it; what a municipality sends to DUO leaves the hub signed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.duo import simulator as duo_sim
from hub import demo
from hub.infomodel import InfoModel
from hub.loopback import free_port
from hub.partners import Partner
from hub.settings import ROOT, Settings
from tests.conftest import LiveHub, ServerThread, bound_port, start_live_hub
from tests.helpers import audit_rows, count_messages

rng = random.Random(11)
MODEL = InfoModel(ROOT / "schemas")


@pytest.fixture
def chain(settings: Settings, tmp_path: Path) -> Iterator[tuple[LiveHub, str]]:
    pki = tmp_path / "pki"
    hub_port = free_port()
    sim = duo_sim.server("127.0.0.1", 0, hub_url=f"http://127.0.0.1:{hub_port}/wus/duo", pki_dir=pki)
    sim_thread = ServerThread([sim])
    sim_thread.start()
    sim_url = f"http://127.0.0.1:{bound_port(sim)}"
    duo = Partner(
        id="duo",
        name="DUO",
        role="duo",
        plateau=2,
        adapter="adapters.duo:DuoAdapter",
        adapter_config=duo_sim.adapter_config(sim_url, pki),
        oin=duo_sim.DUO_OIN,
    )
    live = start_live_hub(settings, extra=[duo], hub_port=hub_port)
    try:
        yield live, sim_url
    finally:
        live.stop()
        sim_thread.stop()


def _payload_xml(doc: dict[str, Any]) -> str:
    from lxml import etree

    mtype = MODEL.get(doc["type"], doc["version"])
    return etree.tostring(MODEL.json_to_xml(mtype, doc["payload"])).decode()


def test_duo_signal_is_verified_routed_and_delivered(chain: tuple[LiveHub, str]) -> None:
    live, sim = chain
    doc = demo.inburgeringsplicht(rng, "0344")
    r = httpx.post(
        f"{sim}/control/send",
        json={
            "type": "inburgeringsplicht",
            "payloadXml": _payload_xml(doc),
            "subject": doc["subject"],
            "purpose": "nl-inburgeringsplicht",
            "messageId": doc["messageId"],
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    live.wait_status("gemeente-utrecht", doc["messageId"], {"delivered"})
    assert [m["messageId"] for m in live.received("gemeente-utrecht")["messages"]] == [doc["messageId"]]
    received = [e for e in audit_rows(live.settings, "received") if e["message_id"] == doc["messageId"]]
    assert received[0]["sender"] == "duo"
    assert received[0]["detail"]["channel"] == "wus"


def test_pip_leaves_the_hub_signed_for_duo(chain: tuple[LiveHub, str]) -> None:
    live, sim = chain
    doc = demo.pip(rng, "0344")
    with live.client("gemeente-utrecht") as c:
        assert c.post("/v1/berichten", json=doc).status_code == 202
    status = live.wait_status("gemeente-utrecht", doc["messageId"], {"delivered", "dead"})
    assert status["deliveries"][0]["status"] == "delivered", status["deliveries"][0]["lastError"]
    got = httpx.get(f"{sim}/control/received", timeout=10).json()
    assert doc["messageId"] in str(got)


def test_an_unsigned_message_is_refused_with_a_fault_and_audited(chain: tuple[LiveHub, str]) -> None:
    live, _ = chain
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/>'
        "<s:Body><x>unsigned</x></s:Body></s:Envelope>"
    )
    r = httpx.post(f"{live.url}/wus/duo", content=body, headers={"Content-Type": "text/xml"}, timeout=10)
    assert r.status_code == 500
    assert b"Fault" in r.content
    assert count_messages(live.settings) == 0
    refused = audit_rows(live.settings, "refused")
    assert refused[-1]["sender"] == "duo"
    assert refused[-1]["detail"]["channel"] == "wus"


def test_wus_for_a_partner_without_such_link_is_404(chain: tuple[LiveHub, str]) -> None:
    live, _ = chain
    r = httpx.post(f"{live.url}/wus/coa", content=b"<x/>", headers={"Content-Type": "text/xml"}, timeout=10)
    assert r.status_code == 404


def test_reconcile_finds_a_message_the_partner_dropped(chain: tuple[LiveHub, str]) -> None:
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from hub.cli.main import app

    live, sim = chain
    ids = []
    for _ in range(3):
        doc = demo.pip(rng, "0344")
        with live.client("gemeente-utrecht") as c:
            assert c.post("/v1/berichten", json=doc).status_code == 202
        live.wait_status("gemeente-utrecht", doc["messageId"], {"delivered"})
        ids.append(doc["messageId"])
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    period = datetime.now(UTC).strftime("%Y-%m")
    runner = CliRunner()
    whole = runner.invoke(app, ["reconcile", "--partner", "duo", "--period", period, "--json"], env=env)
    assert whole.exit_code == 0, whole.output
    # DUO loses one message it had acknowledged: the completeness check names it
    httpx.delete(f"{sim}/control/received/{ids[1]}", timeout=10).raise_for_status()
    gap = runner.invoke(app, ["reconcile", "--partner", "duo", "--period", period, "--json"], env=env)
    assert gap.exit_code == 1, gap.output
    import json

    report = json.loads(gap.stdout)
    assert report["richtingen"][0]["ontbreekt"] == [ids[1]]


def test_reconcile_finds_a_message_duo_acknowledged_and_then_lost(chain: tuple[LiveHub, str]) -> None:
    import json
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from hub.cli.main import app

    live, sim = chain
    # DUO answers ONTVANGEN for the next message, then loses it: the hub sees it delivered
    httpx.post(f"{sim}/control", json={"dropNext": 1}, timeout=10).raise_for_status()
    lost = demo.pip(rng, "0344")
    kept = demo.pip(rng, "0344")
    for doc in (lost, kept):
        with live.client("gemeente-utrecht") as c:
            assert c.post("/v1/berichten", json=doc).status_code == 202
        live.wait_status("gemeente-utrecht", doc["messageId"], {"delivered"})
    env = {"KNOOPPUNT_DATABASE_URL": live.settings.database_url, "KNOOPPUNT_LOG_LEVEL": "warning"}
    period = datetime.now(UTC).strftime("%Y-%m")
    gap = CliRunner().invoke(app, ["reconcile", "--partner", "duo", "--period", period, "--json"], env=env)
    assert gap.exit_code == 1, gap.output
    report = json.loads(gap.stdout)
    missing = [m for r in report["richtingen"] for m in r["ontbreekt"]]
    assert missing == [lost["messageId"]]
