"""`cadence token ...`: bearer tokens for the HTTP API."""

from __future__ import annotations

import typer

from cadence.access.api_tokens import (
    API_SCOPE,
    FEED_SCOPE,
    create_token,
    find_user,
    list_tokens,
    revoke,
)
from cadence.cli.context import db_session
from cadence.cli.output import Format, emit
from cadence.cli.params import id_value
from cadence.clock import utcnow

token_app = typer.Typer(help="Bearer tokens for the HTTP API.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")


@token_app.command("create")
def create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="The email of the user the token acts as."),
    name: str = typer.Option(
        ..., "--name", help="Where it is used, e.g. 'intranet calendar', to tell tokens apart."
    ),
    feed_only: bool = typer.Option(
        False,
        "--feed-only",
        help="The token reads only /api/calendar.ics: for a calendar app's subscription URL.",
    ),
) -> None:
    """Make a token. It is printed once and only its hash is kept: store it somewhere safe."""
    scope = FEED_SCOPE if feed_only else API_SCOPE
    with db_session(ctx) as session:
        owner = find_user(session, user)
        row, token = create_token(session, owner, name, utcnow(), scope=scope)
        token_id, email = row.id, owner.email
    typer.echo(token)
    use = (
        "it reads only /api/calendar.ics?token=TOKEN"
        if feed_only
        else "use it as 'Authorization: Bearer TOKEN', or ?token=TOKEN for calendar feeds"
    )
    typer.echo(f"token {token_id} for {email}; it will not be shown again ({use})", err=True)


@token_app.command("list")
def list_(ctx: typer.Context, fmt: Format = typer.Option(Format.table, "--format")) -> None:
    """List tokens (never the tokens themselves): who, what for, last used, revoked."""
    with db_session(ctx) as session:
        rows = [
            {
                "id": t.id,
                "user": t.user.email,
                "role": t.user.role,
                "name": t.name,
                "scope": t.scope,
                "created_at": t.created_at.isoformat(timespec="seconds"),
                "last_used_at": (
                    t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else None
                ),
                "revoked": t.revoked,
            }
            for t in list_tokens(session)
        ]
    columns = ["id", "user", "role", "name", "scope", "created_at", "last_used_at", "revoked"]
    emit(rows, columns, fmt)


@token_app.command("revoke")
def revoke_(
    ctx: typer.Context,
    token_id: int = typer.Argument(..., parser=id_value, metavar="ID", help="Token id."),
) -> None:
    """Revoke a token: requests using it are refused from now on."""
    with db_session(ctx) as session:
        row = revoke(session, token_id)
        name = row.name
    typer.echo(f"revoked token {token_id} ({name})")
