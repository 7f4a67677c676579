from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from hub.audit.search import (
    AuditQuery,
    csv_safe,
    dpo_query_event,
    iter_search,
    search,
    subject_hash_of,
    subject_report,
    subject_report_html,
    to_csv,
    to_json,
)
from hub.errors import InputError
from hub.store.database import Writer

from .conftest import HASHER, INSZ_A, INSZ_B, T0, fill, sample_event

N = 90


@pytest.fixture
def filled(writer: Writer) -> None:
    fill(writer, N)


def expected(pred) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted((i + 1 for i in range(N) if pred(sample_event(i), i)), reverse=True)


def all_pages(engine: Engine, query: AuditQuery, limit: int = 7) -> list[int]:
    seqs: list[int] = []
    cursor = None
    with engine.connect() as conn:
        while True:
            page = search(conn, query, limit=limit, cursor=cursor)
            seqs += [r.seq for r in page.records]
            if page.next_cursor is None:
                return seqs
            cursor = page.next_cursor


def test_search_by_subject_finds_every_record_about_that_person_and_no_other(filled: None, engine: Engine) -> None:
    h = HASHER("INSZ", INSZ_A)
    assert all_pages(engine, AuditQuery(subject_hash=h)) == expected(lambda e, i: e.subject_hash == h)
    assert len(all_pages(engine, AuditQuery(subject_hash=HASHER("INSZ", INSZ_B)))) == N - N // 3
    assert all_pages(engine, AuditQuery(subject_hash=HASHER("BSN", INSZ_A))) == []


def test_search_by_partner_matches_sender_or_receiver_once(filled: None, engine: Engine) -> None:
    want = expected(lambda e, i: "duo" in (e.sender, e.receiver))
    assert all_pages(engine, AuditQuery(partner="duo")) == want
    assert all_pages(engine, AuditQuery(partner="duo"), limit=1000) == want
    assert all_pages(engine, AuditQuery(sender="duo")) == expected(lambda e, i: e.sender == "duo")


def test_filters_combine(filled: None, engine: Engine) -> None:
    q = AuditQuery(
        protocol_id="nl-pip",
        message_type="pip",
        events=("received", "failed", "delivered"),
        since=T0 + timedelta(hours=10),
        until=T0 + timedelta(hours=70),
    )
    want = expected(lambda e, i: e.protocol_id == "nl-pip" and e.event in q.events and 10 <= i < 70)
    assert want
    assert all_pages(engine, q) == want
    assert all_pages(engine, AuditQuery(status="failed")) == expected(lambda e, i: e.status == "failed")


def test_oldest_first_and_bad_cursors(filled: None, engine: Engine) -> None:
    with engine.connect() as conn:
        page = search(conn, AuditQuery(), limit=10, newest_first=False)
        assert [r.seq for r in page.records] == list(range(1, 11))
        nxt = search(conn, AuditQuery(), limit=10, cursor=page.next_cursor, newest_first=False)
        assert nxt.records[0].seq == 11
        with pytest.raises(InputError, match="cursor"):
            search(conn, AuditQuery(), cursor=page.next_cursor)  # other direction
        with pytest.raises(InputError, match="cursor"):
            search(conn, AuditQuery(), cursor="nonsense!")
        with pytest.raises(InputError, match="unknown audit events"):
            search(conn, AuditQuery(events=("deleted",)))
        with pytest.raises(InputError, match="limit"):
            search(conn, AuditQuery(), limit=0)
        assert len(list(iter_search(conn, AuditQuery(), page_size=13))) == N


def test_the_twelve_month_report_covers_one_person_and_one_year(writer: Writer, engine: Engine) -> None:
    fill(writer, 40, step=timedelta(days=20))  # 40 events over ~26 months
    now = T0 + timedelta(days=20 * 40)
    h = HASHER("INSZ", INSZ_A)
    with engine.connect() as conn:
        report = subject_report(
            conn,
            h,
            now=now,
            categories={"inburgeringsplicht": "Inburgeringsplicht"},
            purposes={"nl-inburgeringsplicht": "Vaststellen van de plicht"},
        )
    want = [
        i + 1
        for i in range(40)
        if sample_event(i).subject_hash == h
        and sample_event(i).event in ("received", "delivered", "consulted", "replayed")
        and now - timedelta(days=366) <= T0 + timedelta(days=20 * i) < now
    ]
    assert sorted(e.seq for e in report.entries) == want
    assert all(e.category == "Inburgeringsplicht" and e.purpose == "Vaststellen van de plicht" for e in report.entries)
    doc = report.as_json()
    assert doc["count"] == len(want)
    assert INSZ_A not in json.dumps(doc)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+31", "'+31"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("  =cmd", "'  =cmd"),
        ("\n=1", "'\n=1"),
        ("\uff1d1", "'\uff1d1"),
        ("gemeente-gent", "gemeente-gent"),
        ("a=b", "a=b"),
        (None, ""),
        (-5, "-5"),
        ("", ""),
    ],
)
def test_csv_cells_never_start_a_formula(value: object, cell: str) -> None:
    assert csv_safe(value) == cell


def test_csv_and_json_exports(filled: None, engine: Engine) -> None:
    with engine.connect() as conn:
        records = search(conn, AuditQuery(), limit=20, newest_first=False).records
    text = to_csv(records)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["seq", "event", "occurredAt"]
    assert len(rows) == 21
    actor_col = rows[0].index("actor")
    assert rows[8][actor_col] == "'=cmd|' /C calc'!A0"  # record 8 = sample 7
    doc = json.loads(to_json(records, query=AuditQuery(partner="duo")))
    assert doc["count"] == 20
    assert doc["query"] == {"partner": "duo"}
    assert doc["records"][7]["actor"] == "=cmd|' /C calc'!A0"


def test_a_dpo_query_is_audited_and_shows_in_the_persons_report(writer: Writer, engine: Engine) -> None:
    h = HASHER("INSZ", INSZ_A)
    q = AuditQuery(subject_hash=h, protocol_id="nl-pip")
    event = dpo_query_event("dpo:anna", "search", query=q, subject_type="INSZ", results=3)
    assert event.subject_hash == h
    assert event.detail == {"dpoQuery": "search", "filters": {"protocolId": "nl-pip"}, "results": 3}
    writer.run_sync(lambda tx: tx.audit(event))
    with engine.connect() as conn:
        report = subject_report(conn, h)
    assert [(e.event, e.actor) for e in report.entries] == [("consulted", "dpo:anna")]


def test_the_report_prints_as_escaped_html(writer: Writer, engine: Engine) -> None:
    h = HASHER("INSZ", INSZ_A)
    event = dpo_query_event("<script>alert(1)</script>", "report", subject_type="INSZ", subject_hash=h)
    writer.run_sync(lambda tx: tx.audit(event))
    with engine.connect() as conn:
        page = subject_report_html(subject_report(conn, h, purposes={"": "Controle"}))
    assert page.startswith("<!doctype html>")
    assert "&lt;script&gt;" in page
    assert "<script>" not in page
    assert "raadpleegde" in page


def test_a_dpo_search_hashes_the_number_as_the_hub_writes_it() -> None:
    assert subject_hash_of(HASHER, "insz", " 85073003328 ") == HASHER("INSZ", "85073003328")
