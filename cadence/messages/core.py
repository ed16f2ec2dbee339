"""Core messages: defining them, and the life-cycle verbs (pause, resume, cancel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, selectinload

from cadence.config import KNOWN_CHANNELS
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.inputs import check_day, control_problem, day_problem, nul_problem
from cadence.messages.attention import clear as clear_attention
from cadence.messages.personalise import check_template
from cadence.planning.recurrence import parse_rule, zone
from cadence.store.bulk import affected, insert_ignoring_duplicates
from cadence.store.models import (
    Cadence,
    Delivery,
    DeliveryStatus,
    Message,
    MessageKind,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    Variant,
)

MAX_TITLE = 200
MAX_BODY = 40_000


@dataclass
class CadenceSpec:
    """When a core message repeats. `timezone` None means each recipient's own zone."""

    rrule: str
    start: datetime  # naive wall-clock DTSTART
    end_date: date | None = None
    timezone: str | None = None


@dataclass
class CoreMessageSpec:
    title: str
    body: str
    audience: Audience
    cadence: CadenceSpec
    variants: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=lambda: ["slack", "email"])
    channel_mode: str = "first"  # or "all"
    remind_after_hours: float | None = None  # None: the default from settings
    max_reminders: int | None = None
    escalate: bool | None = None


def combine_start(start: str, at: str | None) -> datetime:
    """`--start DATE --at HH:MM`, or `--start DATETIME`, as a naive wall-clock time."""
    from cadence.planning.recurrence import parse_start, parse_wall_time

    text = start.strip()
    if "T" in text or " " in text:
        if at:
            raise InputError("give the time either in --start or with --at, not both")
        return parse_start(text)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InputError(f"bad start {start!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    check_day(day, "start")
    if not at:
        raise InputError("--at HH:MM is required when --start is a date")
    wall: time = parse_wall_time(at)
    return datetime.combine(day, wall)


#: A problem with one field of a definition: (field, line). Fields are `title`, `body`,
#: `variant N`, `channels`, `channel_mode`, `timezone`, `rrule`, `start`, `end_date`,
#: `remind_after_hours` and `max_reminders`, so a form can show each line by its field.
FieldProblem = tuple[str, str]


def validate_spec(spec: CoreMessageSpec) -> list[str]:
    """Every problem with a message definition, as lines for one InputError."""
    return [line for _, line in spec_problems(spec)]


def spec_problems(spec: CoreMessageSpec) -> list[FieldProblem]:
    """`validate_spec`, each line with the field it is about."""
    problems = content_problems(spec.title, spec.body, spec.variants)
    problems += followup_problems(spec.remind_after_hours, spec.max_reminders)
    known = list(KNOWN_CHANNELS)
    if not spec.channels:
        problems.append(("channels", "no channel given"))
    for channel in spec.channels:
        if channel not in known:
            problems.append(
                ("channels", f"unknown channel {channel!r} (available: {', '.join(known)})")
            )
    if spec.channel_mode not in ("first", "all"):
        problems.append(
            ("channel_mode", f"unknown channel mode {spec.channel_mode!r} (first or all)")
        )
    fixed = None
    if spec.cadence.timezone is not None:
        try:
            fixed = zone(spec.cadence.timezone)
        except InputError as exc:
            problems.append(("timezone", str(exc)))
    try:
        parse_rule(spec.cadence.rrule, spec.cadence.start, tz=fixed)
    except InputError as exc:
        # The rule is read against its start, whose year is checked there too.
        problems.append(("start" if str(exc).startswith("bad start") else "rrule", str(exc)))
    end = spec.cadence.end_date
    if end is not None and (why := day_problem(end, "end date")):
        problems.append(("end_date", why))
    if end is not None and end < spec.cadence.start.date():
        problems.append(
            ("end_date", f"end date {end} is before the start {spec.cadence.start.date()}")
        )
    return problems


def add_core_message(
    session: Session,
    spec: CoreMessageSpec,
    now: datetime,
    status: MessageStatus = MessageStatus.ACTIVE,
) -> Message:
    """Store a core message and its cadence; the planner schedules it on the next tick
    (when it is `active`: a draft waits for its author)."""
    problems = validate_spec(spec)
    if problems:
        raise InputError("message refused:", problems)
    message = Message(
        kind=MessageKind.CORE.value,
        title=spec.title.strip(),
        body=spec.body,
        status=status.value,
        audience=spec.audience.to_json(),
        channels=list(dict.fromkeys(spec.channels)),
        channel_mode=spec.channel_mode,
        remind_after_hours=spec.remind_after_hours,
        max_reminders=spec.max_reminders,
        escalate=spec.escalate,
        version=1,
        created_at=now,
        updated_at=now,
    )
    message.variants = [Variant(position=i, body=b) for i, b in enumerate(spec.variants, start=1)]
    message.cadence = Cadence(
        rrule=spec.cadence.rrule.strip().removeprefix("RRULE:").upper(),
        start_local=spec.cadence.start,
        end_date=spec.cadence.end_date,
        timezone=spec.cadence.timezone,
    )
    session.add(message)
    session.flush()
    return message


def get_message(session: Session, message_id: int) -> Message:
    message = session.get(
        Message, message_id, options=[selectinload(Message.variants), selectinload(Message.cadence)]
    )
    if message is None:
        raise InputError(f"no message with id {message_id}")
    return message


def list_messages(session: Session, include_cancelled: bool = False) -> list[Message]:
    stmt = select(Message).options(selectinload(Message.cadence)).order_by(Message.id)
    if not include_cancelled:
        stmt = stmt.where(Message.status != MessageStatus.CANCELLED.value)
    return list(session.scalars(stmt))


def pause(session: Session, message_id: int, now: datetime) -> Message:
    """Stop sending; occurrences that fall due while paused are skipped, not sent late."""
    message = get_message(session, message_id)
    _require_status(message, MessageStatus.ACTIVE, "pause")
    message.status = MessageStatus.PAUSED.value
    message.updated_at = now
    return message


def resume(session: Session, message_id: int, now: datetime) -> Message:
    message = get_message(session, message_id)
    _require_status(message, MessageStatus.PAUSED, "resume")
    message.status = MessageStatus.ACTIVE.value
    message.updated_at = now
    clear_attention(message)
    if message.cadence is not None:
        message.cadence.planned_until = None  # plan again from now
    return message


def cancel(session: Session, message_id: int, now: datetime) -> tuple[Message, int, int]:
    """Withdraw everything not yet sent. Returns (message, occurrences, deliveries) cancelled."""
    message = get_message(session, message_id)
    if message.status == MessageStatus.CANCELLED.value:
        raise InputError(f"message {message_id} is already cancelled")
    message.status = MessageStatus.CANCELLED.value
    message.updated_at = now
    occurrences = affected(
        session,
        update(Occurrence)
        .where(*planned_sends(message_id))
        .values(status=OccurrenceStatus.CANCELLED.value, note="message cancelled"),
    )
    deliveries = affected(
        session,
        update(Delivery)
        .where(*unsent_deliveries(message_id))
        .values(status=DeliveryStatus.CANCELLED.value, last_error="message cancelled"),
    )
    return message, occurrences, deliveries


def planned_sends(message_id: int) -> list[ColumnElement[bool]]:
    """WHERE over Occurrence: what `cancel` withdraws and a pause leaves to be skipped, so
    a confirmation can count exactly what the action will touch."""
    return [
        Occurrence.message_id == message_id,
        Occurrence.status == OccurrenceStatus.PLANNED.value,
    ]


def unsent_deliveries(message_id: int) -> list[ColumnElement[bool]]:
    """WHERE over Delivery: the written but unsent deliveries `cancel` withdraws."""
    pending = select(Occurrence.id).where(Occurrence.message_id == message_id)
    return [
        Delivery.occurrence_id.in_(pending),
        Delivery.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.QUEUED.value]),
    ]


def _require_status(message: Message, expected: MessageStatus, verb: str) -> None:
    if message.status != expected.value:
        raise InputError(f"cannot {verb} message {message.id}: it is {message.status}")


def describe(message: Message) -> dict[str, Any]:
    """A message as plain data for `message show` and `message list --format json`."""
    cad = message.cadence
    return {
        "id": message.id,
        "kind": message.kind,
        "title": message.title,
        "status": message.status,
        "audience": Audience.from_json(message.audience).describe(),
        "channels": ",".join(message.channels)
        + (" (all)" if message.channel_mode == "all" else ""),
        "rrule": cad.rrule if cad else None,
        "start": cad.start_local.isoformat(timespec="minutes") if cad else None,
        "end": cad.end_date.isoformat() if cad and cad.end_date else None,
        "timezone": (cad.timezone or "recipient") if cad else None,
        "variants": 1 + len(message.variants),
        "version": message.version,
        "ack_version": message.ack_version,
        "remind_after_hours": message.remind_after_hours,
        "max_reminders": message.max_reminders,
        "escalate": message.escalate,
        "attention": message.attention,
    }


@dataclass
class MessageEdit:
    """Changes to a message; None leaves a field as it is."""

    title: str | None = None
    body: str | None = None
    variants: list[str] | None = None  # replaces every extra wording
    require_reack: bool = False
    remind_after_hours: float | None = None
    max_reminders: int | None = None
    escalate: bool | None = None


@dataclass(frozen=True)
class EditResult:
    message: Message
    material: bool
    reack_sends: int


def edit_message(session: Session, message_id: int, edit: MessageEdit, now: datetime) -> EditResult:
    """Apply an edit. A change of title or wording is material: the version goes up, and
    with `require_reack` earlier acknowledgements stop counting and everyone sent the latest
    repetition who has not acknowledged the new version gets it again now."""
    message = get_message(session, message_id)
    if message.status == MessageStatus.CANCELLED.value:
        raise InputError(f"message {message_id} is cancelled and cannot be edited")
    title = edit.title if edit.title is not None else message.title
    body = edit.body if edit.body is not None else message.body
    variants = edit.variants if edit.variants is not None else [v.body for v in message.variants]
    problems = validate_content(title, body, variants)
    problems += validate_followups(edit.remind_after_hours, edit.max_reminders)
    material = (title.strip(), body, variants) != (
        message.title,
        message.body,
        [v.body for v in message.variants],
    )
    if edit.require_reack and not material:
        problems.append("--require-reack needs a changed title or wording")
    if problems:
        raise InputError("edit refused:", problems)
    if material:
        message.title = title.strip()
        message.body = body
        _replace_wordings(message, variants)
        message.version += 1
    if edit.remind_after_hours is not None:
        message.remind_after_hours = edit.remind_after_hours
    if edit.max_reminders is not None:
        message.max_reminders = edit.max_reminders
    if edit.escalate is not None:
        message.escalate = edit.escalate
    message.updated_at = now
    clear_attention(message)
    if message.cadence is not None:
        message.cadence.planned_until = None  # try planning again with what changed
    sends = 0
    if edit.require_reack:
        message.ack_version = message.version
        sends = _plan_reack(session, message, now)
    session.flush()
    return EditResult(message, material, sends)


def _replace_wordings(message: Message, variants: list[str]) -> None:
    """Rewrite the extra wordings in place, position by position. Assigning a fresh list
    would insert the new rows before the old ones are deleted, against the unique
    (message, position) key."""
    kept = message.variants[: len(variants)]
    for row, text in zip(kept, variants, strict=False):
        row.body = text
    extra = [Variant(position=i, body=b) for i, b in enumerate(variants, start=1)][len(kept) :]
    message.variants = kept + extra


def _plan_reack(session: Session, message: Message, now: datetime) -> int:
    """An occurrence due now for the latest repetition in each zone, sent to whoever has
    not acknowledged the new version (decided when it is dispatched)."""
    newest = latest_repetitions(session, message.id)
    rows = [
        {
            "message_id": message.id,
            "purpose": "reack",
            "parent_id": root.id,
            "follow_up": message.version,
            "sequence": root.sequence,
            "zone": root.zone,
            "local_time": root.local_time,
            "due_at": now,
            "status": OccurrenceStatus.PLANNED.value,
        }
        for root in newest.values()
    ]
    return insert_ignoring_duplicates(session, Occurrence, rows)


def latest_repetitions(session: Session, message_id: int) -> dict[str, Occurrence]:
    """The newest repetition sent in each zone: what a re-acknowledgement follows up."""
    latest = session.execute(
        select(Occurrence)
        .where(Occurrence.message_id == message_id, Occurrence.purpose == "cadence")
        .where(Occurrence.status == OccurrenceStatus.DISPATCHED.value)
        .order_by(Occurrence.zone, Occurrence.sequence.desc())
    ).scalars()
    newest: dict[str, Occurrence] = {}
    for occurrence in latest:
        newest.setdefault(occurrence.zone, occurrence)
    return newest


def validate_content(title: str, body: str, variants: list[str]) -> list[str]:
    return [line for _, line in content_problems(title, body, variants)]


def content_problems(title: str, body: str, variants: list[str]) -> list[FieldProblem]:
    """`validate_content`, each line with its field (`title`, `body`, `variant N`)."""
    problems: list[FieldProblem] = []
    if not title.strip():
        problems.append(("title", "title is empty"))
    elif len(title) > MAX_TITLE:
        problems.append(("title", f"title is longer than {MAX_TITLE} characters"))
    elif why := control_problem(title, "title"):
        problems.append(("title", why))
    for label, text in [("body", body)] + [
        (f"variant {i}", v) for i, v in enumerate(variants, start=1)
    ]:
        if not text.strip():
            problems.append((label, f"{label} is empty"))
        elif len(text) > MAX_BODY:
            problems.append((label, f"{label} is longer than {MAX_BODY} characters"))
        elif why := nul_problem(text, label):
            problems.append((label, why))
        else:
            # Caught now, not at send time for each of thousands of people.
            problems += [(label, line) for line in check_template(text, label)]
    return problems


def validate_followups(remind_after_hours: float | None, max_reminders: int | None) -> list[str]:
    return [line for _, line in followup_problems(remind_after_hours, max_reminders)]


def followup_problems(
    remind_after_hours: float | None, max_reminders: int | None
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if remind_after_hours is not None and not 0 <= remind_after_hours <= 24 * 60:
        problems.append(
            ("remind_after_hours", "--remind-after must be from 0 (never) to 1440 hours")
        )
    if max_reminders is not None and not 0 <= max_reminders <= 20:
        problems.append(("max_reminders", "--max-reminders must be from 0 to 20"))
    return problems
