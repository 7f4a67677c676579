"""/ready and /metrics on the embedded default (scale mode: tests/scale/test_cluster.py)."""

from __future__ import annotations

import orjson

from hub import demo
from tests.conftest import LiveHub


def test_ready_says_ready_when_database_writer_and_transport_are_up(live: LiveHub) -> None:
    with live.client() as c:
        r = c.get("/ready")
    assert r.status_code == 200
    assert r.json()["checks"]["transport"] == {"ok": True, "name": "memory"}


def test_metrics_count_accepted_and_delivered_messages_per_partner(live: LiveHub) -> None:
    import random

    doc = demo.inburgeringsplicht(random.Random(5), "0344")
    with live.client("duo") as c:
        assert (
            c.post("/v1/berichten", content=orjson.dumps(doc), headers={"Content-Type": "application/json"}).status_code
            == 202
        )
    live.wait_status("duo", doc["messageId"], {"delivered"})
    with live.client() as c:
        text = c.get("/metrics").text
    assert 'knooppunt_messages_accepted_total{sender="duo"} 1.0' in text
    assert 'knooppunt_deliveries_delivered_total{partner="gemeente-utrecht"} 1.0' in text
    assert 'knooppunt_delivery_latency_seconds_count{partner="gemeente-utrecht"} 1.0' in text
    assert "knooppunt_outbox_rows 0.0" in text
