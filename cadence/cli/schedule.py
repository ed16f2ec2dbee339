"""`cadence schedule preview`: see when a rule or a message will send."""

from __future__ import annotations

import typer

from cadence.cli.context import db_session, runtime
from cadence.cli.output import Format, emit
from cadence.cli.params import id_value
from cadence.clock import utcnow
from cadence.errors import InputError
from cadence.messages.core import get_message
from cadence.messages.preview import upcoming_sends
from cadence.planning.recurrence import preview_lines

schedule_app = typer.Typer(help="Check cadences before they run.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")


@schedule_app.command("preview")
def preview(
    ctx: typer.Context,
    rrule: str | None = typer.Option(None, "--rrule", help="RFC 5545 RRULE (RRULE: optional)."),
    start: str | None = typer.Option(None, "--start", help="DTSTART as YYYY-MM-DDTHH:MM in --tz."),
    tz: str | None = typer.Option(None, "--tz", help="IANA time zone of --start."),
    message: int | None = typer.Option(
        None, "--message", parser=id_value, help="Preview a stored message."
    ),
    person: str | None = typer.Option(None, "--person", help="With --message: one recipient."),
    count: int = typer.Option(10, "--count", min=1, max=10_000, help="How many occurrences."),
    fmt: Format = typer.Option(Format.table, "--format", help="Output for --message."),
) -> None:
    """Print upcoming occurrences.

    With --rrule/--start/--tz: one ISO 8601 line per occurrence with its UTC offset, and
    nothing else. With --message: who gets each upcoming send, when in their own zone, and
    which wording.
    """
    if message is not None:
        if rrule or start or tz:
            raise InputError("--message cannot be combined with --rrule, --start or --tz")
        _message_preview(ctx, message, person, count, fmt)
        return
    missing = [name for name, v in (("--rrule", rrule), ("--start", start), ("--tz", tz)) if not v]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (or use --message ID)")
    if person is not None:
        raise InputError("--person goes with --message")
    assert rrule and start and tz
    for line in preview_lines(rrule, start, tz, count):
        typer.echo(line)


def _message_preview(
    ctx: typer.Context, message_id: int, person: str | None, count: int, fmt: Format
) -> None:
    org_zone = runtime(ctx).settings.timezone
    with db_session(ctx) as session:
        msg = get_message(session, message_id)
        sends = upcoming_sends(session, msg, org_zone, utcnow(), count, person)
        paused = msg.status == "paused"
    rows = [
        {
            "when": s.at.isoformat(timespec="minutes"),
            "zone": s.zone,
            "repetition": s.repetition,
            "wording": s.variant,
            "recipients": ", ".join(s.recipients)
            + (f" and {s.total - len(s.recipients)} more" if s.total > len(s.recipients) else ""),
            "people": s.total,
        }
        for s in sends
    ]
    if paused and fmt is Format.table:
        typer.echo(
            f"message {message_id} is paused: these will be skipped until it resumes", err=True
        )
    if not rows and fmt is Format.table:
        typer.echo("no upcoming sends (no one in the audience, or the cadence has ended)")
        return
    emit(rows, ["when", "zone", "repetition", "wording", "people", "recipients"], fmt)
