"""`cadence acks` and `cadence ack-status`: who answered what, and who has not."""

from __future__ import annotations

from collections import defaultdict

import typer

from cadence.answers.acks import ack_status, list_acks
from cadence.cli.context import db_session
from cadence.cli.output import Format, emit
from cadence.cli.params import id_value
from cadence.figures import labels

ACK_COLUMNS = [
    "id", "message_id", "repetition", "person", "kind", "clarity", "via", "channel",
    "version", "at", "seconds_to_answer", "repeat", "question",
]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("acks")(acks)
    app.command("ack-status")(status)


def acks(
    ctx: typer.Context,
    message: int | None = typer.Option(
        None, "--message", parser=id_value, help="Only this message id."
    ),
    person: str | None = typer.Option(None, "--person", help="Only this person (email)."),
    kind: str | None = typer.Option(None, "--kind", help="ack or question."),
    repeats: bool = typer.Option(False, "--repeats", help="Include repeated clicks."),
    limit: int = typer.Option(
        100, "--limit", min=1, max=100_000, help="At most this many, newest first."
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """List acknowledgements and questions, newest first."""
    with db_session(ctx) as session:
        rows = list_acks(
            session,
            message_id=message,
            person_email=person,
            kind=kind,
            include_repeats=repeats,
            limit=limit,
        )
    emit(rows, ACK_COLUMNS, fmt)


def status(
    ctx: typer.Context,
    message_id: int = typer.Argument(..., parser=id_value, metavar="MESSAGE", help="Message id."),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """Who has acknowledged a message's latest repetition and who has not, per team."""
    with db_session(ctx) as session:
        rows = ack_status(session, message_id)
    if fmt is not Format.table:
        emit(rows, ["team", "person", "name", "repetition", "answered", "kind", "at"], fmt)
        return
    by_team: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        by_team[str(labels.shown("team", row["team"]))].append(row)
    answered = sum(1 for r in rows if r["answered"])
    typer.echo(f"message {message_id}: {answered} of {len(rows)} acknowledged")
    # People with no team last, as everywhere.
    for team, members in sorted(by_team.items(), key=lambda t: (t[0] == labels.NO_TEAM, t[0])):
        done = [m for m in members if m["answered"]]
        waiting = [str(m["person"]) for m in members if not m["answered"]]
        typer.echo(f"\n{team}: {len(done)} of {len(members)}")
        if waiting:
            typer.echo("  not yet: " + ", ".join(waiting))
