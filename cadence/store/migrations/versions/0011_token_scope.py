"""what a token may do: the whole API, or only read its user's calendar feed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

A calendar app is given its token in a URL, which gets logged and passed on. A feed token
(`scope` "calendar") reads the iCalendar feed and nothing else; every token made before
this revision keeps doing what it did (`scope` "api").
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=20), nullable=False, server_default="api")
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scope")
