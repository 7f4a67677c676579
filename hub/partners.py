"""Partners: who is connected, at which plateau, through which adapter, with which token."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hub.audit import AuditEvent
from hub.crypto import token_hash
from hub.errors import AuthenticationFailed, Conflict, NotFound
from hub.ports import JSON
from hub.protocols import PartnerRef
from hub.store.database import Tx
from hub.store.tables import partners

TOKEN_PREFIX = "kpt_"  # noqa: S105 - a visible prefix so leaked tokens are recognisable, not a secret


@dataclass(frozen=True)
class Partner:
    """A chain partner as the hub knows it."""

    id: str
    name: str
    role: str
    plateau: int = 2
    adapter: str | None = None
    adapter_config: Mapping[str, JSON] = field(default_factory=dict)
    codes: tuple[str, ...] = ()
    oin: str | None = None
    kbo: str | None = None
    active: bool = True

    @cached_property
    def ref(self) -> PartnerRef:
        """How protocols see this partner (made once: the entry is immutable, every message asks)."""
        return PartnerRef(id=self.id, role=self.role, plateau=self.plateau)


def _from_row(row: Mapping[Any, Any]) -> Partner:
    return Partner(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        plateau=int(row["plateau"]),
        adapter=row["adapter"],
        adapter_config=dict(row["adapter_config"] or {}),
        codes=tuple(row["codes"] or ()),
        oin=row["oin"],
        kbo=row["kbo"],
        active=bool(row["active"]),
    )


class PartnerDirectory:
    """An in-memory view of the partners table, reloaded when it may be stale."""

    def __init__(self) -> None:
        self._by_id: dict[str, Partner] = {}
        self._by_token: dict[str, str] = {}
        self._by_code: dict[str, str] = {}

    def load(self, conn: Connection) -> None:
        rows = conn.execute(select(partners)).mappings().all()
        by_id, by_token, by_code = {}, {}, {}
        for row in rows:
            p = _from_row(row)
            by_id[p.id] = p
            if row["token_hash"]:
                by_token[row["token_hash"]] = p.id
            for code in p.codes:
                by_code[code] = p.id
        self._by_id, self._by_token, self._by_code = by_id, by_token, by_code

    def get(self, partner_id: str) -> Partner | None:
        return self._by_id.get(partner_id)

    def put(self, partner: Partner) -> None:
        """Override one partner in memory (the CLI does this for KNOOPPUNT_MAGDA_URL)."""
        self._by_id[partner.id] = partner

    def all(self) -> list[Partner]:
        return sorted(self._by_id.values(), key=lambda p: p.id)

    def code_owner(self, code: str) -> str | None:
        return self._by_code.get(code)

    def authenticate(self, token: str) -> Partner:
        """The active partner holding this bearer token.

        Raises:
            AuthenticationFailed: unknown, or the partner is deactivated.
        """
        return self.authenticate_hash(token_hash(token))

    def authenticate_hash(self, hashed: str) -> Partner:
        """:meth:`authenticate` for a token already hashed (with :func:`hub.crypto.token_hash`)."""
        partner_id = self._by_token.get(hashed)
        partner = self._by_id.get(partner_id) if partner_id else None
        if partner is None or not partner.active:
            raise AuthenticationFailed("onbekend of ingetrokken toegangstoken")
        return partner

    def knows_token(self, token: str) -> bool:
        return self.knows_hash(token_hash(token))

    def knows_hash(self, hashed: str) -> bool:
        return hashed in self._by_token


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def add_partner(partner: Partner, *, actor: str) -> Any:
    """A unit of work: insert a partner and audit the admin change."""

    def unit(tx: Tx) -> None:
        exists = tx.conn.execute(select(partners.c.id).where(partners.c.id == partner.id)).first()
        if exists:
            raise Conflict(f"partner {partner.id} bestaat al")
        tx.conn.execute(
            insert(partners).values(
                id=partner.id,
                name=partner.name,
                role=partner.role,
                plateau=partner.plateau,
                adapter=partner.adapter,
                adapter_config=dict(partner.adapter_config),
                codes=list(partner.codes),
                oin=partner.oin,
                kbo=partner.kbo,
                token_hash=None,
                active=partner.active,
                created_at=datetime.now(UTC),
            )
        )
        tx.audit(AuditEvent("admin_changed", actor=actor, detail={"action": "partner_added", "partner": partner.id}))

    return unit


def upsert_partner(partner: Partner, *, actor: str) -> Any:
    """A unit of work: insert or update a partner's configuration (not its token)."""

    def unit(tx: Tx) -> None:
        values = {
            "name": partner.name,
            "role": partner.role,
            "plateau": partner.plateau,
            "adapter": partner.adapter,
            "adapter_config": dict(partner.adapter_config),
            "codes": list(partner.codes),
            "oin": partner.oin,
            "kbo": partner.kbo,
            "active": partner.active,
        }
        exists = tx.conn.execute(select(partners).where(partners.c.id == partner.id)).mappings().first()
        if exists is None:
            tx.conn.execute(insert(partners).values(id=partner.id, created_at=datetime.now(UTC), **values))
        elif any(exists[k] != v for k, v in values.items()):
            tx.conn.execute(update(partners).where(partners.c.id == partner.id).values(**values))
        else:
            return
        tx.audit(
            AuditEvent("admin_changed", actor=actor, detail={"action": "partner_configured", "partner": partner.id})
        )

    return unit


def issue_token(partner_id: str, token: str, *, actor: str) -> Any:
    """A unit of work: replace the partner's token (only its hash is stored)."""

    def unit(tx: Tx) -> None:
        result = tx.conn.execute(
            update(partners).where(partners.c.id == partner_id).values(token_hash=token_hash(token))
        )
        if result.rowcount == 0:
            raise NotFound(f"onbekende partner {partner_id}")
        tx.audit(AuditEvent("admin_changed", actor=actor, detail={"action": "token_issued", "partner": partner_id}))

    return unit
