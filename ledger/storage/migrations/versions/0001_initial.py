"""Initial ledger schema: entries, Merkle nodes, registry, checkpoints, head, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# INTEGER PRIMARY KEY is SQLite's rowid alias; PostgreSQL keeps BIGINT.
_INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("idx", _INDEX, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.LargeBinary(32), nullable=False),
        sa.Column("accepted_ms", sa.BigInteger(), nullable=False),
        sa.Column("prev", sa.LargeBinary(32), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_entries_idx_non_negative")),
        sa.CheckConstraint("length(event_id) = 32", name=op.f("ck_entries_event_id_length")),
        sa.CheckConstraint("length(prev) = 32", name=op.f("ck_entries_prev_length")),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_entries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_entries_event_id")),
        # A second entry chaining to the same predecessor is a fork.
        sa.UniqueConstraint("prev", name=op.f("uq_entries_prev")),
    )
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_merkle_nodes")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "participants",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("enrolled_at", sa.BigInteger(), nullable=False),
        sa.Column("operator", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
    )
    op.create_table(
        "participant_keys",
        sa.Column("key_id", sa.LargeBinary(32), nullable=False),
        sa.Column("participant", sa.Text(), nullable=False),
        sa.Column("public", sa.LargeBinary(32), nullable=False),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant"],
            ["participants.id"],
            name=op.f("fk_participant_keys_participant_participants"),
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_participant_keys")),
    )
    op.create_index(
        op.f("ix_participant_keys_participant"), "participant_keys", ["participant"], unique=False
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", _INDEX, autoincrement=False, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_checkpoints")),
    )
    log_head = op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("last_leaf", sa.LargeBinary(32), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_log_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_head")),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.bulk_insert(log_head, [{"id": 1, "size": 0, "last_leaf": bytes(32)}])


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("log_head")
    op.drop_table("checkpoints")
    op.drop_index(op.f("ix_participant_keys_participant"), table_name="participant_keys")
    op.drop_table("participant_keys")
    op.drop_table("participants")
    op.drop_table("merkle_nodes")
    op.drop_table("entries")
