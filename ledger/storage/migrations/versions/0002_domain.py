"""Domain state: domain events, lots, shipments, lot histories and the lot graph.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "domain_events",
        sa.Column("event_id", sa.LargeBinary(32), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("participant", sa.Text(), nullable=False),
        sa.Column("time", sa.Text(), nullable=False),
        sa.Column("corrected_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_domain_events")),
        sa.UniqueConstraint("idx", name=op.f("uq_domain_events_idx")),
    )
    op.create_table(
        "lots",
        sa.Column("lot_id", sa.Text(), nullable=False),
        sa.Column("crop", sa.Text(), nullable=False),
        sa.Column("unit_class", sa.Text(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("custodian", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("producer", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_time", sa.Text(), nullable=False),
        sa.Column("recalled_at", sa.BigInteger(), nullable=True),
        sa.Column("recall_reason", sa.Text(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        # Canonical JSON (RFC 8785) text of a list of lot ids.
        sa.Column("contents", sa.Text(), nullable=False),
        sa.Column("shipment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("lot_id", name=op.f("pk_lots")),
    )
    op.create_index(op.f("ix_lots_custodian"), "lots", ["custodian"], unique=False)
    op.create_index(op.f("ix_lots_status"), "lots", ["status"], unique=False)
    op.create_table(
        "shipments",
        sa.Column("event_id", sa.LargeBinary(32), nullable=False),
        sa.Column("lot", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("consignee", sa.Text(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("shipped_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=True),
        sa.Column("received_quantity", sa.BigInteger(), nullable=True),
        sa.Column("loss", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_shipments")),
    )
    # ``pos``: a row's place among those its statement added, in the rules' order.
    op.create_table(
        "lot_events",
        sa.Column("lot_id", sa.Text(), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("lot_id", "idx", name=op.f("pk_lot_events")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_lot_events_idx", "lot_events", ["idx", "pos"], unique=False)
    op.create_table(
        "lot_edges",
        sa.Column("parent", sa.Text(), nullable=False),
        sa.Column("child", sa.Text(), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("parent", "child", "idx", name=op.f("pk_lot_edges")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_lot_edges_parent"), "lot_edges", ["parent"], unique=False)
    op.create_index(op.f("ix_lot_edges_child"), "lot_edges", ["child"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_lot_edges_child"), table_name="lot_edges")
    op.drop_index(op.f("ix_lot_edges_parent"), table_name="lot_edges")
    op.drop_table("lot_edges")
    op.drop_index("ix_lot_events_idx", table_name="lot_events")
    op.drop_table("lot_events")
    op.drop_table("shipments")
    op.drop_index(op.f("ix_lots_status"), table_name="lots")
    op.drop_index(op.f("ix_lots_custodian"), table_name="lots")
    op.drop_table("lots")
    op.drop_table("domain_events")
