"""`cadence launch ...`: launches that reach staff, leaders first, before customers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from cadence.cli.context import db_session, runtime
from cadence.cli.output import Format, emit
from cadence.cli.params import id_value
from cadence.clock import utcnow
from cadence.directory.audience import Audience, build_audience
from cadence.errors import InputError
from cadence.launches.cascade import (
    LaunchSpec,
    add_launch,
    context_from,
    get_launch,
    parse_customer_time,
)
from cadence.launches.changes import LaunchEdit, cancel_launch, edit_launch, set_note
from cadence.launches.preview import launch_preview
from cadence.launches.status import launch_status
from cadence.planning.recurrence import zone
from cadence.store.models import Launch, Message
from cadence.units import duration

launch_app = typer.Typer(
    help="Launches: staff hear it before customers, through their leaders first.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(launch_app, name="launch")


def _text(value: str | None, path: Path | None, what: str, required: bool) -> str | None:
    if value is not None and path is not None:
        raise InputError(f"give --{what} or --{what}-file, not both")
    if path is not None:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {what} file {path}: {exc}") from None
    if value is None and required:
        raise InputError(f"--{what} or --{what}-file is required")
    return value


@launch_app.command("add")
def add(
    ctx: typer.Context,
    title: str = typer.Option(..., "--title"),
    body: str | None = typer.Option(None, "--body", help="The staff message (Markdown)."),
    body_file: Path | None = typer.Option(None, "--body-file"),
    customer_copy: str | None = typer.Option(
        None, "--customer-copy", help="What customers will be told; staff see the same words."
    ),
    customer_copy_file: Path | None = typer.Option(None, "--customer-copy-file"),
    customer_at: str = typer.Option(
        ..., "--customer-at", help="When customers hear of it: YYYY-MM-DDTHH:MM in --tz."
    ),
    tz: str = typer.Option(..., "--tz", help="IANA zone of --customer-at."),
    talking_points: str | None = typer.Option(None, "--talking-points", help="For leaders."),
    faq: str | None = typer.Option(None, "--faq", help="Questions people may ask, for leaders."),
    everyone: bool = typer.Option(False, "--everyone"),
    team: list[str] = typer.Option([], "--team"),
    person: list[str] = typer.Option([], "--person"),
    tree: list[str] = typer.Option([], "--tree"),
    channel: list[str] = typer.Option(["slack", "email"], "--channel"),
    lead: float = typer.Option(24.0, "--lead", help="Hours before customers everyone has it."),
    leader_lead: float | None = typer.Option(
        None,
        "--leader-lead",
        help="Hours each leader gets before their people (default: a working day).",
    ),
    margin: float = typer.Option(60.0, "--margin", help="Safety margin in minutes."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Add a launch. Refused (exit 2) if its timeline cannot reach everyone in time."""
    rt = runtime(ctx)
    staff = _text(body, body_file, "body", True)
    copy = _text(customer_copy, customer_copy_file, "customer-copy", True)
    assert staff is not None and copy is not None
    when = parse_customer_time(customer_at, tz)
    zone(tz)
    with db_session(ctx) as session:
        audience = build_audience(session, everyone=everyone, teams=team, people=person, trees=tree)
        spec = LaunchSpec(
            title=title, body=staff, customer_copy=copy, customer_at=when, customer_zone=tz,
            audience=audience, channels=list(channel), talking_points=talking_points, faq=faq,
            lead_hours=lead, leader_lead_hours=leader_lead, margin_minutes=margin,
        )  # fmt: skip
        message = add_launch(session, spec, utcnow(), context_from(rt.settings))
        row = _describe(*get_launch(session, message.id))
    if fmt is Format.table:
        typer.echo(
            f"added launch {row['id']}: {row['title']} (customers hear on {row['customer_at']})"
        )
    else:
        emit([row], list(row), fmt)


def _describe(message: Message, launch: Launch) -> dict[str, object]:
    local = launch.customer_at.astimezone(zone(launch.customer_zone))
    return {
        "id": message.id,
        "title": message.title,
        "status": message.status,
        "customer_at": local.isoformat(timespec="minutes"),
        "customer_zone": launch.customer_zone,
        "audience": Audience.from_json(message.audience).describe(),
        "channels": ",".join(message.channels),
        "lead_hours": launch.lead_hours,
        "leader_lead_hours": launch.leader_lead_hours,
        "margin_minutes": launch.margin_minutes,
        "version": message.version,
    }


@launch_app.command("list")
def list_(ctx: typer.Context, fmt: Format = typer.Option(Format.table, "--format")) -> None:
    """List launches."""
    from sqlalchemy import select

    with db_session(ctx) as session:
        rows = [
            _describe(m, launch)
            for m, launch in session.execute(
                select(Message, Launch)
                .join(Launch, Launch.message_id == Message.id)
                .order_by(Message.id)
            )
        ]
    emit(rows, ["id", "title", "status", "customer_at", "audience", "channels", "version"], fmt)


@launch_app.command("show")
def show(
    ctx: typer.Context,
    launch_id: int = typer.Argument(..., parser=id_value, metavar="LAUNCH"),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Show a launch: its timing, its staff message and its customer copy."""
    with db_session(ctx) as session:
        message, launch = get_launch(session, launch_id)
        row = _describe(message, launch)
        row.update(body=message.body, customer_copy=launch.customer_copy,
                   talking_points=launch.talking_points, faq=launch.faq)  # fmt: skip
    _print_fields(row, fmt)


PREVIEW_TABLE = ["tier", "when", "person", "gets", "team_released_by", "late"]
PREVIEW_CSV = ["tier", "when", "person", "zone", "gets", "team_released_by", "late",
               "after_customers"]  # fmt: skip


@launch_app.command("preview")
def preview(
    ctx: typer.Context,
    launch_id: int = typer.Argument(..., parser=id_value, metavar="LAUNCH"),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """The timeline: who gets it when (in their own zone), in which tier, and who too late.

    Planned with this installation's settings, as the worker releases it; exit 2 when any
    send would be late."""
    rt = runtime(ctx)
    with db_session(ctx) as session:
        found = launch_preview(session, launch_id, context_from(rt.settings))
    if fmt is Format.json:
        typer.echo(json.dumps(found, indent=2))
    else:
        rows = [_preview_row(send, fmt) for send in found["sends"]]
        if fmt is Format.table:
            typer.echo(_preview_heading(found))
        emit(rows, PREVIEW_TABLE if fmt is Format.table else PREVIEW_CSV, fmt)
        if fmt is Format.table:
            typer.echo(_preview_summary(found))
    if found["late_count"]:
        typer.echo(f"error: {_late_sentence(found)}", err=True)
        raise typer.Exit(2)


def _minutes(moment: str | None) -> str:
    """An ISO time from the preview, to the minute, for a table."""
    return "" if moment is None else datetime.fromisoformat(moment).isoformat(timespec="minutes")


def _preview_row(send: dict[str, Any], fmt: Format) -> dict[str, Any]:
    if fmt is Format.csv:  # exact values, as in JSON
        return {**send, "team_released_by": send["team_released_by"] or ""}
    mark = "after customers" if send["after_customers"] else "late" if send["late"] else ""
    return {
        **send,
        "when": _minutes(send["when"]),
        "team_released_by": _minutes(send["team_released_by"]),
        "late": mark,
    }


def _preview_heading(found: dict[str, Any]) -> str:
    return (
        f"customers hear {_minutes(found['customer_at'])}; everyone must have it by "
        f"{_minutes(found['everyone_by'])} (lead {found['lead_hours']:g} h, margin "
        f"{found['margin_minutes']:g} min); fan-out takes {duration(found['fanout_seconds'])} "
        f"at {found['rate_per_minute']:g} a minute; working hours "
        f"{found['working_hours']} in each person's zone"
    )


def _preview_summary(found: dict[str, Any]) -> str:
    if not found["late_count"]:
        return f"all {found['sends_count']} sends reach people in time"
    return (
        f"{found['late_count']} of {found['sends_count']} sends late "
        f"({found['after_customers_count']} after customers)"
    )


def _late_sentence(found: dict[str, Any]) -> str:
    count = found["late_count"]
    sentence = (
        f"{count} {'send' if count == 1 else 'sends'} would reach people after "
        f"{_minutes(found['everyone_by'])}, "
        f"{found['after_customers_count']} of them after customers hear"
    )
    if earliest := found["earliest_customer_at"]:
        sentence += f"; the earliest customer time that works is {_minutes(earliest)}"
    return sentence


@launch_app.command("edit")
def edit(
    ctx: typer.Context,
    launch_id: int = typer.Argument(..., parser=id_value, metavar="LAUNCH"),
    title: str | None = typer.Option(None, "--title"),
    body: str | None = typer.Option(None, "--body"),
    body_file: Path | None = typer.Option(None, "--body-file"),
    customer_copy: str | None = typer.Option(None, "--customer-copy"),
    customer_copy_file: Path | None = typer.Option(None, "--customer-copy-file"),
    talking_points: str | None = typer.Option(None, "--talking-points"),
    faq: str | None = typer.Option(None, "--faq"),
    customer_at: str | None = typer.Option(None, "--customer-at", help="New time, in --tz."),
    tz: str | None = typer.Option(None, "--tz"),
) -> None:
    """Change a launch before customers hear. Whoever already had it gets a correction."""
    rt = runtime(ctx)
    when = None
    if customer_at is not None:
        if tz is None:
            raise InputError("--customer-at needs --tz")
        when = parse_customer_time(customer_at, tz)
    with db_session(ctx) as session:
        message, corrections = edit_launch(
            session,
            launch_id,
            LaunchEdit(
                title=title,
                body=_text(body, body_file, "body", False),
                customer_copy=_text(customer_copy, customer_copy_file, "customer-copy", False),
                talking_points=talking_points,
                faq=faq,
                customer_at=when,
            ),
            utcnow(),
            context_from(rt.settings),
        )
        version = message.version
    typer.echo(f"edited launch {launch_id} (version {version}); {corrections} corrections to send")


@launch_app.command("cancel")
def cancel(
    ctx: typer.Context, launch_id: int = typer.Argument(..., parser=id_value, metavar="LAUNCH")
) -> None:
    """Withdraw a launch before customers hear: whoever had it is told it is off."""
    with db_session(ctx) as session:
        withdrawn, notices = cancel_launch(session, launch_id, utcnow())
    typer.echo(
        f"cancelled launch {launch_id}: {withdrawn} unsent deliveries withdrawn, "
        f"{notices} withdrawal notices to send"
    )


@launch_app.command("note")
def note(
    ctx: typer.Context,
    launch_id: int = typer.Argument(..., parser=id_value, metavar="LAUNCH"),
    leader: str = typer.Option(..., "--leader", help="The leader's email."),
    text: str = typer.Option(..., "--text", help="The note for their team."),
) -> None:
    """A leader's own words for their team, sent with their team's message."""
    with db_session(ctx) as session:
        set_note(session, launch_id, leader, text, utcnow())
    typer.echo(f"note saved; it goes with the messages to {leader.strip().lower()}'s team")


@launch_app.command("status")
def status(
    ctx: typer.Context,
    launch_id: int = typer.Argument(..., parser=id_value, metavar="LAUNCH"),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Figures: reached and acknowledged before customers, leaders first, bypasses, breaches."""
    rt = runtime(ctx)
    with db_session(ctx) as session:
        figures = launch_status(session, launch_id, context_from(rt.settings), utcnow())
    _print_fields(figures, fmt)


def _print_fields(row: dict[str, Any], fmt: Format) -> None:
    """One record: JSON, or a `name: value` line per field."""
    if fmt is Format.json:
        typer.echo(json.dumps(row, indent=2))
        return
    width = max(len(key) for key in row)
    for key, value in row.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        typer.echo(f"{key:>{width}}: {'' if shown is None else shown}")
