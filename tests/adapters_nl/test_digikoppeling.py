"""The Digikoppeling library on its own: signature edge cases, retry windows, duplicates, correlation, counts."""

from __future__ import annotations

import asyncio
import copy
import time as time_module
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from lxml import etree

from adapters._digikoppeling import soap
from adapters._digikoppeling.faults import (
    SignatureInvalid,
    SignatureMissing,
    TimestampInvalid,
    UnknownCorrelation,
    WsSecurityFault,
)
from adapters._digikoppeling.reconcile import PeriodSummary, checksum, compare, in_period
from adapters._digikoppeling.reliability import (
    BusinessHours,
    Correlator,
    DuplicateStore,
    RetryPolicy,
    duplicate_retention,
    next_attempt,
)
from adapters._digikoppeling.simserver import FaultInjection
from adapters._digikoppeling.testpki import DemoPki
from adapters._digikoppeling.wss import SigningIdentity, WssVerifier, load_certificates, sign_envelope
from hub.errors import ConfigurationError, InputError

from .conftest import DUO_OIN, HUB_OIN

WSU = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}"


def identity(pki: DemoPki, name: str = "knooppunt") -> SigningIdentity:
    return SigningIdentity.from_pem_files(pki.parties[name].key_file, pki.parties[name].cert_file)


def verifier(pki: DemoPki, **kwargs: object) -> WssVerifier:
    return WssVerifier(load_certificates(pki.ca_file), [HUB_OIN], **kwargs)  # type: ignore[arg-type]


def signed(pki: DemoPki, now: datetime | None = None) -> etree._Element:
    addressing = soap.Addressing(
        action="urn:knooppunt:duo:wus:1:pip",
        message_id=uuid.uuid4(),
        to=soap.oin_address("http://127.0.0.1/wus/duo", DUO_OIN),
        from_address=soap.oin_address(soap.ANONYMOUS, HUB_OIN),
    )
    envelope = soap.build_envelope(addressing, etree.fromstring(b'<b:Bericht xmlns:b="urn:b"><b:x>1</b:x></b:Bericht>'))
    sign_envelope(envelope, identity(pki), now=now)
    return etree.fromstring(etree.tostring(envelope))


def test_signature_survives_serialisation_and_names_the_signer(pki: DemoPki) -> None:
    sender = verifier(pki).verify(signed(pki))
    assert sender.oin == HUB_OIN
    assert sender.expires - sender.created == timedelta(minutes=5)


def test_wrapped_body_is_refused(pki: DemoPki) -> None:
    """Signature wrapping: the signed Body moved into a header, a forged Body in its place."""
    envelope = signed(pki)
    body = envelope.find(f"{{{soap.SOAP11_NS}}}Body")
    assert body is not None
    header = envelope.find(f"{{{soap.SOAP11_NS}}}Header")
    assert header is not None
    forged = copy.deepcopy(body)
    forged.attrib.pop(f"{WSU}Id")
    forged[0][0].text = "2"
    header.append(body)
    envelope.append(forged)
    with pytest.raises(SignatureInvalid, match="Body is niet ondertekend"):
        verifier(pki).verify(envelope)


def test_duplicate_ids_are_refused(pki: DemoPki) -> None:
    envelope = signed(pki)
    body = envelope.find(f"{{{soap.SOAP11_NS}}}Body")
    assert body is not None
    extra = etree.SubElement(body[0], "{urn:b}y")
    extra.set(f"{WSU}Id", body.get(f"{WSU}Id") or "")
    with pytest.raises(WsSecurityFault, match="meer dan eens"):
        verifier(pki).verify(envelope)


def test_unsigned_addressing_header_is_refused(pki: DemoPki) -> None:
    envelope = signed(pki)
    header = envelope.find(f"{{{soap.SOAP11_NS}}}Header")
    assert header is not None
    relates = etree.Element(f"{{{soap.WSA_NS}}}RelatesTo")
    relates.text = f"urn:uuid:{uuid.uuid4()}"
    header.insert(0, relates)
    with pytest.raises(SignatureInvalid, match="RelatesTo is niet ondertekend"):
        verifier(pki).verify(envelope)


def test_changed_message_id_is_refused(pki: DemoPki) -> None:
    envelope = signed(pki)
    message_id = envelope.find(f".//{{{soap.WSA_NS}}}MessageID")
    assert message_id is not None
    message_id.text = f"urn:uuid:{uuid.uuid4()}"
    with pytest.raises(SignatureInvalid, match="gewijzigd"):
        verifier(pki).verify(envelope)


def test_timestamp_from_the_future_is_refused(pki: DemoPki) -> None:
    with pytest.raises(TimestampInvalid, match="toekomst"):
        verifier(pki).verify(signed(pki, now=datetime.now(UTC) + timedelta(minutes=10)))


def test_within_clock_skew_is_accepted(pki: DemoPki) -> None:
    late = datetime.now(UTC) - timedelta(minutes=5, seconds=30)
    assert verifier(pki, clock_skew=timedelta(seconds=60)).verify(signed(pki, now=late)).oin == HUB_OIN


def test_security_header_without_signature_is_missing_signature(pki: DemoPki) -> None:
    envelope = signed(pki)
    signature = envelope.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature")
    assert signature is not None
    signature.getparent().remove(signature)  # type: ignore[union-attr]
    with pytest.raises(SignatureMissing):
        verifier(pki).verify(envelope)


def test_key_and_certificate_must_belong_together(pki: DemoPki) -> None:
    with pytest.raises(ConfigurationError, match="hoort niet bij"):
        SigningIdentity.from_pem_files(pki.parties["duo"].key_file, pki.parties["knooppunt"].cert_file)


def test_fault_round_trip_keeps_code_and_transience() -> None:
    fault = soap.read_fault(etree.fromstring(soap.build_fault(soap.SERVER, "druk", detail_code="busy", transient=True)))
    assert fault == soap.Fault(code=soap.SERVER, string="druk", detail_code="busy", transient=True)


# -- retry windows ----------------------------------------------------------------------------------

NOW = datetime(2026, 10, 7, 10, 0, tzinfo=UTC)  # a Wednesday, 12:00 in Amsterdam


def test_retries_follow_the_interval_until_the_window_closes() -> None:
    policy = RetryPolicy(interval=timedelta(hours=1), window=timedelta(days=2))
    assert next_attempt(1, NOW, policy, NOW) == NOW + timedelta(hours=1)
    assert next_attempt(5, NOW, policy, NOW + timedelta(hours=30)) == NOW + timedelta(hours=31)
    assert next_attempt(48, NOW, policy, NOW + timedelta(hours=47, minutes=30)) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(
        interval=timedelta(minutes=1), window=timedelta(days=3), backoff=2.0, max_interval=timedelta(minutes=10)
    )
    delays = [next_attempt(n, NOW, policy, NOW) - NOW for n in range(1, 7)]  # type: ignore[operator]
    assert delays == [timedelta(minutes=m) for m in (1, 2, 4, 8, 10, 10)]


def test_outside_business_hours_waits_for_the_next_opening() -> None:
    hours = BusinessHours(start=time(8), end=time(17), timezone="Europe/Amsterdam")
    policy = RetryPolicy(interval=timedelta(hours=1), window=timedelta(days=5), business_hours=hours)
    friday_evening = datetime(2026, 10, 9, 15, 30, tzinfo=UTC)  # 17:30 in Amsterdam
    monday_morning = datetime(2026, 10, 12, 6, 0, tzinfo=UTC)  # 08:00 in Amsterdam (CEST)
    assert next_attempt(3, friday_evening, policy, friday_evening) == monday_morning


def test_business_hours_can_push_past_the_window() -> None:
    hours = BusinessHours(start=time(8), end=time(17))
    policy = RetryPolicy(interval=timedelta(hours=1), window=timedelta(days=1), business_hours=hours)
    friday_evening = datetime(2026, 10, 9, 15, 30, tzinfo=UTC)
    assert next_attempt(1, friday_evening, policy, friday_evening) is None


def test_retry_policy_from_config() -> None:
    policy = RetryPolicy.from_config(
        {
            "retry_interval_seconds": 600,
            "retry_window_days": 4,
            "business_hours": {"start": "09:00", "end": "16:00", "weekdays": [0, 1, 2, 3]},
        }
    )
    assert policy.interval == timedelta(minutes=10)
    assert policy.window == timedelta(days=4)
    assert policy.business_hours == BusinessHours(start=time(9), end=time(16), weekdays=frozenset({0, 1, 2, 3}))
    assert policy.duplicate_retention == duplicate_retention(policy.interval, policy.max_retries)
    with pytest.raises(ConfigurationError):
        RetryPolicy.from_config({"retry_window_days": 0})


# -- duplicates and correlation -------------------------------------------------------------------


def test_duplicate_store_keeps_ids_for_the_retention_and_then_forgets() -> None:
    clock = [NOW]
    store: DuplicateStore[str] = DuplicateStore(duplicate_retention(timedelta(minutes=10), 2), clock=lambda: clock[0])
    assert store.remember("a", "first") == "first"
    assert store.remember("a", "second") == "first"
    clock[0] = NOW + timedelta(minutes=29)
    assert "a" in store
    clock[0] = NOW + timedelta(minutes=30)
    assert "a" not in store
    assert len(store) == 0


def test_duplicate_store_is_bounded() -> None:
    store: DuplicateStore[int] = DuplicateStore(timedelta(days=1), max_entries=3)
    for n in range(5):
        store.remember(str(n), n)
    assert len(store) == 3
    assert store.get("0") is None
    assert store.get("4") == 4


def test_synchronous_answer_must_relate_to_the_question() -> None:
    correlator = Correlator()
    question = uuid.uuid4()
    correlator.ask(question, "pip")
    with pytest.raises(UnknownCorrelation):
        correlator.check(uuid.uuid4(), question)
    correlator.check(question, question)
    assert correlator.pending() == []


def test_asynchronous_answer_wakes_the_waiter() -> None:
    async def scenario() -> object:
        correlator = Correlator()
        question = uuid.uuid4()
        correlator.ask(question, "afstemming")
        waiter = asyncio.create_task(correlator.wait(question, timeout=2))
        await asyncio.sleep(0.01)
        assert correlator.answer(question, "het antwoord") == "afstemming"
        with pytest.raises(UnknownCorrelation):
            correlator.answer(uuid.uuid4(), "verdwaald")
        return await waiter

    assert asyncio.run(scenario()) == "het antwoord"


# -- counts ----------------------------------------------------------------------------------------


def test_checksum_ignores_order_and_duplicates() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert checksum([a, b]) == checksum([str(b).upper(), a, a])
    assert checksum([a]) != checksum([a, b])


def test_period_is_the_utc_month_or_day_of_creation() -> None:
    moment = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    assert in_period(moment, "2026-10")
    assert in_period(moment, "2026-10-31")
    assert not in_period(moment, "2026-11")


def test_compare_names_what_is_missing_on_each_side() -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    sent = PeriodSummary.of("2026-10", [(a, "pip"), (b, "pip")])
    got = PeriodSummary.of("2026-10", [(a, "pip"), (c, "pip")])
    gaps = compare(sent, got)
    assert (gaps.missing_at_receiver, gaps.unexpected_at_receiver) == ((b,), (c,))
    assert compare(sent, sent).complete
    assert PeriodSummary.from_json(sent.to_json()) == sent


# -- simulator fault injection -------------------------------------------------------------------


def test_timed_outage_ends_by_itself_and_open_outage_does_not() -> None:
    control = FaultInjection()
    control.configure({"downForSeconds": 0.2})
    assert control.is_down() > 0
    assert control.retry_after() == "1"
    time_module.sleep(0.25)
    assert control.is_down() == 0
    control.configure({"down": True})
    assert control.retry_after() == "60"
    assert control.state()["down"] is True
    control.configure({"reset": True})
    assert control.is_down() == 0


def test_counted_fault_runs_out_and_bad_control_is_refused() -> None:
    control = FaultInjection()
    control.configure({"fault": {"code": "x", "transient": False, "count": 2}})
    assert [control.take_fault() is not None for _ in range(3)] == [True, True, False]
    with pytest.raises(InputError):
        control.configure({"downForSecs": 1})
    with pytest.raises(InputError, match="serve"):
        control.configure({"refuseForSeconds": 1})
