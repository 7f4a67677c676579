"""A canary INSZ sent through every entry point never appears in the application logs
(structlog output of a live hub at debug level) nor in the audit log."""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub import demo
from hub.infomodel import InfoModel
from tests.conftest import LiveHub, make_settings, start_live_hub
from tests.helpers import audit_rows, xml_message
from tests.security.corpus import soap_wrap

CANARY = demo.make_insz(random.Random(20261124), bis=False)
FORMATTED = f"{CANARY[:2]}.{CANARY[2:4]}.{CANARY[4:6]}-{CANARY[6:9]}.{CANARY[9:]}"


@pytest.fixture
def logged_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveHub, io.StringIO]]:
    sink = io.StringIO()
    monkeypatch.setattr(sys, "stderr", sink)  # logs.configure binds sys.stderr when the app is built
    hub = start_live_hub(make_settings(tmp_path, log_level="debug"))
    try:
        yield hub, sink
    finally:
        hub.stop()


def _aanmelding(insz: str) -> dict[str, object]:
    doc = demo.aanmelding(random.Random(3))
    doc["subject"] = {"type": "INSZ", "id": insz}
    doc["payload"]["persoon"]["identificatie"] = {"insz": insz}  # type: ignore[index]
    return doc


def test_canary_insz_never_reaches_the_logs(logged_hub: tuple[LiveHub, io.StringIO]) -> None:
    hub, sink = logged_hub
    model = InfoModel(hub.settings.schemas_dir)
    sent: list[int] = []
    with hub.client("agii") as agii:
        # the happy paths: REST JSON, REST XML, SOAP (accepted, routed, delivered to stad-gent)
        doc = _aanmelding(CANARY)
        sent.append(agii.post("/v1/berichten", json=doc, headers={"X-Correlation-Id": f"c-{CANARY}"}).status_code)
        xml = xml_message(_aanmelding(CANARY), model)
        sent.append(agii.post("/v1/berichten", content=xml, headers={"Content-Type": "application/xml"}).status_code)
        soap = soap_wrap(xml_message(_aanmelding(CANARY), model))
        sent.append(agii.post("/soap/berichten", content=soap, headers={"Content-Type": "text/xml"}).status_code)
        # the refusals: the canary in places where it does not belong, or formatted
        sent.append(agii.post("/v1/berichten", json=_aanmelding(FORMATTED)).status_code)
        bad = _aanmelding(CANARY)
        bad["messageId"] = CANARY
        sent.append(agii.post("/v1/berichten", json=bad).status_code)
        wrong_protocol = _aanmelding(CANARY)
        wrong_protocol["purpose"] = "nl-pip"
        sent.append(agii.post("/v1/berichten", json=wrong_protocol).status_code)
        mismatch = _aanmelding(CANARY)
        mismatch["subject"] = {"type": "INSZ", "id": demo.make_insz(random.Random(1))}
        sent.append(agii.post("/v1/berichten", json=mismatch).status_code)
        sent.append(
            agii.post("/v1/berichten", content=f"<x>{CANARY}</x>", headers={"Content-Type": "text/xml"}).status_code
        )
        sent.append(agii.get(f"/v1/berichten/{CANARY}").status_code)
        # the lookups and the reference directory (plateau 3)
        follow = {"subject": {"type": "INSZ", "id": CANARY}, "hoedanigheid": "trajectbegeleiding"}
        sent.append(agii.post("/v1/repertorium/inschrijvingen", json=follow).status_code)
        sent.append(agii.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": follow["subject"]}).status_code)
        for purpose in ("be-trajectopvolging", "be-nt2"):
            sent.append(agii.post("/v1/personen/_zoek", json={"insz": CANARY, "purpose": purpose}).status_code)
            sent.append(agii.post("/v1/inschrijvingen/_zoek", json={"insz": CANARY, "purpose": purpose}).status_code)
        sent.append(agii.get("/v1/inbox", params={"type": CANARY}).status_code)
        sent.append(agii.get("/v1/inbox", headers={"traceparent": f"00-{CANARY}{'0' * 21}-{'1' * 16}-01"}).status_code)
    with httpx.Client(base_url=hub.url) as anonymous:
        sent.append(anonymous.get("/v1/inbox", headers={"Authorization": f"Bearer {CANARY}"}).status_code)
        sent.append(
            anonymous.post(
                "/v1/oauth/token",
                content=f"grant_type=client_credentials&client_id={CANARY}&client_secret={CANARY}",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ).status_code
        )
    assert sent[:3] == [202, 202, 200], sent
    assert [s for s in sent[3:] if s >= 500] == [], sent  # refused (4xx) or, for the traceparent, read (200)
    with hub.client("stad-gent") as gent:  # the receiver reads it back: inbox rendering logs nothing either
        assert gent.get("/v1/inbox").status_code == 200
    hub.wait_status("agii", _last_accepted(hub), {"delivered"})

    logs = sink.getvalue()
    assert logs.count("\n") >= 5, "the hub logged (debug level), so the check below means something"
    assert CANARY not in logs
    assert FORMATTED not in logs
    assert "message_accepted" in logs
    for row in audit_rows(hub.settings):
        flat = json.dumps(row, default=str)
        assert CANARY not in flat, row["event"]
        assert FORMATTED not in flat, row["event"]


def _last_accepted(hub: LiveHub) -> str:
    [row, *_] = reversed(audit_rows(hub.settings, "received"))
    message_id: str = row["message_id"]
    return message_id
