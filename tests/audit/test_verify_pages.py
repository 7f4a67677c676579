from __future__ import annotations

import threading

from sqlalchemy import Engine, update

from hub.audit import verify
from hub.audit.checkpoint import CheckpointSigner, checkpoint_unit, note_body
from hub.store.database import Writer
from hub.store.tables import audit_checkpoints

from .conftest import fill


def test_checkpoints_inside_and_at_page_edges_verify(engine: Engine, writer: Writer, signer: CheckpointSigner) -> None:
    # Pages of 16 records: checkpoints at 16 (edge), 37 and 61 (inside pages).
    for upto in (16, 37, 61):
        with engine.connect() as conn:
            have = conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar_one()
        fill(writer, upto - have, start=have)
        writer.run_sync(checkpoint_unit(signer))
    fill(writer, 9, start=61)
    with engine.connect() as conn:
        for level in (0, 1, 4, 6, 10):
            result = verify(conn, public_key=signer.public_raw, page_level=level)
            assert result.ok, (level, result.summary())
            assert (result.checked, result.checkpoints_checked) == (70, 3)


def test_a_changed_record_is_named_with_small_pages(engine: Engine, writer: Writer, signer: CheckpointSigner) -> None:
    fill(writer, 70)
    writer.run_sync(checkpoint_unit(signer))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_events SET sender = 'x' WHERE seq = 33")
    with engine.connect() as conn:
        for level in (0, 2, 5, 10):
            result = verify(conn, public_key=signer.public_raw, page_level=level)
            assert (result.ok, result.first_bad_seq, result.checked) == (False, 33, 32)


def test_a_record_in_another_timestamp_spelling_still_verifies(engine: Engine, writer: Writer) -> None:
    # The fast path expects SQLAlchemy's spelling; another one takes the careful path.
    fill(writer, 10)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE audit_events SET occurred_at = replace(occurred_at, ' ', 'T') || '+00:00' WHERE seq = 4"
        )
        conn.exec_driver_sql(
            "UPDATE audit_events SET detail = ? WHERE seq = 4",
            ('{"note":"é\\u2028\\u0001","n":3,"list":[1,null,true,1.5]}',),
        )
    with engine.connect() as conn:
        result = verify(conn)
    assert result.ok, result.summary()


def test_verify_sees_one_snapshot_while_the_writer_appends(engine: Engine, writer: Writer) -> None:
    fill(writer, 200)
    stop = threading.Event()

    def keep_appending() -> None:
        i = 200
        while not stop.is_set():
            fill(writer, 10, start=i)
            i += 10

    thread = threading.Thread(target=keep_appending)
    thread.start()
    try:
        for _ in range(5):
            with engine.connect() as conn:
                result = verify(conn, page_level=4)
            assert result.ok, result.summary()
    finally:
        stop.set()
        thread.join()


def test_the_writer_stores_detail_as_canonical_json_on_sqlite(engine: Engine, writer: Writer) -> None:
    fill(writer, 1)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT detail FROM audit_events WHERE seq = 1").scalar_one()
    assert stored == '{"list":[1,null,true,1.5],"n":0,"note":"é\u2028\\u0001"}'


def test_a_signed_checkpoint_with_another_chain_head_is_reported(
    engine: Engine, writer: Writer, signer: CheckpointSigner
) -> None:
    fill(writer, 40)
    cp = writer.run_sync(checkpoint_unit(signer))
    note = signer.sign_note(note_body(cp.origin, cp.size, cp.root, "ab" * 32, cp.timestamp))
    with engine.begin() as conn:
        conn.execute(update(audit_checkpoints).values(note=note))
    with engine.connect() as conn:
        result = verify(conn, public_key=signer.public_raw)
    assert (result.ok, result.first_bad_seq) == (False, 40)
    assert "another hash" in result.reason
