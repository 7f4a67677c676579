"""reference directory: persons, identifier history, subscriptions

Revision ID: 0004_directory
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_directory"
down_revision: str | None = "0003_portal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "directory_persons",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_persons")),
    )
    op.create_table(
        "directory_identifiers",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("id_type", sa.String(length=4), nullable=False),
        sa.Column("data_key_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replaced_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_key_id"], ["data_keys.id"], name=op.f("fk_directory_identifiers_data_key_id_data_keys")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["directory_persons.id"], name=op.f("fk_directory_identifiers_person_id_directory_persons")
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_directory_identifiers")),
    )
    with op.batch_alter_table("directory_identifiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_directory_identifiers_person_id"), ["person_id"], unique=False)
    op.create_table(
        "directory_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("capacity", sa.String(length=64), nullable=False),
        sa.Column("protocol_id", sa.String(length=96), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["directory_persons.id"],
            name=op.f("fk_directory_subscriptions_person_id_directory_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_subscriptions")),
    )
    with op.batch_alter_table("directory_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_subscriptions_follow",
            ["person_id", "partner_id", "capacity", "valid_from", "valid_until"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_directory_subscriptions_partner_id"), ["partner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("directory_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_subscriptions_partner_id"))
        batch_op.drop_index("ix_directory_subscriptions_follow")
    op.drop_table("directory_subscriptions")
    with op.batch_alter_table("directory_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_identifiers_person_id"))
    op.drop_table("directory_identifiers")
    op.drop_table("directory_persons")
