"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and carry existing history forward."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cadence.figures import summaries
from cadence.figures.measures import Filters, overview
from cadence.store.db import _alembic_config, upgrade
from cadence.store.models import Base


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_history_from_before_the_summaries_is_summarised_on_upgrade(
    engine: Engine, cli: Callable[..., Any]
) -> None:
    """A database at schema 0006 with deliveries and answers already in it: the upgrade
    queues every send occurrence for summarising and `cadence init` brings them in."""
    config = _alembic_config(engine)
    command.downgrade(config, "0006")
    try:
        with engine.begin() as conn:
            for statement in HISTORY:
                conn.execute(text(statement), {"t": T0, "later": T0 + timedelta(minutes=10)})
    finally:
        upgrade(engine)
    result = cli("init")
    assert result.code == 0, result
    assert "figure summaries brought up to date (2 changes)" in result.out
    with Session(engine) as session:
        assert not summaries.pending(session)
        figures = overview(session, Filters(), (T0 + timedelta(days=1)).replace(tzinfo=UTC))
    assert (figures["planned"], figures["sent"], figures["acknowledged"]) == (2, 2, 1)
    assert figures["ack_median_s"] == 600.0


T0 = datetime(2026, 3, 2, 9, 0)
HISTORY = [
    "INSERT INTO people (id, email, name, active, created_at, updated_at) VALUES "
    "(1, 'ann@example.com', 'Ann', true, :t, :t), (2, 'bob@example.com', 'Bob', true, :t, :t)",
    "INSERT INTO messages (id, kind, title, body, status, audience, channels, channel_mode, "
    "version, ack_version, created_at, updated_at) VALUES (1, 'core', 'Own it', 'Body', "
    "'active', '{\"everyone\": true}', '[\"log\"]', 'first', 1, 1, :t, :t)",
    "INSERT INTO occurrences (id, message_id, purpose, follow_up, sequence, zone, local_time, "
    "due_at, status) VALUES (1, 1, 'cadence', 0, 0, 'UTC', :t, :t, 'dispatched'), "
    "(2, 1, 'test', 0, 0, 'UTC', :t, :t, 'dispatched'), "
    "(3, 1, 'cadence', 0, 1, 'UTC', :t, :t, 'dispatched')",
    "INSERT INTO deliveries (id, occurrence_id, person_id, channel, variant, status, attempts, "
    "created_at, sent_at, maybe_sent) VALUES (1, 1, 1, 'log', 0, 'sent', 1, :t, :t, false), "
    "(2, 1, 2, 'log', 0, 'sent', 1, :t, :t, false), "
    "(3, 2, 1, 'log', 0, 'sent', 1, :t, :t, false)",
    "INSERT INTO acknowledgements (delivery_id, occurrence_id, person_id, kind, "
    "message_version, via, counted, created_at) VALUES (1, 1, 1, 'ack', 1, 'log', true, :later), "
    "(3, 2, 1, 'ack', 1, 'log', true, :later)",
]
