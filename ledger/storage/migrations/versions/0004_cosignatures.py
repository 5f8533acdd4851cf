"""Witness cosignatures of stored checkpoints (C2SP tlog-cosignature).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: INTEGER (a rowid alias) on SQLite, BIGINT elsewhere.
_INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Not part of the log: a row may be added to any stored checkpoint at any
    # time, and no append reads or writes this table. The caller verifies each
    # line against the witness's key before it is stored.
    op.create_table(
        "cosignatures",
        sa.Column("size", _INDEX, autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(4), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("length(key_hash) = 4", name=op.f("ck_cosignatures_key_hash_length")),
        sa.ForeignKeyConstraint(
            ["size"],
            ["checkpoints.size"],
            name=op.f("fk_cosignatures_size_checkpoints"),
        ),
        sa.PrimaryKeyConstraint("size", "name", "key_hash", name=op.f("pk_cosignatures")),
    )
    # "Which is the largest size this witness has cosigned?" (the pusher's old size).
    op.create_index(
        op.f("ix_cosignatures_name"), "cosignatures", ["name", "key_hash", "size"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_cosignatures_name"), table_name="cosignatures")
    op.drop_table("cosignatures")
