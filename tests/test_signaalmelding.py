"""Signaalmelding: a municipality is told when a DUO signal about its inburgeraar arrives,
instead of polling DUO's portal (hub/signals.py), over real HTTP against the demo hub."""

from __future__ import annotations

import random
import time
import uuid
from datetime import date
from typing import Any

import httpx

from hub import demo
from hub.signals import notice_id
from tests.conftest import LiveHub
from tests.helpers import audit_rows

rng = random.Random(23)


def _inbox(live: LiveHub, partner: str, want: int, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    with live.client(partner) as c:
        while True:
            items: list[dict[str, Any]] = c.get("/v1/inbox").json()["items"]
            if len(items) >= want or time.monotonic() > deadline:
                return items
            time.sleep(0.1)


def _send_as_duo(live: LiveHub, doc: dict[str, Any]) -> dict[str, Any]:
    """DUO sends a signal in: over its WUS link (signed) when the demo runs DUO's simulator."""
    duo = live.sim_urls["duo"]
    mtype = doc["type"]
    from lxml import etree

    from hub.infomodel import InfoModel
    from hub.settings import ROOT

    model = InfoModel(ROOT / "schemas")
    payload = etree.tostring(model.json_to_xml(model.get(mtype, "1.0"), doc["payload"])).decode()
    body = {
        "type": mtype,
        "payloadXml": payload,
        "subject": doc["subject"],
        "purpose": doc["purpose"],
        "messageId": doc["messageId"],
    }
    r = httpx.post(f"{duo}/control/send", json=body, timeout=30)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_a_municipality_following_for_notices_is_told_of_a_signal_not_given_it(live: LiveHub) -> None:
    signal = demo.inburgeringsplicht(rng, "0344")
    # Ede keeps working in DUO's portal: it follows the person for notices only
    with live.client("gemeente-ede") as c:
        r = c.post(
            "/v1/repertorium/inschrijvingen",
            json={"subject": signal["subject"], "hoedanigheid": "meldingen"},
        )
    assert r.status_code in (200, 201), r.text
    _send_as_duo(live, signal)
    live.wait_status("duo", signal["messageId"], {"delivered"})
    # the signal itself goes to Utrecht (gemeentecode), not to Ede
    assert [m["messageId"] for m in live.received("gemeente-utrecht")["messages"]] == [signal["messageId"]]
    items = _inbox(live, "gemeente-ede", 1)
    assert len(items) == 1
    notice = items[0]
    assert notice["type"] == "signaalmelding"
    assert notice["messageId"] == str(notice_id(signal["messageId"], "gemeente-ede"))
    assert notice["payload"] == {
        "identificatie": {"bsn": signal["subject"]["id"]},
        "signaal": "inburgeringsplicht",
        "signaalBericht": signal["messageId"],
        "ontvangenOp": date.today().isoformat(),
        "reden": "VOLGT_PERSOON",
    }
    # a notice carries no other personal data than the identifier
    assert signal["payload"]["persoon"]["achternaam"] not in str(notice)
    received = [r for r in audit_rows(live.settings, "received") if r["message_id"] == notice["messageId"]]
    assert received[0]["sender"] == "duo"
    assert received[0]["protocol_id"] == "nl-signaalmelding"
    assert received[0]["detail"]["channel"] == "notice"


def test_the_municipality_whose_signal_is_corrected_elsewhere_is_told(live: LiveHub) -> None:
    signal = demo.inburgeringsplicht(rng, "0344")
    _send_as_duo(live, signal)
    live.wait_status("duo", signal["messageId"], {"delivered"})
    # DUO corrects the municipality: the person lives in Ede, not in Utrecht
    correction = demo.message(
        "correctiesignaal",
        purpose="nl-correctiesignaal",
        subject_type="BSN",
        subject_id=signal["subject"]["id"],
        payload={
            "persoon": signal["payload"]["persoon"],
            "gemeentecode": "0228",
            "vervangtBericht": signal["messageId"],
            "vervangtBerichttype": "inburgeringsplicht",
            "soort": "VERVANGING",
            "gecorrigeerdOp": date.today().isoformat(),
            "reden": "Verkeerde woongemeente",
            "plichtig": True,
            "vastgesteldOp": signal["payload"]["vastgesteldOp"],
        },
    )
    _send_as_duo(live, correction)
    # the full correction waits in Ede's inbox (plateau 1)
    live.wait_status("duo", correction["messageId"], {"in_inbox"})
    ede = _inbox(live, "gemeente-ede", 1)
    assert [m["messageId"] for m in ede] == [correction["messageId"]]
    # Utrecht, which acted on the replaced signal, is told by push to its own system
    notice = str(notice_id(correction["messageId"], "gemeente-utrecht"))
    live.wait_status("duo", notice, {"delivered"})
    got = {m["messageId"]: m for m in live.received("gemeente-utrecht")["messages"]}
    assert set(got) == {signal["messageId"], notice}
    payload = got[notice]["message"]["payload"]
    assert payload["reden"] == "EERDER_SIGNAAL"
    assert payload["vervangtBericht"] == signal["messageId"]
    assert payload["signaalBericht"] == correction["messageId"]
    assert "gemeentecode" not in payload


def test_a_resent_signal_gives_the_same_notice_once(live: LiveHub) -> None:
    signal = demo.inburgeringsplicht(rng, "0344")
    with live.client("gemeente-ede") as c:
        c.post("/v1/repertorium/inschrijvingen", json={"subject": signal["subject"], "hoedanigheid": "meldingen"})
    with live.client("duo") as c:
        first = c.post("/v1/berichten", json=signal)
        again = c.post("/v1/berichten", json=signal)
    assert (first.status_code, again.status_code) == (202, 202)
    assert len(_inbox(live, "gemeente-ede", 1)) == 1
    time.sleep(0.5)
    assert len(_inbox(live, "gemeente-ede", 1)) == 1
    notices = [
        r
        for r in audit_rows(live.settings, "received")
        if r["message_id"] == str(notice_id(signal["messageId"], "gemeente-ede"))
    ]
    assert len(notices) == 1


def test_no_notice_when_nobody_else_is_responsible(live: LiveHub) -> None:
    signal = demo.inburgeringsplicht(rng, "0344")
    with live.client("duo") as c:
        assert c.post("/v1/berichten", json=signal).status_code == 202
    live.wait_status("duo", signal["messageId"], {"delivered"})
    assert not [r for r in audit_rows(live.settings, "received") if r["message_type"] == "signaalmelding"]
    assert uuid.UUID(signal["messageId"])
