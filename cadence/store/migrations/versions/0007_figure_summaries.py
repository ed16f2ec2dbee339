"""figure summaries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cadence.store.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Triggers that log every change the figure summaries depend on into figure_changes, in
# the writer's own transaction (cadence.figures.summaries reads the log). A delivery matters when
# it is written or removed, and when it becomes or stops being sent or cancelled; an
# acknowledgement always; an occurrence when its due time, purpose or message changes; a
# person when they move team or manager (every person-occurrence of theirs, for the sums
# kept per team and manager).
def _delivery_matters(old: str, new: str, differ: str) -> str:
    return f"""
    ({old}.status {differ} {new}.status
        AND ({old}.status IN ('sent', 'cancelled') OR {new}.status IN ('sent', 'cancelled')))
    OR {old}.sent_at {differ} {new}.sent_at
    OR {old}.channel {differ} {new}.channel
    OR {old}.occurrence_id {differ} {new}.occurrence_id
    OR {old}.person_id {differ} {new}.person_id
    """


_LOG = "INSERT INTO figure_changes (occurrence_id, person_id)"
# The refresh finds the person's occurrences itself, under its lock: a trigger reading
# them here could miss those a refresh running at the same time has not committed yet.
_LOG_PERSON = f"{_LOG} VALUES (NULL, NEW.id)"


def _sqlite_table_triggers(table: str, update_when: str) -> list[str]:
    moved = "OLD.occurrence_id IS NOT NEW.occurrence_id OR OLD.person_id IS NOT NEW.person_id"
    return [
        f"""CREATE TRIGGER figure_changes_{table}_insert AFTER INSERT ON {table}
        BEGIN {_LOG} VALUES (NEW.occurrence_id, NEW.person_id); END""",
        f"""CREATE TRIGGER figure_changes_{table}_update AFTER UPDATE ON {table}
        WHEN {update_when}
        BEGIN
            {_LOG} VALUES (NEW.occurrence_id, NEW.person_id);
            {_LOG} SELECT OLD.occurrence_id, OLD.person_id WHERE {moved};
        END""",
        f"""CREATE TRIGGER figure_changes_{table}_delete AFTER DELETE ON {table}
        BEGIN {_LOG} VALUES (OLD.occurrence_id, OLD.person_id); END""",
    ]


SQLITE_TRIGGERS = [
    *_sqlite_table_triggers("deliveries", _delivery_matters("OLD", "NEW", "IS NOT")),
    *_sqlite_table_triggers("acknowledgements", "1"),
    f"""CREATE TRIGGER figure_changes_occurrences_update AFTER UPDATE ON occurrences
    WHEN OLD.due_at IS NOT NEW.due_at OR OLD.purpose IS NOT NEW.purpose
        OR OLD.message_id IS NOT NEW.message_id
    BEGIN {_LOG} VALUES (NEW.id, NULL); END""",
    f"""CREATE TRIGGER figure_changes_people_update AFTER UPDATE OF team_id, manager_id ON people
    WHEN OLD.team_id IS NOT NEW.team_id OR OLD.manager_id IS NOT NEW.manager_id
    BEGIN {_LOG_PERSON}; END""",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS figure_changes_{table}_{event}"
    for table in ("deliveries", "acknowledgements")
    for event in ("insert", "update", "delete")
] + [
    "DROP TRIGGER IF EXISTS figure_changes_occurrences_update",
    "DROP TRIGGER IF EXISTS figure_changes_people_update",
]

# PostgreSQL: statement-level triggers with transition tables, so a bulk write logs its
# rows in one INSERT ... SELECT instead of one trigger call per row. The functions keep the
# schema they were created in, whatever search path the writer has.
POSTGRESQL_TRIGGERS = [
    f"""CREATE FUNCTION figure_changes_log_rows() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {_LOG} SELECT DISTINCT occurrence_id, person_id FROM new_rows;
        ELSIF TG_OP = 'DELETE' THEN
            {_LOG} SELECT DISTINCT occurrence_id, person_id FROM old_rows;
        ELSIF TG_TABLE_NAME = 'deliveries' THEN
            {_LOG} SELECT DISTINCT pair.occurrence_id, pair.person_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            CROSS JOIN LATERAL (VALUES (n.occurrence_id, n.person_id),
                                       (o.occurrence_id, o.person_id))
                AS pair (occurrence_id, person_id)
            WHERE {_delivery_matters("o", "n", "IS DISTINCT FROM")};
        ELSE
            {_LOG} SELECT occurrence_id, person_id FROM new_rows
            UNION SELECT occurrence_id, person_id FROM old_rows;
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION figure_changes_log_occurrence() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
        {_LOG} VALUES (NEW.id, NULL);
        RETURN NULL;
    END $$""",
    *(
        f"""CREATE TRIGGER figure_changes_{table}_{event.lower()} AFTER {event} ON {table}
        REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION figure_changes_log_rows()"""
        for table in ("deliveries", "acknowledgements")
        for event, transition in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        )
    ),
    """CREATE TRIGGER figure_changes_occurrences_update
    AFTER UPDATE OF due_at, purpose, message_id ON occurrences FOR EACH ROW
    WHEN (OLD.due_at IS DISTINCT FROM NEW.due_at OR OLD.purpose IS DISTINCT FROM NEW.purpose
        OR OLD.message_id IS DISTINCT FROM NEW.message_id)
    EXECUTE FUNCTION figure_changes_log_occurrence()""",
    f"""CREATE FUNCTION figure_changes_log_person() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
        {_LOG_PERSON};
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER figure_changes_people_update AFTER UPDATE OF team_id, manager_id
    ON people FOR EACH ROW
    WHEN (OLD.team_id IS DISTINCT FROM NEW.team_id
        OR OLD.manager_id IS DISTINCT FROM NEW.manager_id)
    EXECUTE FUNCTION figure_changes_log_person()""",
]
POSTGRESQL_DROP = [
    f"DROP TRIGGER IF EXISTS figure_changes_{table}_{event} ON {table}"
    for table in ("deliveries", "acknowledgements")
    for event in ("insert", "update", "delete")
] + [
    "DROP TRIGGER IF EXISTS figure_changes_occurrences_update ON occurrences",
    "DROP TRIGGER IF EXISTS figure_changes_people_update ON people",
    "DROP FUNCTION IF EXISTS figure_changes_log_person()",
    "DROP FUNCTION IF EXISTS figure_changes_log_rows()",
    "DROP FUNCTION IF EXISTS figure_changes_log_occurrence()",
]


def upgrade() -> None:
    op.create_table(
        "figure_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("taken", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "figure_histograms",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("measure", sa.String(length=8), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint(
            "occurrence_id", "channel", "measure", "team_id", "manager_id", "bucket"
        ),
    )
    op.create_table(
        "occurrence_figures",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("acknowledged", sa.Integer(), nullable=False),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("rated", sa.Integer(), nullable=False),
        sa.Column("scheduled", sa.Integer(), nullable=False),
        sa.Column("on_time", sa.Integer(), nullable=False),
        sa.Column("first_sent", cadence.store.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("occurrence_id", "channel", "team_id", "manager_id"),
    )
    op.create_table(
        "person_occurrences",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("due_at", cadence.store.types.UTCDateTime(), nullable=False),
        sa.Column("counts", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("first_sent", cadence.store.types.UTCDateTime(), nullable=True),
        sa.Column("lateness_s", sa.Float(), nullable=True),
        sa.Column("wait_s", sa.Float(), nullable=True),
        sa.Column("wait_bucket", sa.Integer(), nullable=True),
        sa.Column("channel_planned", sa.Integer(), nullable=False),
        sa.Column("channel_first_sent", cadence.store.types.UTCDateTime(), nullable=True),
        sa.Column("channel_lateness_s", sa.Float(), nullable=True),
        sa.Column("channel_wait_s", sa.Float(), nullable=True),
        sa.Column("channel_wait_bucket", sa.Integer(), nullable=True),
        sa.Column("answered_at", cadence.store.types.UTCDateTime(), nullable=True),
        sa.Column("answered_version", sa.Integer(), nullable=True),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("rated", sa.Integer(), nullable=False),
        sa.Column("ack_hour", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
        ),
        sa.PrimaryKeyConstraint("occurrence_id", "person_id", "channel"),
    )
    with op.batch_alter_table("person_occurrences", schema=None) as batch_op:
        batch_op.create_index(
            "ix_person_occurrences_channel_wait",
            ["channel_wait_bucket", "channel", "occurrence_id", "channel_wait_s", "person_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_person_occurrences_person",
            ["person_id", "message_id", "due_at", "occurrence_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_person_occurrences_wait",
            ["wait_bucket", "counts", "occurrence_id", "wait_s", "person_id"],
            unique=False,
        )
    with op.batch_alter_table("acknowledgements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_acknowledgements_occurrence_person", ["occurrence_id", "person_id"], unique=False
        )
        batch_op.drop_index("ix_acknowledgements_occurrence_id")
    bind = op.get_bind()
    for statement in POSTGRESQL_TRIGGERS if bind.dialect.name == "postgresql" else SQLITE_TRIGGERS:
        bind.exec_driver_sql(statement)
    # Existing history is summarised by the first refresh (`cadence init` runs one).
    bind.exec_driver_sql(
        "INSERT INTO figure_changes (occurrence_id, person_id) "
        "SELECT id, NULL FROM occurrences WHERE purpose IN ('cadence', 'launch')"
    )


def downgrade() -> None:
    bind = op.get_bind()
    for statement in POSTGRESQL_DROP if bind.dialect.name == "postgresql" else SQLITE_DROP:
        bind.exec_driver_sql(statement)
    with op.batch_alter_table("acknowledgements", schema=None) as batch_op:
        batch_op.create_index("ix_acknowledgements_occurrence_id", ["occurrence_id"], unique=False)
        batch_op.drop_index("ix_acknowledgements_occurrence_person")
    with op.batch_alter_table("person_occurrences", schema=None) as batch_op:
        batch_op.drop_index("ix_person_occurrences_wait")
        batch_op.drop_index("ix_person_occurrences_person")
        batch_op.drop_index("ix_person_occurrences_channel_wait")

    op.drop_table("person_occurrences")
    op.drop_table("occurrence_figures")
    op.drop_table("figure_histograms")
    op.drop_table("figure_changes")
