"""`cadence report`: the figures comms teams act on, overall or broken down."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import typer

from cadence.cli.context import db_session, runtime
from cadence.cli.output import FIGURE_FIELDS, Format, emit, heading, shown
from cadence.cli.params import id_value
from cadence.clock import utcnow
from cadence.errors import InputError
from cadence.figures import labels, summaries
from cadence.figures.measures import (
    BREAKDOWNS,
    FIGURE_COLUMNS,
    PERIODS,
    ROLLED,
    Filters,
    breakdown,
    overview,
)
from cadence.figures.message_detail import repetition
from cadence.inputs import parse_day
from cadence.launches.cascade import context_from
from cadence.store.db import check_migrated

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


REPETITION_COLUMNS = ["person", "name", "received", "acknowledged"]


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def _day(text: str | None, option: str, zone: ZoneInfo, *, end: bool = False) -> datetime | None:
    """A YYYY-MM-DD day in the organisation's zone: its start, or (for an inclusive end)
    the start of the next day."""
    if text is None:
        return None
    day = parse_day(text, option)
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
    message: int | None = typer.Option(
        None, "--message", parser=id_value, help="Only this message id."
    ),
    team: str | None = typer.Option(None, "--team", help="Only this team and its sub-teams."),
    manager: str | None = typer.Option(
        None, "--manager", help="Only this manager and everyone below them (email)."
    ),
    channel: str | None = typer.Option(None, "--channel", help="Only deliveries on this channel."),
    at_least: int | None = typer.Option(
        None,
        "--at-least",
        min=1,
        max=100_000,
        help="With --message: repetition, i.e. how many times each person received and "
        "acknowledged it, and the share of its audience that received it at least this often.",
    ),
    own: bool = typer.Option(
        False,
        "--own",
        help="With --by team: each team's own members only (not its sub-teams); with "
        "--by manager: each manager's direct reports only (not their whole tree).",
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """Reach, acknowledgement, time to acknowledge, questions, clarity and cadence kept.

    Days are in the organisation's zone (CADENCE_TIMEZONE); --until includes its day.
    """
    if at_least is not None and message is None:
        raise InputError("--at-least needs --message: repetition is counted per message")
    if at_least is not None and by is not None:
        raise InputError("--at-least and --by cannot be combined")
    if by is not None and by not in BREAKDOWNS:
        raise InputError(f"unknown --by {by!r} (one of: {', '.join(BREAKDOWNS)})")
    if own and by not in ROLLED:
        raise InputError("--own goes with --by team or --by manager")
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
    check_migrated(rt.engine)
    summaries.refresh(rt.sessions)
    with db_session(ctx) as session:
        if at_least is not None and message is not None:
            found = repetition(
                session, message, filters.since, filters.until, at_least, filters=filters
            )
            _print_repetition(found, fmt)
            return
        if by is not None:
            rows = breakdown(session, by, filters, now, period, own=own)
            columns = [by, *(["title"] if by == "message" else []), *FIGURE_COLUMNS]
            if fmt is Format.table:  # JSON and CSV keep None: null, an empty cell
                rows = [{**r, by: labels.shown(by, r[by])} for r in rows]
            emit(rows, columns, fmt, fields=FIGURE_FIELDS)
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
        emit(_figure_rows(headline), ["figure", "value"], fmt, fields=FIGURE_FIELDS)
        if figures["launches"]:
            emit(figures["launches"], LAUNCH_COLUMNS, fmt, title="Launches", fields=FIGURE_FIELDS)


def _figure_rows(figures: dict[str, Any]) -> list[dict[str, str]]:
    """One row per figure, named and shown for people."""
    return [
        {"figure": heading(k, FIGURE_FIELDS), "value": shown(k, v, FIGURE_FIELDS)}
        for k, v in figures.items()
    ]


def _print_repetition(found: dict[str, Any], fmt: Format) -> None:
    """JSON: everything. CSV: one row per person. Table: the summary, how many people
    received it how often, and each person."""
    people = found["people"]
    if fmt is Format.json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    if fmt is Format.csv:
        emit(people, REPETITION_COLUMNS, fmt)
        return
    summary = [
        "message_id", "title", "since", "until", "repetitions", "audience", "k",
        "reached_at_least_k", "share_reached_at_least_k",
    ]  # fmt: skip
    headline = _figure_rows({k: found[k] for k in summary})
    emit(headline, ["figure", "value"], fmt, fields=FIGURE_FIELDS)
    spread = [{"received": times, "people": n} for times, n in found["distribution"].items()]
    emit(spread, ["received", "people"], fmt, title="By times received", fields=FIGURE_FIELDS)
    emit(people, REPETITION_COLUMNS, fmt, title="Each person", fields=FIGURE_FIELDS)
