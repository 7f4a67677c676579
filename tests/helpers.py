"""Small helpers for tests: counting rows, reading the audit log, building XML messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, func, select

from hub.envelope import to_xml
from hub.settings import Settings
from hub.store.tables import audit_events, messages


def count_messages(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())
    finally:
        engine.dispose()


def audit_rows(settings: Settings, event: str | None = None) -> list[dict[str, Any]]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            query = select(audit_events).order_by(audit_events.c.seq)
            if event:
                query = query.where(audit_events.c.event == event)
            return [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()


def xml_message(doc: dict[str, Any], infomodel: Any) -> bytes:
    """The XML form of a JSON demo message, converted through the info model."""
    from hub import envelope as env

    envelope, payload = env.from_json(doc)
    mtype = infomodel.get(envelope.type, envelope.version)
    return to_xml(envelope, infomodel.json_to_xml(mtype, payload))
