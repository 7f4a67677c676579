"""Person-bound routing through the reference directory, over real HTTP and real SQLite."""

from __future__ import annotations

import random
from pathlib import Path

from lxml import etree

from hub import demo
from hub.infomodel import InfoModel
from hub.settings import ROOT
from tests.directory.conftest import Plateau3, insz, persoonsmutatie, subject, trajectmelding
from tests.helpers import audit_rows, xml_message


def _follow(p3: Plateau3, number: str) -> None:
    s = subject(number)
    assert p3.register("stad-gent", s, "woongemeente").status_code == 201
    assert p3.register("agii", s, "trajectbegeleiding").status_code == 201
    assert p3.register("taalschool", s, "taalaanbieder").status_code == 201


def test_an_event_reaches_exactly_the_followers_its_protocol_allows(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    doc = persoonsmutatie(person, "VERHUIZING", postcode="9000")  # a move within Gent: no handover

    answer = p3.send("rijksregister", doc)

    assert sorted(answer["receivers"]) == ["agii", "stad-gent"]
    forwarding = answer["forwarding"]
    assert forwarding["forwarded"] == 2
    # the language school follows the person, but not in a capacity persoonsmutaties allows; no names are given
    assert forwarding["notForwarded"] == [
        {
            "reason": "capacity_not_allowed",
            "count": 1,
            "explanation": "volgt de persoon in een hoedanigheid die dit protocol niet toestaat",
        }
    ]
    assert "taalschool" not in str(forwarding)
    p3.wait_delivered("rijksregister", doc["messageId"])
    assert doc["messageId"] in p3.pushed_ids("stad-gent")
    assert doc["messageId"] in p3.pushed_ids("agii")
    assert doc["messageId"] not in p3.inbox_ids("taalschool")
    assert doc["messageId"] not in p3.inbox_ids("stad-antwerpen")
    routed = [e for e in audit_rows(p3.live.settings, "routed") if e["message_id"] == doc["messageId"]]
    assert routed[0]["detail"]["notForwarded"] == {"capacity_not_allowed": 1}


def test_a_traject_step_reaches_the_language_school_minimised_to_its_fields(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    doc = trajectmelding(person, "CURSUS_START", aanbieder="CVO Taalschool", resultaat="ingeschreven")

    answer = p3.send("agii", doc)

    # the sender (agii) follows the person too, but is not sent its own message
    assert sorted(answer["receivers"]) == ["stad-gent", "taalschool"]
    p3.wait_delivered("agii", doc["messageId"])
    with p3.client("taalschool") as c:
        item = next(i for i in c.get("/v1/inbox").json()["items"] if i["messageId"] == doc["messageId"])
    assert "resultaat" not in item["payload"]
    assert item["payload"]["aanbieder"] == "CVO Taalschool"


def test_an_event_about_a_person_nobody_follows_is_accepted_and_not_forwarded(p3: Plateau3) -> None:
    answer = p3.send("rijksregister", persoonsmutatie(insz(), "OVERLIJDEN"))
    assert answer["receivers"] == []
    assert answer["forwarding"]["forwarded"] == 0
    assert answer["forwarding"]["reason"] == "niemand volgt deze persoon in het verwijzingsrepertorium"


def test_a_resend_gets_the_same_forwarding_answer(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    doc = trajectmelding(person)
    first = p3.send("agii", doc)
    again = p3.send("agii", doc)
    assert again["receivers"] == first["receivers"]
    assert again["forwarding"]["forwarded"] == first["forwarding"]["forwarded"]
    assert again["forwarding"]["replayed"] is True


def test_a_move_hands_the_person_over_to_the_new_municipality(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    move = persoonsmutatie(person, "VERHUIZING", vorigeGemeentecode="44021", nieuweGemeentecode="11002")

    answer = p3.send("rijksregister", move)

    # the old municipality learns the person left, the new one that he arrived
    assert sorted(answer["receivers"]) == ["agii", "stad-antwerpen", "stad-gent"]
    assert answer["forwarding"]["handover"] == {"to": "stad-antwerpen", "capacity": "woongemeente"}
    p3.wait_delivered("rijksregister", move["messageId"])
    assert move["messageId"] in p3.inbox_ids("stad-antwerpen")  # plateau 1: its portal inbox
    with p3.client("stad-antwerpen") as c:
        mine = c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"]
    assert [(s["hoedanigheid"], s["partner"]) for s in mine] == [("woongemeente", "stad-antwerpen")]
    with p3.client("stad-gent") as c:
        assert c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"] == []

    # from now on the person's events go to Antwerp, no longer to Gent
    step = trajectmelding(person, "CONTRACT", omschrijving="Inburgeringscontract ondertekend")
    after = p3.send("agii", step)
    assert sorted(after["receivers"]) == ["stad-antwerpen", "taalschool"]
    handover = [e for e in audit_rows(p3.live.settings) if e["message_id"] == move["messageId"]]
    events = {(e["event"], e["receiver"]) for e in handover}
    assert ("subscribed", "stad-antwerpen") in events
    assert ("unsubscribed", "stad-gent") in events


def test_a_bis_number_replaced_by_a_national_number_keeps_the_follow_ups(p3: Plateau3) -> None:
    bis = insz(bis=True)
    national = insz()
    _follow(p3, bis)
    change = persoonsmutatie(bis, "NIEUW_INSZ", nieuweIdentificatie={"insz": national})
    assert sorted(p3.send("rijksregister", change)["receivers"]) == ["agii", "stad-gent"]

    # an event under the new number reaches the partners that registered under the old one
    step = trajectmelding(national)
    assert sorted(p3.send("agii", step)["receivers"]) == ["stad-gent", "taalschool"]
    with p3.client("stad-gent") as c:
        mine = c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(national)}).json()["items"]
    assert [s["hoedanigheid"] for s in mine] == ["woongemeente"]
    relinked = [e for e in audit_rows(p3.live.settings, "relinked") if e["message_id"] == change["messageId"]]
    assert relinked
    assert relinked[0]["detail"]["reason"] == "NIEUW_INSZ"


def test_a_cancelled_insz_keeps_the_person_but_takes_no_new_registrations(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    p3.send("rijksregister", persoonsmutatie(person, "INSZ_GESCHRAPT"))
    refused = p3.register("stad-antwerpen", subject(person), "woongemeente")
    assert refused.status_code == 409
    assert refused.json()["code"] == "insz_cancelled"
    with p3.client("stad-gent") as c:
        kept = c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"]
    assert [s["hoedanigheid"] for s in kept] == ["woongemeente"]


def test_a_death_ends_every_follow_up_after_it_is_forwarded(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    answer = p3.send("rijksregister", persoonsmutatie(person, "OVERLIJDEN"))
    assert sorted(answer["receivers"]) == ["agii", "stad-gent"]
    later = p3.send("agii", trajectmelding(person))
    assert later["receivers"] == []


def test_identifiers_are_never_stored_in_plain(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    p3.send("rijksregister", persoonsmutatie(person, "VERHUIZING", nieuweGemeentecode="11002"))
    p3.live.thread.stop()  # checkpoint the WAL into the file
    db = Path(p3.live.settings.database_url.removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert person.encode() not in raw
    p3.restart()


def test_a_duo_signal_reaches_the_coded_municipality_and_the_ones_that_follow_the_person(p3: Plateau3) -> None:
    doc = demo.inburgeringsplicht(random.Random(5), "0228")  # Ede, plateau 1
    bsn = doc["subject"]["id"]
    assert p3.register("gemeente-utrecht", subject(bsn), "woongemeente").status_code == 201
    # a Flemish local government may follow the person, but this Dutch protocol does not serve it
    assert p3.register("stad-gent", subject(bsn), "woongemeente").status_code == 201

    answer = p3.send("duo", doc)

    assert sorted(answer["receivers"]) == ["gemeente-ede", "gemeente-utrecht"]
    assert answer["forwarding"]["notForwarded"][0]["reason"] == "capacity_not_allowed"
    p3.wait_delivered("duo", doc["messageId"])
    assert doc["messageId"] in p3.pushed_ids("gemeente-utrecht")
    assert doc["messageId"] in p3.inbox_ids("gemeente-ede")


def test_a_soap_sender_also_learns_how_far_its_event_was_forwarded(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    doc = persoonsmutatie(person, "VERHUIZING")
    inner = xml_message(doc, InfoModel(ROOT / "schemas")).split(b"?>", 1)[1]
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        + inner
        + b"</soap:Body></soap:Envelope>"
    )
    with p3.client("rijksregister") as c:
        r = c.post("/soap/berichten", content=body, headers={"content-type": "text/xml"})
    assert r.status_code == 200, r.text
    ks = "{urn:knooppunt:soap:1}"
    forwarding = etree.fromstring(r.content).find(f".//{ks}forwarding")
    assert forwarding is not None
    assert forwarding.findtext(f"{ks}forwarded") == "2"
    assert forwarding.findtext(f"{ks}notForwarded/{ks}reason") == "capacity_not_allowed"


def test_named_receivers_of_a_person_bound_event_are_served_only_if_they_follow(p3: Plateau3) -> None:
    person = insz()
    _follow(p3, person)
    doc = persoonsmutatie(person, "VERHUIZING")
    doc["receivers"] = ["stad-gent", "stad-antwerpen"]  # Antwerp does not follow this person

    answer = p3.send("rijksregister", doc)

    assert answer["receivers"] == ["stad-gent"]
    reasons = {n["reason"]: n["count"] for n in answer["forwarding"]["notForwarded"]}
    assert reasons["not_following"] == 1
