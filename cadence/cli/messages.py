"""`cadence message ...`: define core messages and steer their life cycle."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cadence.access import policy
from cadence.access.users import get_user
from cadence.cli.context import db_session
from cadence.cli.output import Format, emit
from cadence.cli.params import id_value
from cadence.clock import utcnow
from cadence.directory.audience import build_audience
from cadence.errors import InputError
from cadence.inputs import parse_day
from cadence.messages import approvals
from cadence.messages.core import (
    CadenceSpec,
    CoreMessageSpec,
    MessageEdit,
    add_core_message,
    cancel,
    combine_start,
    describe,
    edit_message,
    get_message,
    list_messages,
    pause,
    resume,
)

message_app = typer.Typer(help="Core messages that repeat on a cadence.", no_args_is_help=True)

LIST_COLUMNS = [
    "id",
    "kind",
    "status",
    "title",
    "rrule",
    "start",
    "timezone",
    "audience",
    "channels",
    "attention",
]


def register(app: typer.Typer) -> None:
    app.add_typer(message_app, name="message")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} file {path}: {exc}") from None


@message_app.command("add")
def add(
    ctx: typer.Context,
    title: str = typer.Option(..., "--title", help="Short title, shown as the subject."),
    body: str | None = typer.Option(None, "--body", help="Markdown body."),
    body_file: Path | None = typer.Option(None, "--body-file", help="Read the body from a file."),
    variant: list[str] = typer.Option(
        [], "--variant", help="Another wording; each repetition uses the next. Repeatable."
    ),
    variant_file: list[Path] = typer.Option([], "--variant-file", help="A wording from a file."),
    everyone: bool = typer.Option(False, "--everyone", help="Send to all active staff."),
    team: list[str] = typer.Option([], "--team", help="A team and its sub-teams. Repeatable."),
    person: list[str] = typer.Option([], "--person", help="A person by email. Repeatable."),
    tree: list[str] = typer.Option(
        [], "--tree", help="A manager (by email) and everyone below them. Repeatable."
    ),
    channel: list[str] = typer.Option(
        ["slack", "email"],
        "--channel",
        help="A channel allowed, in order of preference (slack, email, log). Repeatable. "
        "A person's own channel is used when allowed; the others are fallbacks.",
    ),
    all_channels: bool = typer.Option(
        False, "--all-channels", help="Send on every --channel to everyone, not just one."
    ),
    remind_after: float | None = typer.Option(
        None, "--remind-after", help="Hours before reminding who has not acknowledged (0: never)."
    ),
    max_reminders: int | None = typer.Option(None, "--max-reminders", help="Reminders at most."),
    escalate: bool | None = typer.Option(
        None, "--escalate/--no-escalate", help="After the last reminder, a digest to managers."
    ),
    rrule: str = typer.Option(..., "--rrule", help="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO."),
    start: str = typer.Option(..., "--start", help="First candidate, YYYY-MM-DD[THH:MM]."),
    at: str | None = typer.Option(None, "--at", help="Wall-clock time, HH:MM."),
    end: str | None = typer.Option(None, "--end", help="Last day, YYYY-MM-DD, inclusive."),
    tz: str = typer.Option(
        "recipient", "--tz", help="'recipient' (each person's own zone) or an IANA zone."
    ),
    as_user: str | None = typer.Option(
        None,
        "--as",
        help="Queue it as this user: a leader may only address their own tree, checked again "
        "at every send.",
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """Add a core message that repeats on a cadence until it sticks."""
    if (body is None) == (body_file is None):
        raise InputError("give exactly one of --body or --body-file")
    text = body if body is not None else _read_text(body_file, "body")  # type: ignore[arg-type]
    wordings = list(variant) + [_read_text(p, "variant") for p in variant_file]
    end_date = parse_day(end, "--end") if end else None
    cadence = CadenceSpec(
        rrule=rrule,
        start=combine_start(start, at),
        end_date=end_date,
        timezone=None if tz == "recipient" else tz,
    )
    with db_session(ctx) as session:
        author = get_user(session, as_user) if as_user is not None else None
        if author is not None and not author.active:
            raise InputError(f"user {author.email!r} is deactivated")
        if author is not None:
            audience = policy.audience_for(
                session,
                policy.viewer_for(author),
                everyone=everyone,
                teams=team,
                people=person,
                trees=tree,
            )
        else:
            audience = build_audience(
                session, everyone=everyone, teams=team, people=person, trees=tree
            )
        spec = CoreMessageSpec(
            title,
            text,
            audience,
            cadence,
            wordings,
            list(channel),
            "all" if all_channels else "first",
            remind_after_hours=remind_after,
            max_reminders=max_reminders,
            escalate=escalate,
        )
        now = utcnow()
        message = add_core_message(session, spec, now)
        if author is not None:
            approvals.submit(session, message, author, now)
        row = describe(message)
    _print_one(row, fmt, f"added message {row['id']}: {row['title']}")


@message_app.command("list")
def list_(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Include cancelled messages."),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """List messages."""
    with db_session(ctx) as session:
        rows = [describe(m) for m in list_messages(session, include_cancelled=all_)]
    emit(rows, LIST_COLUMNS, fmt)


@message_app.command("show")
def show(
    ctx: typer.Context,
    message_id: int = typer.Argument(..., parser=id_value, help="Message id."),
    fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
) -> None:
    """Show one message with its cadence and wordings."""
    with db_session(ctx) as session:
        message = get_message(session, message_id)
        row = describe(message)
        # The CLI is run by whoever runs Cadence, who sees what a comms user sees.
        row["left_out"] = policy.left_out_total(session, message_id)
        row["wordings"] = message.wordings()
    if fmt is Format.json:
        typer.echo(json.dumps(row, indent=2))
        return
    for key, value in row.items():
        if key != "wordings":
            typer.echo(f"{key:>10}: {'' if value is None else value}")
    for i, wording in enumerate(row["wordings"]):
        typer.echo(f"\n--- wording {i} ---\n{wording}")


def _lifecycle(verb: str) -> None:
    def command(
        ctx: typer.Context,
        message_id: int = typer.Argument(..., parser=id_value, help="Message id."),
    ) -> None:
        with db_session(ctx) as session:
            if verb == "pause":
                pause(session, message_id, utcnow())
                typer.echo(f"paused message {message_id}; sends falling due are skipped")
            elif verb == "resume":
                resume(session, message_id, utcnow())
                typer.echo(f"resumed message {message_id}; the next tick plans it again")
            else:
                _, occurrences, deliveries = cancel(session, message_id, utcnow())
                typer.echo(
                    f"cancelled message {message_id}: {occurrences} planned sends and "
                    f"{deliveries} unsent deliveries withdrawn"
                )

    command.__doc__ = {
        "pause": "Pause a message: nothing is sent until it is resumed.",
        "resume": "Resume a paused message from the next occurrence on.",
        "cancel": "Cancel a message for good, withdrawing everything not yet sent.",
    }[verb]
    message_app.command(verb)(command)


for _verb in ("pause", "resume", "cancel"):
    _lifecycle(_verb)


def _print_one(row: dict[str, object], fmt: Format, summary: str) -> None:
    if fmt is Format.table:
        typer.echo(summary)
    else:
        emit([row], list(row), fmt)


@message_app.command("edit")
def edit(
    ctx: typer.Context,
    message_id: int = typer.Argument(..., parser=id_value, help="Message id."),
    title: str | None = typer.Option(None, "--title", help="New title."),
    body: str | None = typer.Option(None, "--body", help="New Markdown body."),
    body_file: Path | None = typer.Option(None, "--body-file", help="New body from a file."),
    variant: list[str] = typer.Option(
        [], "--variant", help="Replace the extra wordings with these. Repeatable."
    ),
    clear_variants: bool = typer.Option(False, "--clear-variants", help="Drop extra wordings."),
    require_reack: bool = typer.Option(
        False,
        "--require-reack",
        help="Earlier acknowledgements stop counting; whoever has not acknowledged the new "
        "version gets it again now.",
    ),
    remind_after: float | None = typer.Option(None, "--remind-after", help="Hours (0: never)."),
    max_reminders: int | None = typer.Option(None, "--max-reminders", help="Reminders at most."),
    escalate: bool | None = typer.Option(None, "--escalate/--no-escalate", help="Digest."),
) -> None:
    """Edit a message. Changing its title or wording makes a new version."""
    if body is not None and body_file is not None:
        raise InputError("give --body or --body-file, not both")
    text = _read_text(body_file, "body") if body_file is not None else body
    variants: list[str] | None = [] if clear_variants else (list(variant) or None)
    with db_session(ctx) as session:
        result = edit_message(
            session,
            message_id,
            MessageEdit(
                title=title,
                body=text,
                variants=variants,
                require_reack=require_reack,
                remind_after_hours=remind_after,
                max_reminders=max_reminders,
                escalate=escalate,
            ),
            utcnow(),
        )
        version = result.message.version
    change = f"now version {version}" if result.material else f"still version {version}"
    typer.echo(f"edited message {message_id}: {change}")
    if require_reack:
        typer.echo(
            f"acknowledgements of earlier versions no longer count; {result.reack_sends} "
            "re-sends planned for people who have not acknowledged this version"
        )
