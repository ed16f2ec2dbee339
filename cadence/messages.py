"""Core messages: defining them, and the life-cycle verbs (pause, resume, cancel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from cadence.audience import Audience
from cadence.channels.registry import available_channels
from cadence.errors import InputError
from cadence.personalise import check_template
from cadence.planning.recurrence import parse_rule, zone
from cadence.store.bulk import affected
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
    if not at:
        raise InputError("--at HH:MM is required when --start is a date")
    wall: time = parse_wall_time(at)
    return datetime.combine(day, wall)


def validate_spec(spec: CoreMessageSpec) -> list[str]:
    """Every problem with a message definition, as lines for one InputError."""
    problems: list[str] = []
    if not spec.title.strip():
        problems.append("title is empty")
    elif len(spec.title) > MAX_TITLE:
        problems.append(f"title is longer than {MAX_TITLE} characters")
    for label, text in [("body", spec.body)] + [
        (f"variant {i}", v) for i, v in enumerate(spec.variants, start=1)
    ]:
        if not text.strip():
            problems.append(f"{label} is empty")
        elif len(text) > MAX_BODY:
            problems.append(f"{label} is longer than {MAX_BODY} characters")
        else:
            # Caught now, not at send time for each of thousands of people.
            problems += check_template(text, label)
    known = available_channels()
    if not spec.channels:
        problems.append("no channel given")
    for channel in spec.channels:
        if channel not in known:
            problems.append(f"unknown channel {channel!r} (available: {', '.join(known)})")
    if spec.channel_mode not in ("first", "all"):
        problems.append(f"unknown channel mode {spec.channel_mode!r} (first or all)")
    if spec.cadence.timezone is not None:
        try:
            zone(spec.cadence.timezone)
        except InputError as exc:
            problems.append(str(exc))
    try:
        parse_rule(spec.cadence.rrule, spec.cadence.start)
    except InputError as exc:
        problems.append(str(exc))
    end = spec.cadence.end_date
    if end is not None and end < spec.cadence.start.date():
        problems.append(f"end date {end} is before the start {spec.cadence.start.date()}")
    return problems


def add_core_message(session: Session, spec: CoreMessageSpec, now: datetime) -> Message:
    """Store a core message and its cadence; the planner schedules it on the next tick."""
    problems = validate_spec(spec)
    if problems:
        raise InputError("message refused:", problems)
    message = Message(
        kind=MessageKind.CORE.value,
        title=spec.title.strip(),
        body=spec.body,
        status=MessageStatus.ACTIVE.value,
        audience=spec.audience.to_json(),
        channels=list(dict.fromkeys(spec.channels)),
        channel_mode=spec.channel_mode,
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
        .where(Occurrence.message_id == message_id)
        .where(Occurrence.status == OccurrenceStatus.PLANNED.value)
        .values(status=OccurrenceStatus.CANCELLED.value, note="message cancelled"),
    )
    pending = select(Occurrence.id).where(Occurrence.message_id == message_id)
    deliveries = affected(
        session,
        update(Delivery)
        .where(Delivery.occurrence_id.in_(pending))
        .where(Delivery.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.QUEUED.value]))
        .values(status=DeliveryStatus.CANCELLED.value, last_error="message cancelled"),
    )
    return message, occurrences, deliveries


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
    }
