"""Data protection officers: accounts with their own bearer tokens, apart from partners.

A partner token never opens the audit API, and a DPO token opens nothing else.
Every DPO query is itself audited ("consulted", actor ``dpo:<id>``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from hub.audit import AuditEvent
from hub.crypto import token_hash
from hub.errors import AuthenticationFailed, Conflict, NotAllowed, NotFound
from hub.store.database import Tx
from hub.store.tables import dpo_accounts

DPO_TOKEN_PREFIX = "kpd_"  # noqa: S105 - a visible prefix, not a secret


@dataclass(frozen=True, slots=True)
class Dpo:
    """An authenticated data protection officer."""

    id: str
    name: str
    organisation: str

    @property
    def actor(self) -> str:
        return f"dpo:{self.id}"


def new_dpo_token() -> str:
    return DPO_TOKEN_PREFIX + secrets.token_urlsafe(32)


def authenticate(engine: Engine, token: str, *, partner_known: bool) -> Dpo:
    """The DPO holding this token.

    Raises:
        NotAllowed: a valid partner token (partners have no DPO role).
        AuthenticationFailed: an unknown or revoked token.
    """
    with engine.connect() as conn:
        row = conn.execute(select(dpo_accounts).where(dpo_accounts.c.token_hash == token_hash(token))).first()
    if row is not None and row.active:
        return Dpo(row.id, row.name, row.organisation)
    if partner_known:
        raise NotAllowed(
            "dit token hoort bij een partner; de audit-API is alleen voor functionarissen voor gegevensbescherming"
        )
    raise AuthenticationFailed("onbekend of ingetrokken DPO-token")


def add_dpo_unit(dpo_id: str, name: str, organisation: str, token: str, *, actor: str) -> Any:
    def unit(tx: Tx) -> None:
        if tx.conn.execute(select(dpo_accounts.c.id).where(dpo_accounts.c.id == dpo_id)).first():
            raise Conflict(f"DPO {dpo_id} bestaat al")
        tx.conn.execute(
            insert(dpo_accounts).values(
                id=dpo_id,
                name=name,
                organisation=organisation,
                token_hash=token_hash(token),
                active=True,
                created_at=datetime.now(UTC),
            )
        )
        tx.audit(AuditEvent("admin_changed", actor=actor, detail={"action": "dpo_added", "dpo": dpo_id}))

    return unit


def disable_dpo_unit(dpo_id: str, *, actor: str) -> Any:
    def unit(tx: Tx) -> None:
        result = tx.conn.execute(update(dpo_accounts).where(dpo_accounts.c.id == dpo_id).values(active=False))
        if result.rowcount == 0:
            raise NotFound(f"onbekende DPO {dpo_id}")
        tx.audit(AuditEvent("admin_changed", actor=actor, detail={"action": "dpo_disabled", "dpo": dpo_id}))

    return unit
