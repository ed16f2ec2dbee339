"""launches

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cadence.store.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "launches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("customer_at", cadence.store.types.UTCDateTime(), nullable=False),
        sa.Column("customer_zone", sa.String(length=64), nullable=False),
        sa.Column("customer_copy", sa.Text(), nullable=False),
        sa.Column("talking_points", sa.Text(), nullable=True),
        sa.Column("faq", sa.Text(), nullable=True),
        sa.Column("lead_hours", sa.Float(), nullable=False),
        sa.Column("leader_lead_hours", sa.Float(), nullable=True),
        sa.Column("margin_minutes", sa.Float(), nullable=False),
        sa.Column("planned_from", cadence.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_table(
        "leader_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("leader_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", cadence.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["leader_id"],
            ["people.id"],
        ),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "leader_id"),
    )


def downgrade() -> None:
    op.drop_table("leader_notes")
    op.drop_table("launches")
