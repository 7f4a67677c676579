"""Master-key rotation: rewrap every data key under the active master key.

Rotation, step by step (docs/security.md):

1. ``knooppunt keys generate`` prints a new 32-byte key;
2. configure it as ``KNOOPPUNT_PAYLOAD_KEY`` and move the previous key into
   ``KNOOPPUNT_PAYLOAD_OLD_KEYS``; restart: new data keys are wrapped by the
   new master key, old ones still unwrap with the old key (no downtime);
3. ``knooppunt keys rotate`` rewraps the remaining data keys under the new
   master key (payloads themselves are not re-encrypted: only the 32-byte
   data keys are), and audits the change;
4. drop the old key from ``KNOOPPUNT_PAYLOAD_OLD_KEYS``.

Crypto-shredded data keys (``wrapped_key`` NULL) stay shredded.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, select, update

from hub.audit import AuditEvent
from hub.crypto import MasterKeys
from hub.store.database import Tx
from hub.store.tables import data_keys


def new_master_key() -> str:
    """A fresh payload or audit key: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True, slots=True)
class Rotation:
    rewrapped: int
    already_current: int
    shredded: int


def rewrap_unit(master: MasterKeys, *, actor: str) -> Callable[[Tx], Rotation]:
    """A unit of work: rewrap every live data key that an older master key wrapped.

    Raises:
        ConfigurationError: a data key's master key is not configured (it stays as it was).
    """

    def unit(tx: Tx) -> Rotation:
        rows = tx.conn.execute(select(data_keys)).mappings().all()
        rewrapped = current = shredded = 0
        for row in rows:
            if row["wrapped_key"] is None:
                shredded += 1
                continue
            if row["master_kid"] == master.active_kid:
                current += 1
                continue
            context = f"{row['protocol_id']}|{row['period']}"
            key = master.unwrap(row["master_kid"], row["wrapped_key"], context)
            tx.conn.execute(
                update(data_keys)
                .where(and_(data_keys.c.id == row["id"], data_keys.c.master_kid == row["master_kid"]))
                .values(master_kid=master.active_kid, wrapped_key=master.wrap(key, context))
            )
            rewrapped += 1
        tx.audit(
            AuditEvent(
                "admin_changed",
                actor=actor,
                detail={"action": "keys_rotated", "masterKeyId": master.active_kid, "rewrapped": rewrapped},
            )
        )
        return Rotation(rewrapped, current, shredded)

    return unit


def master_key_usage(conn: object) -> dict[str, int]:
    """How many live data keys each master key id wraps."""
    from sqlalchemy import Connection, func

    if not isinstance(conn, Connection):
        raise TypeError("a SQLAlchemy connection is needed")
    query = (
        select(data_keys.c.master_kid, func.count())
        .where(data_keys.c.wrapped_key.is_not(None))
        .group_by(data_keys.c.master_kid)
    )
    return {str(kid): int(n) for kid, n in conn.execute(query)}
