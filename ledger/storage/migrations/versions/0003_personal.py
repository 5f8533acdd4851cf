"""Personal data kept off the log: clear values and salts of profile commitments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Never written by an append and never referenced by the log: erasing a row
    # (a deletion request) leaves every entry, node and checkpoint as it was.
    op.create_table(
        "personal_data",
        sa.Column("participant", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("participant", "field", name=op.f("pk_personal_data")),
    )


def downgrade() -> None:
    op.drop_table("personal_data")
