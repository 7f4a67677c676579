"""The hub's tables (SQLAlchemy Core). Alembic migrations mirror this metadata;
``tests/test_migrations.py`` fails when they drift apart."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = DateTime(timezone=True)

partners = Table(
    "partners",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(64), nullable=False),
    Column("plateau", Integer, nullable=False, default=2),
    Column("adapter", String(200), nullable=True),
    Column("adapter_config", JSON, nullable=False, default=dict),
    Column("codes", JSON, nullable=False, default=list),
    Column("oin", String(20), nullable=True),
    Column("kbo", String(10), nullable=True),
    Column("token_hash", String(64), nullable=True, unique=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
)

data_keys = Table(
    "data_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("protocol_id", String(96), nullable=False),
    Column("period", String(7), nullable=False),
    Column("master_kid", String(16), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("destroyed_at", TS, nullable=True),
    UniqueConstraint("protocol_id", "period"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("version", String(8), nullable=False),
    Column("sender", String(64), nullable=False),
    Column("receivers", JSON, nullable=False),
    Column("subject_type", String(4), nullable=True),
    Column("subject_hash", String(64), nullable=True),
    Column("protocol_id", String(96), nullable=False),
    Column("conversation_id", String(36), nullable=True),
    Column("traceparent", String(55), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("data_key_id", Integer, ForeignKey("data_keys.id"), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=True),
    Column("payload_size", Integer, nullable=False),
    Index(None, "sender", "received_at"),
    Index(None, "subject_hash"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(36), ForeignKey("messages.id"), nullable=False),
    Column("receiver", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", TS, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", TS, nullable=True),
    Column("updated_at", TS, nullable=False),
    # scale mode: a worker claims a delivery before calling the partner (status in_flight)
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", TS, nullable=True),
    UniqueConstraint("message_id", "receiver"),
    Index(None, "receiver", "status"),
    Index(None, "status", "next_attempt_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False),
    Column("receiver", String(64), nullable=False),
    Column("available_at", TS, nullable=False),
    Column("published_at", TS, nullable=True),
    UniqueConstraint("message_id", "receiver"),
    Index(None, "published_at", "available_at"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("event", String(32), nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("status", String(16), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16), nullable=True),
    Column("message_id", String(36), nullable=True),
    Column("message_type", String(64), nullable=True),
    Column("sender", String(64), nullable=True),
    Column("receiver", String(64), nullable=True),
    Column("actor", String(128), nullable=True),
    Column("protocol_id", String(96), nullable=True),
    Column("subject_type", String(4), nullable=True),
    Column("subject_hash", String(64), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "subject_hash", "occurred_at"),
    Index(None, "message_id"),
    Index(None, "occurred_at"),
    # DPO searches by partner, newest first (migration 0002).
    Index(None, "sender", "seq"),
    Index(None, "receiver", "seq"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("hash", String(64), nullable=False),
)


# -- reference directory (hub/directory.py) ------------------------------------
# A person is a row; identifiers (INSZ, bis number, BSN) point at it by their
# keyed hash, so a replaced or cancelled number keeps the person's follow-ups
# and history together. Identifier values are stored only encrypted.

directory_persons = Table(
    "directory_persons",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", TS, nullable=False),
)

directory_identifiers = Table(
    "directory_identifiers",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("person_id", Integer, ForeignKey("directory_persons.id"), nullable=False),
    Column("id_type", String(4), nullable=False),
    Column("data_key_id", Integer, ForeignKey("data_keys.id"), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("replaced_by", String(64), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("changed_at", TS, nullable=True),
    Index(None, "person_id"),
)

directory_subscriptions = Table(
    "directory_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person_id", Integer, ForeignKey("directory_persons.id"), nullable=False),
    Column("partner_id", String(64), nullable=False),
    Column("capacity", String(64), nullable=False),
    Column("protocol_id", String(96), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("ended_at", TS, nullable=True),
    Column("end_reason", String(64), nullable=True),
    # covering for the routing lookup (person -> partner, capacity, period): no table reads
    Index("ix_directory_subscriptions_follow", "person_id", "partner_id", "capacity", "valid_from", "valid_until"),
    Index(None, "partner_id"),
)
# -- the upload portal (plateau 1): organisations are partners, with users ------------

portal_organisations = Table(
    "portal_organisations",
    metadata,
    Column("partner_id", String(64), ForeignKey("partners.id"), primary_key=True),
    Column("require_totp", Boolean, nullable=False, default=False),
    Column("notify_email", String(254), nullable=True),
    Column("updated_at", TS, nullable=False),
)

portal_users = Table(
    "portal_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    Column("username", String(254), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("totp_secret", String(160), nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", TS, nullable=True),
    Column("last_login_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Index(None, "partner_id"),
)

portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("portal_users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("second_factor_done", Boolean, nullable=False, default=False),
    Column("created_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index(None, "user_id"),
)

portal_uploads = Table(
    "portal_uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partners.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("portal_users.id"), nullable=False),
    Column("filename", String(200), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("message_type", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("rows_total", Integer, nullable=False, default=0),
    Column("rows_sent", Integer, nullable=False, default=0),
    Column("rows_duplicate", Integer, nullable=False, default=0),
    Column("rows_failed", Integer, nullable=False, default=0),
    Column("report", JSON, nullable=False, default=list),
    Column("created_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Index(None, "partner_id", "created_at"),
)

portal_handled = Table(
    "portal_handled",
    metadata,
    Column("delivery_id", Integer, ForeignKey("deliveries.id"), primary_key=True),
    Column("user_id", Integer, ForeignKey("portal_users.id"), nullable=False),
    Column("handled_at", TS, nullable=False),
)

audit_tree = Table(
    "audit_tree",
    metadata,
    # Completed perfect subtrees of the Merkle tree over audit_events, from
    # level 8 (256 records) up: a cache that makes tree heads and proofs
    # O(log n) reads. Never trusted by verify, which recomputes from records.
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(200), nullable=False),
    Column("tree_size", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("key_id", String(8), nullable=False),
    Column("note", Text, nullable=False),
    Index(None, "tree_size"),
)

# -- data protection officers: separate credentials for the audit API -------------------

dpo_accounts = Table(
    "dpo_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("organisation", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
)

# -- request budgets shared by every API process (scale mode, PostgreSQL) ---------------

# One token bucket per partner (hub/store/buckets.py): UNLOGGED on PostgreSQL (a crash may
# refill the buckets, no fsync per request); unused on SQLite, where the buckets are in memory.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),  # the database's clock, seconds since the epoch
    Column("granted", Float, nullable=False),  # tokens the last take got (RETURNING sees only the new row)
)
