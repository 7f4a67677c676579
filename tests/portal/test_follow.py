"""Plateau 3 through the portal: a municipality follows a person without an API."""

from __future__ import annotations

import random
from contextlib import closing

from hub import demo
from tests.helpers import audit_rows
from tests.portal.conftest import Portal, csrf_of


def test_a_municipality_follows_and_stops_following_a_person_in_the_portal(portal: Portal) -> None:
    bsn = demo.make_bsn(random.Random(5))
    with closing(portal.login()) as c:
        form = c.get("/portaal/volgen")
        assert form.status_code == 200
        assert "woongemeente" in form.text
        r = c.post(
            "/portaal/volgen",
            data={
                "csrf": csrf_of(form.text),
                "soort": "BSN",
                "nummer": bsn,
                "hoedanigheid": "woongemeente",
                "actie": "volgen",
            },
        )
        assert r.status_code == 200, r.text
        assert "U volgt deze persoon vanaf nu als woongemeente" in r.text
        assert bsn not in r.text
        subscribed = audit_rows(portal.live.settings, "subscribed")
        assert subscribed[-1]["detail"]["channel"] == "portal"
        assert "gemeente-ede" in (subscribed[-1]["actor"] or "") + (subscribed[-1]["receiver"] or "")
        stop = c.post(
            "/portaal/volgen",
            data={
                "csrf": csrf_of(r.text),
                "soort": "BSN",
                "nummer": bsn,
                "hoedanigheid": "woongemeente",
                "actie": "stoppen",
            },
        )
        assert "niet meer" in stop.text
        assert audit_rows(portal.live.settings, "unsubscribed")


def test_a_bad_number_or_a_missing_csrf_token_changes_nothing(portal: Portal) -> None:
    with closing(portal.login()) as c:
        form = c.get("/portaal/volgen")
        bad = c.post(
            "/portaal/volgen",
            data={
                "csrf": csrf_of(form.text),
                "soort": "BSN",
                "nummer": "123456789",
                "hoedanigheid": "woongemeente",
                "actie": "volgen",
            },
        )
        assert bad.status_code == 400
        assert "11-proef" in bad.text
        forged = c.post(
            "/portaal/volgen",
            data={
                "soort": "BSN",
                "nummer": demo.make_bsn(random.Random(6)),
                "hoedanigheid": "woongemeente",
                "actie": "volgen",
            },
        )
        assert forged.status_code == 403
    assert audit_rows(portal.live.settings, "subscribed") == []
