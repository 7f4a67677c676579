"""Portal accounts: organisations (partners on plateau 1) with users, logins and sessions.

No web framework here: the CLI (``knooppunt users``) and the portal's routes
both use these units of work. Passwords are hashed with argon2id; a second
factor (TOTP, RFC 6238) is required when the organisation asks for it or the
user has one. Every login, failed login and lockout is audited as
``admin_changed`` with ``detail.action`` naming what happened.

TOTP secrets are stored wrapped by the payload master key (AES-GCM, bound to
the username), as ``<key id>:<base64>``, so a copy of the database alone does
not yield them.

Argon2 is slow on purpose, so it is never run inside the single writer: the
password is checked first (in a thread), then a small unit records the outcome.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, and_, delete, insert, select, update

from hub.audit import AuditEvent
from hub.crypto import MasterKeys
from hub.errors import Conflict, NotFound
from hub.store.database import Tx
from hub.store.tables import partners, portal_organisations, portal_sessions, portal_users

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=8)
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()
# verified when the username is unknown, so both paths cost the same time
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_ok(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _totp_context(username: str) -> str:
    return f"portal-totp|{username}"


def wrap_totp(master: MasterKeys, username: str, secret: str) -> str:
    wrapped = master.wrap(secret.encode(), _totp_context(username))
    return f"{master.active_kid}:{base64.b64encode(wrapped).decode()}"


def unwrap_totp(master: MasterKeys, username: str, stored: str) -> str:
    """The TOTP secret of a user.

    Raises:
        ConfigurationError: the master key that wrapped it is not configured.
    """
    kid, _, blob = stored.partition(":")
    return master.unwrap(kid, base64.b64decode(blob), _totp_context(username)).decode()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    """A portal user as a request sees it."""

    id: int
    partner_id: str
    username: str
    display_name: str
    active: bool
    totp_secret: str | None
    failed_logins: int
    locked_until: datetime | None
    password_hash: str

    @property
    def actor(self) -> str:
        return f"portal:{self.partner_id}:{self.username}"


@dataclass(frozen=True)
class Session:
    """A logged-in (or half logged-in, awaiting the second factor) session."""

    id_hash: str
    user: User
    csrf_token: str
    second_factor_done: bool
    expires_at: datetime
    last_seen_at: datetime


def _user(row: Any) -> User:
    return User(
        id=int(row["id"]),
        partner_id=row["partner_id"],
        username=row["username"],
        display_name=row["display_name"],
        active=bool(row["active"]),
        totp_secret=row["totp_secret"],
        failed_logins=int(row["failed_logins"]),
        locked_until=_utc(row["locked_until"]),
        password_hash=row["password_hash"],
    )


def find_user(engine: Engine, username: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(portal_users).where(portal_users.c.username == username.strip().lower())).mappings()
        found = row.first()
    return _user(found) if found else None


def requires_totp(engine: Engine, partner_id: str) -> bool:
    with engine.connect() as conn:
        value = conn.execute(
            select(portal_organisations.c.require_totp).where(portal_organisations.c.partner_id == partner_id)
        ).scalar()
    return bool(value)


def _admin(action: str, actor: str, status: str = "ok", **detail: Any) -> AuditEvent:
    return AuditEvent("admin_changed", status=status, actor=actor, detail={"action": action, **detail})


# -- administration (CLI) ---------------------------------------------------------------


def add_user(
    partner_id: str,
    username: str,
    display_name: str,
    password: str,
    *,
    totp: bool,
    actor: str,
    master: MasterKeys,
) -> Any:
    """A unit of work: add a user to an organisation; returns the TOTP secret (or None)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Conflict(f"een wachtwoord heeft minstens {MIN_PASSWORD_LENGTH} tekens")
    name = username.strip().lower()
    password_hash = hash_password(password)
    secret = pyotp.random_base32() if totp else None
    stored_secret = wrap_totp(master, name, secret) if secret else None

    def unit(tx: Tx) -> str | None:
        if tx.conn.execute(select(partners.c.id).where(partners.c.id == partner_id)).first() is None:
            raise NotFound(f"onbekende partner {partner_id}")
        if tx.conn.execute(select(portal_users.c.id).where(portal_users.c.username == name)).first():
            raise Conflict(f"gebruiker {name} bestaat al")
        tx.conn.execute(
            insert(portal_users).values(
                partner_id=partner_id,
                username=name,
                display_name=display_name,
                password_hash=password_hash,
                totp_secret=stored_secret,
                active=True,
                failed_logins=0,
                created_at=tx.now,
            )
        )
        tx.audit(_admin("portal_user_added", actor, partner=partner_id, user=name, totp=secret is not None))
        return secret

    return unit


def disable_user(username: str, *, actor: str) -> Any:
    """A unit of work: disable a user and end its sessions."""
    name = username.strip().lower()

    def unit(tx: Tx) -> None:
        row = tx.conn.execute(
            select(portal_users.c.id, portal_users.c.partner_id).where(portal_users.c.username == name)
        )
        found = row.first()
        if found is None:
            raise NotFound(f"onbekende gebruiker {name}")
        tx.conn.execute(update(portal_users).where(portal_users.c.id == found.id).values(active=False))
        tx.conn.execute(delete(portal_sessions).where(portal_sessions.c.user_id == found.id))
        tx.audit(_admin("portal_user_disabled", actor, partner=found.partner_id, user=name))

    return unit


def _upsert_organisation(tx: Tx, partner_id: str, **values: Any) -> None:
    if tx.conn.execute(select(partners.c.id).where(partners.c.id == partner_id)).first() is None:
        raise NotFound(f"onbekende partner {partner_id}")
    exists = tx.conn.execute(
        select(portal_organisations.c.partner_id).where(portal_organisations.c.partner_id == partner_id)
    ).first()
    if exists:
        tx.conn.execute(
            update(portal_organisations)
            .where(portal_organisations.c.partner_id == partner_id)
            .values(updated_at=tx.now, **values)
        )
    else:
        tx.conn.execute(
            insert(portal_organisations).values(
                partner_id=partner_id, updated_at=tx.now, **{"require_totp": False, **values}
            )
        )


def set_require_totp(partner_id: str, required: bool, *, actor: str) -> Any:
    """A unit of work: an organisation requires (or no longer requires) a second factor."""

    def unit(tx: Tx) -> None:
        _upsert_organisation(tx, partner_id, require_totp=required)
        tx.audit(_admin("portal_totp_required", actor, partner=partner_id, required=required))

    return unit


def set_notify_email(partner_id: str, address: str | None, *, actor: str) -> Any:
    """A unit of work: where the organisation is told that new messages wait (None: not at all)."""

    def unit(tx: Tx) -> None:
        _upsert_organisation(tx, partner_id, notify_email=address)
        tx.audit(_admin("portal_notify_set", actor, partner=partner_id, enabled=address is not None))

    return unit


# -- logging in ---------------------------------------------------------------------------


def failed_login(username: str, user: User | None, *, reason: str) -> Any:
    """A unit of work: count a failure, lock the account at the limit, audit both."""

    def unit(tx: Tx) -> bool:
        if user is None:
            # no username in the log: a mistyped one may be anything, even a person's name
            tx.audit(_admin("portal_login_failed", "portal:onbekend", status="refused", reason="unknown_user"))
            return False
        row = tx.conn.execute(select(portal_users.c.failed_logins).where(portal_users.c.id == user.id)).first()
        failures = (int(row.failed_logins) if row else 0) + 1
        locked = failures >= MAX_FAILURES
        values: dict[str, Any] = {"failed_logins": 0 if locked else failures}
        if locked:
            values["locked_until"] = tx.now + LOCKOUT
        tx.conn.execute(update(portal_users).where(portal_users.c.id == user.id).values(**values))
        tx.audit(_admin("portal_login_failed", user.actor, status="refused", reason=reason, failures=failures))
        if locked:
            tx.audit(
                _admin("portal_locked_out", user.actor, status="refused", minutes=int(LOCKOUT.total_seconds() // 60))
            )
        return locked

    return unit


def start_session(user: User, *, second_factor_done: bool, lifetime: timedelta = SESSION_LIFETIME) -> tuple[str, Any]:
    """A fresh session token and the unit that stores it (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)

    def unit(tx: Tx) -> Session:
        tx.conn.execute(
            insert(portal_sessions).values(
                id_hash=token_digest(token),
                user_id=user.id,
                csrf_token=csrf,
                second_factor_done=second_factor_done,
                created_at=tx.now,
                last_seen_at=tx.now,
                expires_at=tx.now + lifetime,
            )
        )
        # expired sessions of anyone are cleared on the way
        tx.conn.execute(delete(portal_sessions).where(portal_sessions.c.expires_at < tx.now))
        if second_factor_done:
            _logged_in(tx, user)
        else:
            tx.audit(_admin("portal_password_ok", user.actor, step="second_factor_pending"))
        return Session(token_digest(token), user, csrf, second_factor_done, tx.now + lifetime, tx.now)

    return token, unit


def _logged_in(tx: Tx, user: User) -> None:
    tx.conn.execute(
        update(portal_users).where(portal_users.c.id == user.id).values(failed_logins=0, last_login_at=tx.now)
    )
    tx.audit(_admin("portal_login", user.actor))


def complete_second_factor(session: Session, step: int) -> Any:
    """A unit of work: the TOTP code of ``step`` was right; log in unless that code was used before.

    Returns False for a replayed code (each code logs in once).
    """

    def unit(tx: Tx) -> bool:
        last = tx.conn.execute(
            select(portal_users.c.totp_last_step).where(portal_users.c.id == session.user.id)
        ).scalar()
        if last is not None and step <= int(last):
            return False
        tx.conn.execute(update(portal_users).where(portal_users.c.id == session.user.id).values(totp_last_step=step))
        tx.conn.execute(
            update(portal_sessions)
            .where(portal_sessions.c.id_hash == session.id_hash)
            .values(second_factor_done=True, csrf_token=secrets.token_urlsafe(32))
        )
        _logged_in(tx, session.user)
        return True

    return unit


def end_session(session: Session) -> Any:
    def unit(tx: Tx) -> None:
        tx.conn.execute(delete(portal_sessions).where(portal_sessions.c.id_hash == session.id_hash))
        tx.audit(_admin("portal_logout", session.user.actor))

    return unit


def load_session(engine: Engine, token: str, *, idle: timedelta = timedelta(minutes=30)) -> Session | None:
    """The live session for a cookie value, or None (unknown, expired, idle too long, user disabled)."""
    if not token or len(token) > 100:
        return None
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(
                    portal_sessions.c.id_hash,
                    portal_sessions.c.csrf_token,
                    portal_sessions.c.second_factor_done,
                    portal_sessions.c.expires_at,
                    portal_sessions.c.last_seen_at,
                    portal_users,
                )
                .join(portal_users, portal_users.c.id == portal_sessions.c.user_id)
                .where(and_(portal_sessions.c.id_hash == token_digest(token), portal_users.c.active.is_(True)))
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    now = datetime.now(UTC)
    expires, seen = _utc(row["expires_at"]), _utc(row["last_seen_at"])
    if expires is None or seen is None or expires <= now or now - seen > idle:
        return None
    return Session(row["id_hash"], _user(row), row["csrf_token"], bool(row["second_factor_done"]), expires, seen)


def touch_session(session: Session) -> Any:
    """A unit of work: the session was used now (for the idle timeout)."""

    def unit(tx: Tx) -> None:
        tx.conn.execute(
            update(portal_sessions).where(portal_sessions.c.id_hash == session.id_hash).values(last_seen_at=tx.now)
        )

    return unit


def totp_step(secret: str, code: str, now: datetime | None = None) -> int | None:
    """The 30-second step whose code this is (one step of clock drift allowed), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    moment = now or datetime.now(UTC)
    current = totp.timecode(moment)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def locked(user: User, now: datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or datetime.now(UTC))
