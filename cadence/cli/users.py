"""`cadence user ...`: who may sign in to the dashboard, and what they see there."""

from __future__ import annotations

import getpass
import sys

import typer

from cadence.access import users
from cadence.cli.context import db_session
from cadence.cli.output import Format, emit
from cadence.clock import utcnow
from cadence.errors import InputError

user_app = typer.Typer(
    name="user",
    help="Dashboard users: comms users see everyone, leaders see their own reporting tree.",
    no_args_is_help=True,
)

LIST_COLUMNS = ("email", "role", "person", "active", "created_at")
PASSWORD_STDIN_HELP = (
    "Read the password from the first line of standard input (the default when input is "
    "not a terminal), for scripts and secret managers."
)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")


def _read_password(from_stdin: bool) -> str:
    """A new password: typed twice at a terminal (never echoed), else one line of stdin.

    Never an option value, which would show in the shell history and the process list.
    """
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise InputError("no password on standard input")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password again: "):
            raise InputError("the two passwords do not match")
    users.check_password(password)
    return password


@user_app.command("add")
def add(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="What they sign in with."),
    role: users.Role = typer.Option(
        ...,
        "--role",
        help="comms: sees every message and person; leader: sees only their own tree.",
        case_sensitive=False,
    ),
    person: str | None = typer.Option(
        None,
        "--person",
        metavar="EMAIL",
        help="For a leader: their entry in the staff directory (default: the same email).",
    ),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=PASSWORD_STDIN_HELP),
) -> None:
    """Add a dashboard user with a password of at least 12 characters."""
    with db_session(ctx) as session:
        # Checked before asking for a password, so a typo is not found after typing it twice.
        if role is users.Role.COMMS and person:
            raise InputError("--person is for leaders: a comms user sees everyone")
        password = _read_password(password_stdin)
        user = users.create_user(
            session, email, role.value, password, utcnow(), person_email=person
        )
        linked = f", sees the tree of {user.person.email}" if user.person is not None else ""
        typer.echo(f"added {user.role} user {user.email}{linked}")


@user_app.command("password")
def set_password(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=PASSWORD_STDIN_HELP),
) -> None:
    """Set a new password; every browser signed in with the old one is signed out."""
    with db_session(ctx) as session:
        users.get_user(session, email)
        user = users.update_user(session, email, password=_read_password(password_stdin))
        typer.echo(f"password changed for {user.email}")


@user_app.command("list")
def list_(
    ctx: typer.Context,
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """List dashboard users, their role, and whose tree each leader sees."""
    with db_session(ctx) as session:
        rows = users.list_users(session)
    emit(rows, LIST_COLUMNS, fmt, title="Dashboard users")


@user_app.command("disable")
def disable(ctx: typer.Context, email: str = typer.Argument(..., metavar="EMAIL")) -> None:
    """Stop a user signing in; browsers signed in as them are refused from the next page."""
    with db_session(ctx) as session:
        user = users.deactivate(session, email)
        typer.echo(f"disabled {user.email}")
