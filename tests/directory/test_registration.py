"""Registering and deregistering in the reference directory: REST and MAGDA-style SOAP."""

from __future__ import annotations

from lxml import etree

from tests.conftest import SHARED
from tests.directory.conftest import Plateau3, insz, subject
from tests.helpers import audit_rows

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WEB_IN = "http://webservice.registreerinschrijvingdienst-02_01.repertorium-02_01.vip.vlaanderen.be"
WEB_OUT = "http://webservice.registreeruitschrijvingdienst-02_00.repertorium-02_00.vip.vlaanderen.be"


def test_registering_is_checked_against_a_protocol_and_audited(p3: Plateau3) -> None:
    person = insz()
    created = p3.register("stad-gent", subject(person), "woongemeente")
    assert created.status_code == 201
    body = created.json()
    assert body["protocol"] == "be-trajectopvolging"
    assert body["nieuw"] is True
    again = p3.register("stad-gent", subject(person), "woongemeente", einde="2099-12-31")
    assert again.status_code == 200
    assert again.json()["inschrijvingId"] == body["inschrijvingId"]
    assert again.json()["einde"] == "2099-12-31"
    subscribed = [e for e in audit_rows(p3.live.settings, "subscribed") if e["sender"] == "stad-gent"]
    assert len(subscribed) == 2
    assert subscribed[0]["detail"]["capacity"] == "woongemeente"
    assert subscribed[0]["subject_hash"]
    assert person not in str(subscribed)


def test_a_capacity_no_protocol_allows_for_the_partner_is_refused(p3: Plateau3) -> None:
    refused = p3.register("taalschool", subject(insz()), "woongemeente")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["invalidParams"][0]["name"] == "capacity"
    named = p3.register("stad-gent", subject(insz()), "woongemeente", purpose="nl-pip")
    assert named.status_code == 403


def test_an_invalid_insz_is_refused_with_the_field_named(p3: Plateau3) -> None:
    refused = p3.register("stad-gent", {"type": "INSZ", "id": "12345678901"}, "woongemeente")
    assert refused.status_code == 400
    assert refused.json()["invalidParams"][0]["name"] == "subject/id"


def test_deregistering_ends_only_the_callers_own_follow_up(p3: Plateau3) -> None:
    person = insz()
    assert p3.register("stad-gent", subject(person), "woongemeente").status_code == 201
    assert p3.register("agii", subject(person), "trajectbegeleiding").status_code == 201
    with p3.client("taalschool") as c:
        assert c.post("/v1/repertorium/inschrijvingen/_verwijder", json={"subject": subject(person)}).status_code == 404
    with p3.client("stad-gent") as c:
        ended = c.post("/v1/repertorium/inschrijvingen/_verwijder", json={"subject": subject(person)})
        assert ended.status_code == 200
        assert [s["beeindigd"] for s in ended.json()["items"]] == [True]
        assert c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"] == []
    with p3.client("agii") as c:
        assert (
            len(c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"]) == 1
        )
    assert [e["sender"] for e in audit_rows(p3.live.settings, "unsubscribed")] == ["stad-gent"]


def _soap(operation: str, inner: str, afzender: str) -> bytes:
    ns = WEB_IN if operation == "RegistreerInschrijving" else WEB_OUT
    return f"""<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:web="{ns}"><soapenv:Header/><soapenv:Body>
<web:{operation}><Verzoek><Context><Naam>{operation}</Naam><Versie>02.01.0000</Versie>
<Bericht><Type>VRAAG</Type><Tijdstip><Datum>2026-11-24</Datum><Tijd>08:59:34.773</Tijd></Tijdstip>
<Afzender><Identificatie>{afzender}</Identificatie><Referte>ref-1</Referte><Hoedanigheid>1300</Hoedanigheid></Afzender>
</Bericht></Context><Vragen>{inner}</Vragen></Verzoek></web:{operation}></soapenv:Body></soapenv:Envelope>""".encode()


def _inschrijving(ref: str, number: str, capacity: str) -> str:
    return f"""<Vraag><Referte>{ref}</Referte><Inhoud><Inschrijving><Identificatie>stad-gent</Identificatie>
<Hoedanigheid>{capacity}</Hoedanigheid><BetrokkenSubject><Type>PERS</Type><Subjecten><Subject><Type>PERS</Type>
<Sleutel>{number}</Sleutel></Subject></Subjecten></BetrokkenSubject><Periode><Begin>2026-01-01</Begin></Periode>
</Inschrijving></Inhoud></Vraag>"""


def test_soap_registreer_inschrijving_and_uitschrijving(p3: Plateau3) -> None:
    person, other = insz(), insz()
    body = _soap(
        "RegistreerInschrijving",
        _inschrijving("v1", person, "woongemeente") + _inschrijving("v2", other, "taalaanbieder"),
        "stad-gent",
    )
    with p3.client("stad-gent") as c:
        r = c.post("/soap/repertorium", content=body, headers={"content-type": "text/xml"})
    assert r.status_code == 200, r.text
    root = etree.fromstring(r.content)
    antwoorden = root.findall(".//Antwoord")
    assert [a.findtext("Referte") for a in antwoorden] == ["v1", "v2"]
    assert [a.findtext("Inhoud/Resultaat") for a in antwoorden] == ["1", "0"]  # a partial answer
    assert antwoorden[1].findtext("Uitzonderingen/Uitzondering/Type") == "FOUT"
    assert antwoorden[1].findtext("Uitzonderingen/Uitzondering/Identificatie") == "not_allowed"
    with p3.client("stad-gent") as c:
        mine = c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"]
    assert [(s["hoedanigheid"], s["begin"]) for s in mine] == [("woongemeente", "2026-01-01")]

    out = f"""<Vraag><Referte>u1</Referte><Inhoud><Uitschrijving><Identificatie>stad-gent</Identificatie>
<Hoedanigheid>woongemeente</Hoedanigheid><INSZ>{person}</INSZ></Uitschrijving></Inhoud></Vraag>"""
    with p3.client("stad-gent") as c:
        r = c.post("/soap/repertorium", content=_soap("RegistreerUitschrijving", out, "stad-gent"))
        assert r.status_code == 200
        assert etree.fromstring(r.content).findtext(".//Antwoord/Inhoud/Resultaat") == "1"
        # the second time there is nothing to end: MAGDA 40003 in a SOAP fault
        again = c.post("/soap/repertorium", content=_soap("RegistreerUitschrijving", out, "stad-gent"))
    assert again.status_code == 500
    fault = etree.fromstring(again.content)
    assert fault.find(f".//{{{SOAP}}}Fault") is not None
    assert fault.findtext(".//{urn:knooppunt:soap:1}Identificatie") == "not_found"
    assert "subscribed" in {e["event"] for e in audit_rows(p3.live.settings) if e["sender"] == "stad-gent"}


def test_soap_refuses_a_sender_that_is_not_the_caller(p3: Plateau3) -> None:
    body = _soap("RegistreerInschrijving", _inschrijving("v1", insz(), "woongemeente"), "agii")
    with p3.client("stad-gent") as c:
        r = c.post("/soap/repertorium", content=body)
    assert r.status_code == 500
    assert b"Uitzonderingen" in r.content
    with p3.client() as anonymous:
        assert anonymous.post("/soap/repertorium", content=body).status_code == 401


def test_magdas_own_request_templates_are_understood(p3: Plateau3) -> None:
    """The real RegistreerInschrijving/-Uitschrijving templates (contracts/magda), with our values filled in."""
    person = insz()
    requests_dir = SHARED / "contracts" / "magda" / "requests"
    register = (requests_dir / "RegistreerInschrijving" / "02.01.0000" / "template.xml").read_text(encoding="utf-8")
    register = (
        register.replace("kb.vlaanderen.be/aiv/burgerloket-wwoom-mock", "stad-gent")
        .replace("URI van de afnemer", "stad-gent")
        .replace("Hoedanigheidcode afnemer", "woongemeente")
        .replace("12345678901", person)
        .replace("2018-08-01", "2099-12-31")
    )
    with p3.client("stad-gent") as c:
        r = c.post("/soap/repertorium", content=register.encode(), headers={"content-type": "text/xml"})
        assert r.status_code == 200, r.text
        assert etree.fromstring(r.content).findtext(".//Antwoord/Inhoud/Resultaat") == "1"
        mine = c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"]
        assert [(s["begin"], s["einde"]) for s in mine] == [("2016-07-01", "2099-12-31")]

    deregister = (requests_dir / "RegistreerUitschrijving" / "02.00.0000" / "template.xml").read_text(encoding="utf-8")
    deregister = (
        deregister.replace("kb.vlaanderen.be/aiv/burgerloket-wwoom-mock", "stad-gent")
        .replace("<Hoedanigheid>1300</Hoedanigheid>\n                            </Uitschrijving>", "</Uitschrijving>")
        .replace("<Hoedanigheid>1300</Hoedanigheid>", "")
        .replace("67021546719", person)
    )
    with p3.client("stad-gent") as c:
        r = c.post("/soap/repertorium", content=deregister.encode(), headers={"content-type": "text/xml"})
        assert r.status_code == 200, r.text
        assert etree.fromstring(r.content).findtext(".//Antwoord/Inhoud/Resultaat") == "1"
        assert c.post("/v1/repertorium/inschrijvingen/_zoek", json={"subject": subject(person)}).json()["items"] == []
