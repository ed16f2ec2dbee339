"""`cadence init`: create or upgrade the database."""

from __future__ import annotations

import typer

from cadence.cli.context import runtime
from cadence.figures import summaries
from cadence.store.db import current_revision, head_revision, upgrade


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(ctx: typer.Context) -> None:
    """Create the database, or upgrade it to the newest schema, and bring the figure
    summaries up to date. Safe to run again."""
    rt = runtime(ctx)
    before = current_revision(rt.engine)
    upgrade(rt.engine)
    summarised = summaries.refresh(rt.sessions)
    after = head_revision()
    url = rt.engine.url.render_as_string(hide_password=True)
    if before == after:
        typer.echo(f"database {url} is up to date (schema {after})")
    else:
        typer.echo(f"database {url} upgraded from {before or 'empty'} to schema {after}")
    if summarised:
        typer.echo(f"figure summaries brought up to date ({summarised} changes)")
