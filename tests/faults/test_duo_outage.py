"""A DUO outage of minutes, through the hub: nothing the hub accepted is lost, and DUO gets
everything exactly once when it comes back (checked on DUO's side, by message id).

DUO's simulator runs as its own process on loopback. The outage is real: first the
process is gone (connection refused), then it is back but in maintenance (HTTP 503),
together at least two minutes of wall-clock time, while municipalities keep sending
PIPs and handhaving measures for DUO. DUO's retry window is configured per partner
(every 3 seconds, for the test) and the hub follows it (``ports.RetryWindow``).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.duo import simulator as duo_sim
from hub import demo
from hub.audit import verify
from hub.cli.runner import demo_pki_dir
from hub.loopback import free_port
from hub.partners import Partner
from hub.service import Hub
from hub.settings import Settings
from tests.conftest import LiveHub, start_live_hub
from tests.helpers import audit_rows

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 125.0
rng = random.Random(2026)


class DuoProcess:
    """``python -m adapters.duo.simulator`` on a fixed loopback port."""

    def __init__(self, port: int, hub_url: str, pki_dir: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.args = [
            sys.executable,
            "-m",
            "adapters.duo.simulator",
            "--port",
            str(port),
            "--hub-url",
            hub_url,
            "--pki-dir",
            str(pki_dir),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, down: bool = False) -> None:
        args = [*self.args, "--down"] if down else self.args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/control", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("DUO-simulator startte niet")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
            self.proc = None

    def control(self, **body: Any) -> None:
        httpx.post(f"{self.url}/control", json=body, timeout=5).raise_for_status()

    def received(self) -> dict[str, Any]:
        got: dict[str, Any] = httpx.get(f"{self.url}/control/received", timeout=5).json()
        return got

    def signers(self) -> set[str]:
        got = httpx.get(f"{self.url}/control/berichten", timeout=5).json()["berichten"]
        return {str(b["signerOin"]) for b in got}


def _for_duo(i: int) -> dict[str, Any]:
    if i % 3 == 2:
        return demo.message(
            "handhaving",
            purpose="nl-handhaving",
            subject_type="BSN",
            subject_id=(bsn := demo.make_bsn(rng)),
            payload={
                "persoon": {"identificatie": {"bsn": bsn}, "achternaam": "Haddad"},
                "gemeentecode": "0344",
                "maatregel": "WAARSCHUWING",
                "overtreding": "NIET_NAKOMEN_PIP",
                "besluitdatum": "2026-10-01",
            },
        )
    return demo.pip(rng, "0344")


def _send(live: LiveHub, docs: list[dict[str, Any]]) -> None:
    with live.client("gemeente-utrecht") as c:
        for doc in docs:
            r = c.post("/v1/berichten", json=doc)
            assert r.status_code == 202, r.text
            assert r.json()["receivers"] == ["duo"]


def _statuses(live: LiveHub, ids: list[str]) -> dict[str, str]:
    out = {}
    with live.client("gemeente-utrecht") as c:
        for mid in ids:
            deliveries = c.get(f"/v1/berichten/{mid}").json()["deliveries"]
            out[mid] = ",".join(sorted(d["status"] for d in deliveries))
    return out


@pytest.mark.timeout(600)
def test_a_duo_outage_of_minutes_loses_nothing_and_delivers_everything_once(settings: Settings) -> None:
    duo_port = free_port()
    hub_port = free_port()
    pki = demo_pki_dir(settings)
    duo = DuoProcess(duo_port, f"http://127.0.0.1:{hub_port}/wus/duo", pki)
    config = duo_sim.adapter_config(duo.url, pki, retry_interval_seconds=3, retry_backoff=1.0, retry_window_days=1)
    partner = Partner(
        id="duo",
        name="DUO",
        role="duo",
        plateau=2,
        adapter="adapters.duo:DuoAdapter",
        adapter_config=config,
        oin=duo_sim.DUO_OIN,
    )
    # the hub's own backoff and attempt limit would give up within the outage: DUO's window decides
    settings = settings.model_copy(
        update={"delivery": settings.delivery.model_copy(update={"max_attempts": 3, "backoff_max_seconds": 1.0})}
    )
    duo.start()
    live = start_live_hub(settings, sim_ports={"duo": free_port()}, extra=[partner], hub_port=hub_port)
    try:
        before = [_for_duo(i) for i in range(4)]
        _send(live, before)
        for doc in before:
            live.wait_status("gemeente-utrecht", doc["messageId"], {"delivered"})
        first_process = duo.received()
        assert sorted(first_process["messageIds"]) == sorted(d["messageId"] for d in before)

        # the outage: DUO's process is gone ...
        duo.stop()
        outage_started = time.monotonic()
        during: list[dict[str, Any]] = []
        while time.monotonic() - outage_started < OUTAGE_SECONDS / 2:
            batch = [_for_duo(len(during) + i) for i in range(2)]
            _send(live, batch)  # the hub keeps accepting for DUO
            during += batch
            time.sleep(10)
        states = _statuses(live, [d["messageId"] for d in during])
        assert set(states.values()) == {"retrying"}, states
        with live.client("gemeente-utrecht") as c:
            last_error = c.get(f"/v1/berichten/{during[0]['messageId']}").json()["deliveries"][0]["lastError"]
        assert last_error

        # ... then back, but in maintenance (503) for the rest of the outage
        duo.start(down=True)
        while time.monotonic() - outage_started < OUTAGE_SECONDS:
            batch = [_for_duo(len(during) + i) for i in range(2)]
            _send(live, batch)
            during += batch
            time.sleep(10)
        assert duo.received()["count"] == 0
        assert set(_statuses(live, [d["messageId"] for d in during]).values()) == {"retrying"}
        outage = time.monotonic() - outage_started
        assert outage >= 120

        duo.control(down=False)
        came_back = time.monotonic()
        for doc in during:
            live.wait_status("gemeente-utrecht", doc["messageId"], {"delivered"}, timeout=60)
        resumed_in = time.monotonic() - came_back
        time.sleep(3)  # anything sent twice would arrive within a retry interval

        # on DUO's side: every message of the outage exactly once, nothing from before again
        books = duo.received()
        ids = books["messageIds"]
        assert sorted(ids) == sorted(d["messageId"] for d in during)
        assert len(ids) == len(set(ids))
        assert books["duplicatesEliminated"] == 0
        assert not set(ids) & {d["messageId"] for d in before}
        assert duo.signers() == {duo_sim.KNOOPPUNT_OIN}  # each one signed by the hub, verified by DUO
        assert resumed_in < 30

        # in the hub: one "delivered" per message, retries audited, the chain intact
        delivered = [r for r in audit_rows(live.settings, "delivered") if r["receiver"] == "duo"]
        assert sorted(r["message_id"] for r in delivered) == sorted(d["messageId"] for d in before + during)
        retried = {r["message_id"] for r in audit_rows(live.settings, "retry_scheduled")}
        assert {d["messageId"] for d in during} <= retried
        assert not audit_rows(live.settings, "failed")
    finally:
        live.stop()
        duo.stop()
    hub = Hub(live.settings)
    with hub.engine.connect() as conn:
        result = verify(conn)
    hub.engine.dispose()
    assert result.ok, result
