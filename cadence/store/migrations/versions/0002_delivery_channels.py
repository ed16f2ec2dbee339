"""delivery channels

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_channel", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("maybe_sent", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("fallback_from_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_deliveries_fallback_from_id", "deliveries", ["fallback_from_id"], ["id"]
        )

    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=16), server_default="cadence", nullable=False)
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel_mode", sa.String(length=8), server_default="first", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("channel_mode")

    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_column("purpose")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deliveries_fallback_from_id", type_="foreignkey")
        batch_op.drop_column("fallback_from_id")
        batch_op.drop_column("maybe_sent")
        batch_op.drop_column("provider_channel")
