"""`cadence deliveries`: what was sent, to whom, and how it went."""

from __future__ import annotations

import typer

from cadence.cli.context import db_session
from cadence.cli.output import Format, emit
from cadence.cli.params import id_value
from cadence.figures.reports import list_deliveries

COLUMNS = [
    "id",
    "message_id",
    "repetition",
    "wording",
    "person",
    "due_at",
    "channel",
    "status",
    "attempts",
    "sent_at",
    "provider_id",
    "last_error",
]


def register(app: typer.Typer) -> None:
    app.command("deliveries")(deliveries)


def deliveries(
    ctx: typer.Context,
    message: int | None = typer.Option(
        None, "--message", parser=id_value, help="Only this message id."
    ),
    person: str | None = typer.Option(None, "--person", help="Only this person (email)."),
    status: str | None = typer.Option(
        None, "--status", help="pending, queued, sending, sent, failed or cancelled."
    ),
    limit: int = typer.Option(
        100, "--limit", min=1, max=100_000, help="At most this many, newest first."
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """List deliveries, newest first. JSON output includes the rendered text."""
    with db_session(ctx) as session:
        rows = list_deliveries(
            session, message_id=message, person_email=person, status=status, limit=limit
        )
    emit(rows, COLUMNS + (["rendered"] if fmt is Format.json else []), fmt)
