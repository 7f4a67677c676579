"""Fixtures for plateau 3: the demo hub plus a Rijksregister source, a language school,
two more municipalities (one at plateau 1, one whose plateau the tests change) and its simulator."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from adapters.restpush import simulator
from hub import demo
from hub.loopback import free_port
from hub.partners import Partner, issue_token, new_token, upsert_partner
from hub.service import Hub
from hub.settings import Settings
from tests.conftest import LiveHub, ServerThread, start_live_hub

EXTRA = [
    Partner(id="rijksregister", name="Rijksregister (via MAGDA)", role="authentieke-bron", plateau=2),
    Partner(id="taalschool", name="CVO Taalschool", role="taalaanbieder", plateau=1),
    Partner(id="stad-antwerpen", name="Stad Antwerpen", role="lokaal-bestuur", plateau=1, codes=("11002",)),
    Partner(id="stad-leuven", name="Stad Leuven", role="lokaal-bestuur", plateau=1, codes=("24062",)),
]


def configure(settings: Settings, partners: list[Partner], tokens: dict[str, str] | None = None) -> dict[str, str]:
    """Write partner configuration (the one change a plateau move needs) and, if asked, fresh tokens."""
    hub = Hub(settings)
    hub.open_store()
    issued: dict[str, str] = {}
    try:
        for p in partners:
            hub.writer.run_sync(upsert_partner(p, actor="test"))
            if tokens is None or p.id not in tokens:
                token = new_token()
                hub.writer.run_sync(issue_token(p.id, token, actor="test"))
                issued[p.id] = token
    finally:
        hub.close_store()
    return issued


@dataclass
class Plateau3:
    """The live hub, tokens of every partner, and the Leuven simulator."""

    live: LiveHub
    tokens: dict[str, str]
    leuven_sim: str
    sim_thread: ServerThread
    sim_ports: dict[str, int] = field(default_factory=dict)

    def client(self, partner: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[partner]}"} if partner else {}
        return httpx.Client(base_url=self.live.url, headers=headers, timeout=10)

    def register(self, partner: str, subject: dict[str, str], capacity: str, **extra: Any) -> httpx.Response:
        with self.client(partner) as c:
            return c.post(
                "/v1/repertorium/inschrijvingen", json={"subject": subject, "hoedanigheid": capacity, **extra}
            )

    def send(self, partner: str, doc: dict[str, Any]) -> dict[str, Any]:
        with self.client(partner) as c:
            r = c.post("/v1/berichten", json=doc)
        assert r.status_code == 202, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait_delivered(self, partner: str, message_id: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(partner) as c:
            while True:
                body: dict[str, Any] = c.get(f"/v1/berichten/{message_id}").json()
                states = {d["status"] for d in body.get("deliveries", [])}
                if states <= {"delivered", "in_inbox"}:
                    return body
                if time.monotonic() > deadline:
                    raise AssertionError(f"deliveries of {message_id} still {states}")
                time.sleep(0.05)

    def inbox_ids(self, partner: str) -> list[str]:
        with self.client(partner) as c:
            items = c.get("/v1/inbox").json()["items"]
        return [i["messageId"] for i in items]

    def pushed_ids(self, partner: str) -> list[str]:
        url = self.leuven_sim if partner == "stad-leuven" else self.live.sim_urls[partner]
        return [m["messageId"] for m in httpx.get(f"{url}/berichten", timeout=5).json()["messages"]]

    def restart(self) -> None:
        """Stop the hub and start it again on the same database (configuration is read at start)."""
        self.live.stop()  # the hub and its simulators; both come back on the same ports
        self.live = start_live_hub(self.live.settings, sim_ports=self.sim_ports)
        self.tokens.update(self.live.setup.tokens)


def leuven_at_plateau(plateau: int, sim_url: str) -> Partner:
    base = next(p for p in EXTRA if p.id == "stad-leuven")
    if plateau == 1:
        return replace(base, plateau=1, adapter=None, adapter_config={})
    return replace(
        base,
        plateau=2,
        adapter="rest-push",
        adapter_config={"url": f"{sim_url}/berichten", "health_url": f"{sim_url}/health"},
    )


@pytest.fixture
def p3(settings: Settings) -> Iterator[Plateau3]:
    settings = settings.model_copy(update={"insz_test_numbers": False, "partners_refresh_seconds": 0.1})
    tokens = configure(settings, EXTRA)
    sim_port = free_port()
    sim_thread = ServerThread([simulator.server("stad-leuven", "127.0.0.1", sim_port)])
    sim_thread.start()
    ports = {pid: free_port() for pid in ("duo", "coa", "gemeente-utrecht", "agii", "stad-gent")}
    live = start_live_hub(settings, sim_ports=ports)
    tokens.update(live.setup.tokens)
    env = Plateau3(live, tokens, f"http://127.0.0.1:{sim_port}", sim_thread, ports)
    try:
        yield env
    finally:
        env.live.thread.stop()
        sim_thread.stop()


# -- messages -----------------------------------------------------------------------

rng = random.Random(1010)


def insz(*, bis: bool = False) -> str:
    return demo.make_insz(rng, born=date(1990, 5, 17), bis=bis)


def subject(number: str) -> dict[str, str]:
    return {"type": "INSZ" if len(number) == 11 else "BSN", "id": number}


def _ident(number: str) -> dict[str, str]:
    return {"insz": number} if len(number) == 11 else {"bsn": number}


def persoonsmutatie(number: str, soort: str, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "persoon": {"identificatie": _ident(number), "geboortedatum": "1990-05-17", "geslacht": "V"},
        "soort": soort,
        "datum": fields.pop("datum", date.today().isoformat()),
        **fields,
    }
    return _message("persoonsmutatie", "persoonsmutaties", number, payload)


def trajectmelding(number: str, soort: str = "ATTEST", **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "persoon": {"identificatie": _ident(number), "geboortedatum": "1990-05-17", "geslacht": "V"},
        "soort": soort,
        "datum": date.today().isoformat(),
        "omschrijving": fields.pop("omschrijving", "Inburgeringsattest behaald"),
        **fields,
    }
    return _message("trajectmelding", "be-trajectopvolging", number, payload)


def _message(mtype: str, purpose: str, number: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "type": mtype,
        "version": "1.0",
        "subject": subject(number),
        "purpose": purpose,
        "createdAt": datetime.now(UTC).isoformat(),
        "payload": payload,
    }
