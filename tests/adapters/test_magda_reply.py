"""The three levels of Uitzonderingen, read from crafted replies (the samples lack some codes)."""

from __future__ import annotations

import pytest

from adapters._magda import services
from adapters._magda.lookups import has_person, person_result
from adapters._magda.reply import NotRegistered, assess, parse_envelope
from adapters._magda.services import SOAP_ENV
from hub.errors import PartnerError, PartnerRejected, PartnerUnavailable

NS = services.GEEF_PERSOON.namespace


def envelope(inner: str) -> bytes:
    return (f'<?xml version="1.0"?><s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>{inner}</s:Body></s:Envelope>').encode()


def uitzondering(code: str, soort: str = "FOUT", diagnose: str = "d", annotatie: str = "") -> str:
    return (
        f"<Uitzondering><Identificatie>{code}</Identificatie><Oorsprong>RR</Oorsprong><Type>{soort}</Type>"
        f"<Diagnose>{diagnose}</Diagnose>{annotatie}</Uitzondering>"
    )


def reply(repliek: str = "", antwoord: str = "", inhoud: str = "") -> bytes:
    body = f"<Inhoud>{inhoud}</Inhoud>" if inhoud else ""
    r = f"<Uitzonderingen>{repliek}</Uitzonderingen>" if repliek else ""
    a = f"<Uitzonderingen>{antwoord}</Uitzonderingen>" if antwoord else ""
    return envelope(
        f'<w:GeefPersoonResponse xmlns:w="{NS}"><Repliek><Context><Naam>GeefPersoon</Naam></Context>{r}'
        f"<Antwoorden><Antwoord><Referte>x</Referte>{body}{a}</Antwoord></Antwoorden></Repliek></w:GeefPersoonResponse>"
    )


PERSOON = "<Persoon><INSZ>85073003328</INSZ><Naam><Voornamen><Voornaam>Ana</Voornaam></Voornamen></Naam></Persoon>"


def read(body: bytes):  # type: ignore[no-untyped-def]
    r = parse_envelope(body, services.GEEF_PERSOON, max_bytes=100_000)
    return person_result(r, assess(r, has_data=has_person(r)).warnings, "85073003328")


def fault(code: str, detail: str = "") -> bytes:
    return envelope(
        f"<s:Fault><faultcode>s:{code}</faultcode><faultstring>kapot</faultstring><detail>{detail}</detail></s:Fault>"
    )


def test_level1_soap_server_fault_is_transient_client_fault_permanent() -> None:
    with pytest.raises(PartnerUnavailable, match="Server"):
        read(fault("Server"))
    with pytest.raises(PartnerRejected, match="Client"):
        read(fault("Client"))
    with pytest.raises(PartnerUnavailable, match="99996"):
        read(fault("Client", uitzondering("99996")))


def test_level2_fout_fails_the_whole_request_even_with_data() -> None:
    with pytest.raises(PartnerRejected, match="30001"):
        read(reply(repliek=uitzondering("30001"), inhoud=PERSOON))
    with pytest.raises(NotRegistered):
        read(reply(repliek=uitzondering("40003")))


def test_level2_waarschuwing_is_a_warning() -> None:
    result = read(reply(repliek=uitzondering("12345", "WAARSCHUWING", "let op"), inhoud=PERSOON))
    assert result.found
    assert result.warnings == ("12345 (RR, WAARSCHUWING): let op",)


def test_level3_fout_without_data_fails_with_data_warns() -> None:
    with pytest.raises(PartnerRejected, match="20110"):
        read(reply(antwoord=uitzondering("20110")))
    partial = read(reply(antwoord=uitzondering("20110"), inhoud=PERSOON))
    assert partial.found
    assert partial.warnings[0].startswith("20110 (RR, FOUT)")


def test_level3_no_data_codes_mean_not_found() -> None:
    for code in ("30001", "30101"):
        result = read(reply(antwoord=uitzondering(code)))
        assert not result.found


def test_new_insz_is_found_in_annotation_or_diagnose() -> None:
    annotated = uitzondering(
        "30004",
        "WAARSCHUWING",
        annotatie="<Annotaties><Annotatie><Naam>NieuwINSZ</Naam><Waarde>85073003427</Waarde></Annotatie></Annotaties>",
    )
    assert read(reply(antwoord=annotated, inhoud=PERSOON)).data["nieuwInsz"] == "85073003427"
    in_text = read(reply(antwoord=uitzondering("30002", diagnose="INSZ geannuleerd, nieuw INSZ 85073003427")))
    assert not in_text.found
    assert in_text.data == {"insz": "85073003328", "inszStatus": "geannuleerd", "nieuwInsz": "85073003427"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<a>",
        envelope("").replace(SOAP_ENV.encode(), b"http://www.w3.org/2003/05/soap-envelope"),
        envelope(""),
        envelope(f'<w:GeefPersoonResponse xmlns:w="{NS}"/>'),
        envelope(
            f'<w:GeefHistoriekInschrijvingResponse xmlns:w="{NS}"><Repliek/></w:GeefHistoriekInschrijvingResponse>'
        ),
        envelope(
            f'<w:GeefPersoonResponse xmlns:w="{NS}"><Repliek><Context><Naam>Ander</Naam></Context></Repliek>'
            "</w:GeefPersoonResponse>"
        ),
        b"<x>" + b"<y>" * 100 + b"</y>" * 100 + b"</x>",
        b"\xff\xfe<\x00",
    ],
)
def test_unreadable_replies_are_partner_errors(body: bytes) -> None:
    with pytest.raises(PartnerError) as caught:
        read(body)
    assert "<" not in caught.value.detail


def test_oversized_reply_is_refused_before_parsing() -> None:
    with pytest.raises(PartnerError, match="groter dan"):
        parse_envelope(b"<a>" + b" " * 200_000 + b"</a>", services.GEEF_PERSOON, max_bytes=100_000)


def test_uitzondering_reading_keeps_levels_apart() -> None:
    r = parse_envelope(
        reply(repliek=uitzondering("1", "INFORMATIE"), antwoord=uitzondering("2", "WAARSCHUWING")),
        services.GEEF_PERSOON,
        max_bytes=100_000,
    )
    assert [(u.identificatie, u.niveau) for u in r.uitzonderingen] == [("1", "repliek"), ("2", "antwoord")]
