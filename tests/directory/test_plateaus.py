"""Mixed plateaus: a plateau-3 event for a plateau-1 partner lands in its inbox, for a
plateau-2 partner it is pushed; moving a partner between plateaus is configuration only, and the
running hub follows it without a restart."""

from __future__ import annotations

import time

from tests.directory.conftest import Plateau3, configure, insz, leuven_at_plateau, subject, trajectmelding


def test_a_plateau_change_is_one_configuration_change_both_ways(p3: Plateau3) -> None:
    person = insz()
    assert p3.register("stad-leuven", subject(person), "woongemeente").status_code == 201

    first = trajectmelding(person)
    assert p3.send("agii", first)["receivers"] == ["stad-leuven"]
    p3.wait_delivered("agii", first["messageId"])
    assert first["messageId"] in p3.inbox_ids("stad-leuven")  # plateau 1: the portal inbox
    assert p3.pushed_ids("stad-leuven") == []

    # up to plateau 2: the partner's configuration names an adapter; nothing else changes
    configure(p3.live.settings, [leuven_at_plateau(2, p3.leuven_sim)], tokens=p3.tokens)
    time.sleep(0.5)  # the hub rereads partner configuration every partners_refresh_seconds (0.1 here)
    second = trajectmelding(person, "CURSUS_START")
    assert p3.send("agii", second)["receivers"] == ["stad-leuven"]
    p3.wait_delivered("agii", second["messageId"])
    assert p3.pushed_ids("stad-leuven") == [second["messageId"]]

    # and back down to plateau 1
    configure(p3.live.settings, [leuven_at_plateau(1, p3.leuven_sim)], tokens=p3.tokens)
    time.sleep(0.5)
    third = trajectmelding(person, "CURSUS_EINDE")
    p3.send("agii", third)
    p3.wait_delivered("agii", third["messageId"])
    assert p3.pushed_ids("stad-leuven") == [second["messageId"]]
    assert third["messageId"] in p3.inbox_ids("stad-leuven")
