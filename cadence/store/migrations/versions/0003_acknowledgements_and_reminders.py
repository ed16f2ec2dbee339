"""acknowledgements and reminders

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cadence.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("acknowledgements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("occurrence_id", sa.Integer(), nullable=False))
        batch_op.add_column(
            sa.Column("counted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_acknowledgements_occurrence_id"), ["occurrence_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_acknowledgements_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            "uq_acknowledgements_counted",
            ["occurrence_id", "person_id", "message_version"],
            unique=True,
            sqlite_where=sa.text("counted"),
            postgresql_where=sa.text("counted"),
        )
        batch_op.create_foreign_key(
            "fk_acknowledgements_occurrence_id",
            "occurrences",
            ["occurrence_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("content_version", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("acknowledged_at", cadence.store.types.UTCDateTime(), nullable=True)
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ack_version", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(sa.Column("remind_after_hours", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_reminders", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("escalate", sa.Boolean(), nullable=True))

    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("follow_up", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.drop_constraint("uq_occurrences_message_id_sequence_zone", type_="unique")
        batch_op.create_unique_constraint(
            "uq_occurrences_message_purpose_sequence_zone_follow_up",
            ["message_id", "purpose", "sequence", "zone", "follow_up"],
        )
        batch_op.create_index(batch_op.f("ix_occurrences_parent_id"), ["parent_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_occurrences_parent_id", "occurrences", ["parent_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_constraint("fk_occurrences_parent_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_occurrences_parent_id"))
        batch_op.drop_constraint(
            "uq_occurrences_message_purpose_sequence_zone_follow_up", type_="unique"
        )
        batch_op.create_unique_constraint(
            "uq_occurrences_message_id_sequence_zone", ["message_id", "sequence", "zone"]
        )
        batch_op.drop_column("follow_up")
        batch_op.drop_column("parent_id")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("escalate")
        batch_op.drop_column("max_reminders")
        batch_op.drop_column("remind_after_hours")
        batch_op.drop_column("ack_version")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("content_version")
        batch_op.drop_column("payload")

    with op.batch_alter_table("acknowledgements", schema=None) as batch_op:
        batch_op.drop_constraint("fk_acknowledgements_occurrence_id", type_="foreignkey")
        batch_op.drop_index(
            "uq_acknowledgements_counted",
            sqlite_where=sa.text("counted"),
            postgresql_where=sa.text("counted"),
        )
        batch_op.drop_index(batch_op.f("ix_acknowledgements_person_id"))
        batch_op.drop_index(batch_op.f("ix_acknowledgements_occurrence_id"))
        batch_op.drop_column("counted")
        batch_op.drop_column("occurrence_id")
