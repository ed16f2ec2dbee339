"""`cadence directory import` and `cadence directory list`: the staff directory."""

from __future__ import annotations

from pathlib import Path

import typer

from cadence.cli.context import db_session, runtime
from cadence.cli.output import Format, emit
from cadence.clock import utcnow
from cadence.directory import people as directory
from cadence.directory.files import parse_directory
from cadence.errors import InputError
from cadence.launches.cascade import context_from as launch_context
from cadence.launches.status import late_launches
from cadence.messages.planner import invalidate

directory_app = typer.Typer(
    name="directory",
    help="The staff directory: people, their teams and who manages whom.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(directory_app, name="directory")


IMPORT_HELP = (
    "Import people from FILE, updating anyone already known by their email.\n\n"
    "All or nothing: if any row is bad (invalid or duplicate email, unknown manager, a manager "
    "cycle, unknown time zone or channel, bad team), every problem is listed with its row and "
    "nothing is changed. Teams nest with slashes, e.g. Support/EMEA; leaders are whoever "
    "others name as their manager."
)
LIST_HELP = (
    "List people with their team, manager and whether they lead anyone.\n\n"
    "is_leader and reports count active direct reports, derived from manager links."
)


@directory_app.command("import", help=IMPORT_HELP)
def import_file(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ...,
        metavar="FILE",
        help="A .csv file with a header row, or a .yaml/.yml list of people. Columns: "
        + ", ".join(directory.COLUMNS)
        + " (only email and name are required).",
    ),
    full: bool = typer.Option(
        False,
        "--full",
        help="The file lists everyone: deactivate active people missing from it "
        "(they are kept, with their history, never deleted).",
    ),
    allow_late: bool = typer.Option(
        False,
        "--allow-late-launches",
        help="Import even if a launch would then reach someone after its deadline "
        "(they are sent it at once when everyone should have had it).",
    ),
) -> None:
    """Parse first, so a malformed file fails before the database is even opened."""
    rows = parse_directory(file)
    settings = runtime(ctx).settings
    with db_session(ctx) as session:
        now = utcnow()
        result = directory.import_directory(session, rows, full=full, now=now)
        if result.created or result.updated or result.deactivated:
            # Who is in which zone decides which occurrences exist: plan them again.
            invalidate(session)
            late = late_launches(session, now, launch_context(settings))
            if late and not allow_late:
                raise InputError(
                    "directory import refused: launches would no longer reach everyone "
                    "before customers (use --allow-late-launches to import anyway)",
                    late,
                )
            for line in late:
                typer.echo(f"warning: {line}", err=True)
    typer.echo(result.summary())


@directory_app.command("list", help=LIST_HELP)
def list_people(
    ctx: typer.Context,
    fmt: Format = typer.Option(
        Format.table, "--format", help="table for reading, csv or json for other tools."
    ),
    include_inactive: bool = typer.Option(
        False, "--all", help="Include people deactivated by a full import."
    ),
) -> None:
    """Inactive people are hidden by default: they receive nothing and lead no one."""
    with db_session(ctx) as session:
        people = directory.list_people(session, include_inactive=include_inactive)
    emit(people, directory.LISTED_FIELDS, fmt, title="People")
