"""The follower reads of the reference directory: the person-bound messages of one turn of the
server's loop learn who follows their person from one statement (hub.directory.FollowerReads)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest

from hub.directory import FOLLOWERS_CHUNK, Directory
from hub.partners import Partner, upsert_partner
from hub.service import Accepted, Hub
from tests.conftest import make_settings
from tests.directory.conftest import insz, trajectmelding

GENT = Partner(id="stad-gent-t", name="Stad Gent", role="lokaal-bestuur", plateau=1)
AGII = Partner(id="agii-t", name="AgII", role="agentschap", plateau=1)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(make_settings(tmp_path))
    hub.open_store()
    for partner in (GENT, AGII):
        hub.writer.run_sync(upsert_partner(partner, actor="test"))
    hub.reload_partners()
    try:
        yield hub
    finally:
        hub.close_store()


def follow(hub: Hub, partner: Partner, number: str, capacity: str) -> str:
    """Let ``partner`` follow the person with INSZ ``number``; -> the person's identifier hash."""
    asyncio.run(hub.directory.register(partner, subject_type="INSZ", subject_id=number, capacity=capacity))
    return hub.hasher("INSZ", number)


def one_by_one(directory: Directory, id_hash: str, at: date) -> list[tuple[str, str]]:
    """The single-person read the batched one must agree with."""
    with directory.engine.connect() as conn:
        return sorted(directory.followers(conn, id_hash, at))


def test_the_reads_of_one_turn_are_one_statement_each_caller_with_its_own_followers(hub: Hub) -> None:
    gent = follow(hub, GENT, insz(), "woongemeente")
    number = insz()
    gent_and_agii = follow(hub, GENT, number, "woongemeente")
    follow(hub, AGII, number, "trajectbegeleiding")
    agii = follow(hub, AGII, insz(), "trajectbegeleiding")
    nobody = hub.hasher("INSZ", insz())
    reads = hub.directory.follower_reads
    today = date.today()

    async def turn() -> list[list[tuple[str, str]]]:
        before = reads.statements
        answers = await asyncio.gather(
            *(reads.get(h, today) for h in (gent, gent_and_agii, agii, nobody, gent))  # one person asked twice
        )
        assert reads.statements == before + 1
        return answers

    answers = asyncio.run(turn())
    assert answers[0] == [(GENT.id, "woongemeente")]
    assert sorted(answers[1]) == [(AGII.id, "trajectbegeleiding"), (GENT.id, "woongemeente")]
    assert answers[2] == [(AGII.id, "trajectbegeleiding")]
    assert answers[3] == []
    assert answers[4] == answers[0]
    assert answers[4] is not answers[0]  # each caller its own list
    for h, answer in zip((gent, gent_and_agii, agii, nobody), answers, strict=False):
        assert sorted(answer) == one_by_one(hub.directory, h, today)


def test_more_persons_than_a_chunk_are_read_in_chunks_and_none_is_mixed_up(hub: Hub) -> None:
    followed = [follow(hub, GENT, insz(), "woongemeente") for _ in range(3)]
    strangers = [hub.hasher("INSZ", insz()) for _ in range(FOLLOWERS_CHUNK + 5)]
    asked = strangers[:20] + followed + strangers[20:]
    reads = hub.directory.follower_reads

    async def turn() -> list[list[tuple[str, str]]]:
        before = reads.statements
        answers = await asyncio.gather(*(reads.get(h, date.today()) for h in asked))
        assert reads.statements == before + 2  # 40 persons: a chunk of 32 and one of 8
        return answers

    by_hash = dict(zip(asked, asyncio.run(turn()), strict=True))
    assert all(by_hash[h] == [(GENT.id, "woongemeente")] for h in followed)
    assert all(by_hash[h] == [] for h in strangers)


def test_a_caller_that_gives_up_does_not_take_the_answer_from_the_others(hub: Hub) -> None:
    person = follow(hub, GENT, insz(), "woongemeente")
    reads = hub.directory.follower_reads

    async def turn() -> list[tuple[str, str]]:
        quitter = asyncio.ensure_future(reads.get(person, date.today()))
        stayer = asyncio.ensure_future(reads.get(person, date.today()))
        await asyncio.sleep(0)  # both have asked; the read is scheduled for the end of this turn
        quitter.cancel()
        answer = await stayer
        assert quitter.cancelled()
        return answer

    assert asyncio.run(turn()) == [(GENT.id, "woongemeente")]


def test_a_failed_read_fails_every_caller_of_its_turn_and_the_next_turn_reads_again(hub: Hub) -> None:
    person = follow(hub, GENT, insz(), "woongemeente")
    reads = hub.directory.follower_reads

    async def turn() -> list[BaseException | list[tuple[str, str]]]:
        return await asyncio.gather(
            reads.get(person, date.today()), reads.get(hub.hasher("INSZ", insz()), date.today()), return_exceptions=True
        )

    with hub.engine.begin() as conn:  # the database loses the table under the running hub
        conn.exec_driver_sql("ALTER TABLE directory_subscriptions RENAME TO directory_subscriptions_away")
    failed = asyncio.run(turn())
    assert all(isinstance(r, sqlite3.OperationalError) and "directory_subscriptions" in str(r) for r in failed), failed
    with hub.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE directory_subscriptions_away RENAME TO directory_subscriptions")
    assert asyncio.run(turn()) == [[(GENT.id, "woongemeente")], []]


def test_person_bound_messages_accepted_together_share_one_read_and_each_reaches_its_followers(hub: Hub) -> None:
    followed = [insz() for _ in range(3)]
    for number in followed:
        follow(hub, GENT, number, "woongemeente")
    docs = [trajectmelding(number) for number in [*followed, insz(), insz()]]
    reads = hub.directory.follower_reads
    sender = hub.partners.get(AGII.id)
    assert sender is not None

    async def together() -> list[Accepted]:
        before = reads.statements
        accepted = await asyncio.gather(
            *(hub.accept(sender, hub.parse_json(orjson.dumps(doc)), channel="rest") for doc in docs)
        )
        assert reads.statements == before + 1
        return accepted

    accepted = asyncio.run(together())
    assert [a.receivers for a in accepted] == [(GENT.id,)] * 3 + [()] * 2
    assert [a.forwarding.reason is None for a in accepted if a.forwarding] == [True] * 3 + [False] * 2
