"""`cadence report`: the figures comms teams act on, overall or broken down."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import typer

from cadence.cli.context import db_session, runtime
from cadence.cli.output import Format, emit
from cadence.clock import utcnow
from cadence.errors import InputError
from cadence.figures import BREAKDOWNS, FIGURE_COLUMNS, PERIODS, Filters, breakdown, overview
from cadence.launches import context_from

LAUNCH_COLUMNS = [
    "launch",
    "title",
    "audience",
    "reached",
    "reached_before_customers",
    "acknowledged_before_customers",
    "leader_bypasses",
    "breaches",
]


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def _day(text: str | None, option: str, zone: ZoneInfo, *, end: bool = False) -> datetime | None:
    """A YYYY-MM-DD day in the organisation's zone: its start, or (for an inclusive end)
    the start of the next day."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} must be a date YYYY-MM-DD, not {text!r}") from None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time(0, 0), tzinfo=zone)


def report(
    ctx: typer.Context,
    by: str | None = typer.Option(
        None, "--by", help="Break down by " + ", ".join(BREAKDOWNS) + " (default: totals)."
    ),
    period: str = typer.Option(
        "week", "--period", help="With --by period: day, week (from Monday) or month."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Occurrences due on or after this day (YYYY-MM-DD)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Occurrences due on or before this day (YYYY-MM-DD)."
    ),
    message: int | None = typer.Option(None, "--message", help="Only this message id."),
    team: str | None = typer.Option(None, "--team", help="Only this team and its sub-teams."),
    manager: str | None = typer.Option(
        None, "--manager", help="Only this manager and everyone below them (email)."
    ),
    channel: str | None = typer.Option(None, "--channel", help="Only deliveries on this channel."),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """Reach, acknowledgement, time to acknowledge, questions, clarity and cadence kept.

    Days are in the organisation's zone (CADENCE_TIMEZONE); --until includes its day.
    """
    if by is not None and by not in BREAKDOWNS:
        raise InputError(f"unknown --by {by!r} (one of: {', '.join(BREAKDOWNS)})")
    if period not in PERIODS:
        raise InputError(f"unknown --period {period!r} (one of: {', '.join(PERIODS)})")
    rt = runtime(ctx)
    zone = ZoneInfo(rt.settings.timezone)
    filters = Filters(
        since=_day(since, "--since", zone),
        until=_day(until, "--until", zone, end=True),
        message_id=message,
        team=team,
        manager_email=manager,
        channel=channel,
    )
    now = utcnow()
    with db_session(ctx) as session:
        if by is not None:
            rows = breakdown(session, by, filters, now, period)
            columns = [by, *(["title"] if by == "message" else []), *FIGURE_COLUMNS]
            emit(rows, columns, fmt)
            return
        figures = overview(session, filters, now, launch_context=context_from(rt.settings))
    _print_overview(figures, fmt)


def _print_overview(figures: dict[str, Any], fmt: Format) -> None:
    headline = {k: v for k, v in figures.items() if k != "launches"}
    if fmt is Format.json:
        typer.echo(json.dumps(figures, indent=2, default=str))
    elif fmt is Format.csv:
        emit([headline], list(headline), fmt)
    else:
        emit([{"figure": k, "value": v} for k, v in headline.items()], ["figure", "value"], fmt)
        if figures["launches"]:
            emit(figures["launches"], LAUNCH_COLUMNS, fmt, title="Launches")
