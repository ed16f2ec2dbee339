"""Launches: staff hear it before customers, and through their team leaders first.

A launch is a message with a customer-announcement time. Its audience is released down the
reporting tree: leaders get a briefing first, and each person's message goes out when their
manager acknowledges, or at the manager's deadline ("leader bypassed", escalated to the
silent leader's own manager). A guard sends it at once to anyone still without it when
everyone should have had it, and anything received after the customer time is a breach.

This module adds launches and plans their timelines; `release` runs the cascade each tick,
`content` says what each delivery says, `changes` handles notes, edits and cancelling, and
`status` measures how it went.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cadence.access.policy import sender_limit
from cadence.config import KNOWN_CHANNELS, Settings
from cadence.directory.audience import Audience, audience_filter, effective_zone
from cadence.errors import InputError
from cadence.inputs import day_problem, nul_problem
from cadence.messages.core import validate_content
from cadence.planning.followups import WorkingHours
from cadence.planning.launch_timeline import (
    Member,
    Timeline,
    TimelinePolicy,
    plan_timeline,
    problems,
)
from cadence.planning.recurrence import parse_start, zone
from cadence.store.bulk import insert_ignoring_duplicates
from cadence.store.models import (
    Launch,
    Message,
    MessageKind,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    Person,
)

LAUNCH_PURPOSE = "launch"
MAX_COPY = 20_000
MAX_LEAD_HOURS = 366 * 24


@dataclass(frozen=True)
class LaunchContext:
    """What launch planning needs from settings."""

    org_zone: str
    rate_per_minute: float
    hours: WorkingHours


def context_from(settings: Settings) -> LaunchContext:
    return LaunchContext(
        org_zone=settings.timezone,
        rate_per_minute=settings.slack_rate_per_minute,
        hours=WorkingHours.parse(settings.work_start, settings.work_end, settings.work_days),
    )


@dataclass
class LaunchSpec:
    title: str
    body: str
    customer_copy: str
    customer_at: datetime  # aware
    customer_zone: str
    audience: Audience
    channels: list[str] = field(default_factory=lambda: ["slack", "email"])
    talking_points: str | None = None
    faq: str | None = None
    lead_hours: float = 24.0
    leader_lead_hours: float | None = None
    margin_minutes: float = 60.0


def parse_customer_time(text: str, zone_name: str) -> datetime:
    """`YYYY-MM-DDTHH:MM` wall-clock time in `zone_name`, as an aware UTC datetime."""
    from datetime import UTC

    from cadence.planning.recurrence import place

    return place(parse_start(text), zone(zone_name)).astimezone(UTC)


def _policy(launch: Launch, ctx: LaunchContext) -> TimelinePolicy:
    return TimelinePolicy(
        lead=timedelta(hours=launch.lead_hours),
        leader_lead=(
            None if launch.leader_lead_hours is None else timedelta(hours=launch.leader_lead_hours)
        ),
        margin=timedelta(minutes=launch.margin_minutes),
        rate_per_minute=ctx.rate_per_minute,
        hours=ctx.hours,
    )


def members_for(
    session: Session,
    audience: Audience,
    org_zone: str,
    within: ColumnElement[bool] | None = None,
) -> list[Member]:
    rows = session.execute(
        select(Person.id, Person.email, Person.name, Person.manager_id, effective_zone(org_zone))
        .where(audience_filter(audience), *([within] if within is not None else []))
        .order_by(Person.id)
    )
    return [Member(pid, email, name, manager, tz) for pid, email, name, manager, tz in rows]


def left_out(session: Session, message: Message) -> int:
    """People in the audience now whom the message's author may not reach (a leader's
    launch to a team that has since gained people outside their tree)."""
    within = sender_limit(session, message)
    if within is None:
        return 0
    audience = audience_filter(Audience.from_json(message.audience))
    stmt = select(func.count()).select_from(Person).where(audience, ~within)
    return int(session.scalar(stmt) or 0)


def plan(session: Session, message: Message, launch: Launch, ctx: LaunchContext) -> Timeline:
    """The launch's timeline over its audience as the directory stands now; a leader's
    launch only over their tree."""
    within = sender_limit(session, message)
    members = members_for(session, Audience.from_json(message.audience), ctx.org_zone, within)
    return plan_timeline(members, launch.customer_at, launch.planned_from, _policy(launch, ctx))


def content_problems(
    title: str, body: str, customer_copy: str, talking_points: str | None, faq: str | None
) -> list[tuple[str, str]]:
    """Every problem with a launch's words, as (field, sentence); the field is one of
    `title`, `body`, `customer_copy`, `talking_points` and `faq`."""
    found = [
        ("title" if line.startswith("title") else "body", line)
        for line in validate_content(title, body, [])
    ]
    extras: dict[str, tuple[str, str | None]] = {
        "customer_copy": ("customer copy", customer_copy),
        "talking_points": ("talking points", talking_points),
        "faq": ("FAQ", faq),
    }
    for key, (what, text) in extras.items():
        if text and (why := nul_problem(text, what)):
            found.append((key, why))
    if not customer_copy.strip():
        found.append(("customer_copy", "customer copy is empty"))
    elif len(customer_copy) > MAX_COPY:
        found.append(("customer_copy", f"customer copy is longer than {MAX_COPY} characters"))
    return found


def timing_problems(
    customer_at: datetime,
    now: datetime,
    lead_hours: float,
    leader_lead_hours: float | None,
    margin_minutes: float,
) -> list[tuple[str, str]]:
    """Every problem with a launch's times, as (field, sentence); the field is one of
    `customer_at`, `lead`, `leader_lead` and `margin`."""
    found: list[tuple[str, str]] = []
    if why := day_problem(customer_at.date(), "the customer time"):
        found.append(("customer_at", why))
    elif customer_at <= now:
        found.append(
            ("customer_at", f"the customer time {customer_at.isoformat()} has already passed")
        )
    hours = {"lead": lead_hours, "margin": margin_minutes, "leader_lead": leader_lead_hours or 0.0}
    if not all(math.isfinite(value) for value in hours.values()):
        bad = next(key for key, value in hours.items() if not math.isfinite(value))
        found.append((bad, "--lead, --leader-lead and --margin must be finite numbers"))
    elif lead_hours < 0 or margin_minutes < 0:
        bad = "lead" if lead_hours < 0 else "margin"
        found.append((bad, "--lead and --margin cannot be negative"))
    else:
        # Beyond a year the plan would count back past the calendar's first day.
        limits = {"lead": (lead_hours, MAX_LEAD_HOURS, "hours")}
        limits["leader_lead"] = (leader_lead_hours or 0.0, MAX_LEAD_HOURS, "hours")
        limits["margin"] = (margin_minutes, MAX_LEAD_HOURS * 60, "minutes")
        for key, (value, most, unit) in limits.items():
            if value > most:
                flag = "--" + key.replace("_", "-")
                found.append((key, f"{flag} must be at most {most:g} {unit} (a year)"))
    if leader_lead_hours is not None and leader_lead_hours <= 0:
        found.append(
            ("leader_lead", "--leader-lead must be positive (or left out for one working day)")
        )
    return found


def channel_problems(channels: list[str]) -> list[tuple[str, str]]:
    known = list(KNOWN_CHANNELS)
    return [("channels", f"unknown channel {c!r}") for c in channels if c not in known]


def launch_problems(spec: LaunchSpec, now: datetime) -> list[tuple[str, str]]:
    """Every problem with a launch before its timeline is planned, each with the field it
    is about, so a form can show it there; `add_launch` refuses with the same lines."""
    return [
        *content_problems(spec.title, spec.body, spec.customer_copy, spec.talking_points, spec.faq),
        *timing_problems(
            spec.customer_at, now, spec.lead_hours, spec.leader_lead_hours, spec.margin_minutes
        ),
        *channel_problems(spec.channels),
    ]


def _validate(spec: LaunchSpec, now: datetime) -> list[str]:
    """The sentences of `launch_problems` but the channels' (an edit keeps its channels)."""
    return [line for key, line in launch_problems(spec, now) if key != "channels"]


def _rows(spec: LaunchSpec, now: datetime) -> tuple[Message, Launch]:
    """The launch's rows, not yet in any session."""
    message = Message(
        kind=MessageKind.LAUNCH.value,
        title=spec.title.strip(),
        body=spec.body,
        status=MessageStatus.ACTIVE.value,
        audience=spec.audience.to_json(),
        channels=list(dict.fromkeys(spec.channels)),
        version=1,
        created_at=now,
        updated_at=now,
        remind_after_hours=0,  # the cascade and its guard take the place of reminders
    )
    launch = Launch(
        message=message,
        customer_at=spec.customer_at,
        customer_zone=spec.customer_zone,
        customer_copy=spec.customer_copy,
        talking_points=spec.talking_points,
        faq=spec.faq,
        lead_hours=spec.lead_hours,
        leader_lead_hours=spec.leader_lead_hours,
        margin_minutes=spec.margin_minutes,
        planned_from=now,
    )
    return message, launch


def check_timeline(
    session: Session, spec: LaunchSpec, now: datetime, ctx: LaunchContext
) -> Timeline:
    """The timeline `add_launch` would plan for this launch now, storing nothing: what a
    composer checks while the launch is still being written (only its audience and times
    matter, so its words may still be unfinished)."""
    message, launch = _rows(spec, now)
    return plan(session, message, launch, ctx)


def add_launch(session: Session, spec: LaunchSpec, now: datetime, ctx: LaunchContext) -> Message:
    """Store a launch, or refuse it when its timeline cannot reach everyone in time."""

    found = [line for _, line in launch_problems(spec, now)]
    if found:
        raise InputError("launch refused:", found)
    message, launch = _rows(spec, now)
    timeline = plan(session, message, launch, ctx)
    if (refused := refusal(timeline)) is not None:
        raise refused
    session.add_all([message, launch])
    session.flush()
    session.add(
        Occurrence(
            message_id=message.id,
            purpose=LAUNCH_PURPOSE,
            sequence=0,
            zone="UTC",
            local_time=timeline.releases[0].release_at.replace(tzinfo=None),
            due_at=timeline.releases[0].release_at,
            status=OccurrenceStatus.PLANNED.value,
        )
    )
    session.flush()
    return message


def refusal(timeline: Timeline) -> InputError | None:
    """Why `add_launch` refuses this timeline (its summary and one line per problem), or
    None when it reaches everyone in time."""
    if not timeline.releases:
        return InputError("launch refused: nobody is in its audience")
    found = problems(timeline)
    if not found:
        return None
    minutes = timeline.fanout.total_seconds() / 60
    if minutes >= 1:
        # Often the reason: at the workspace's send rate, reaching everyone takes time.
        found.append(
            f"fan-out: sending to {len(timeline.releases)} people at the configured rate "
            f"takes {minutes:.0f} minutes (CADENCE_SLACK_RATE_PER_MINUTE)"
        )
    return InputError("launch refused: staff would not all have it before customers", found)


def _refuse_if_late(timeline: Timeline) -> None:
    if (refused := refusal(timeline)) is not None:
        raise refused


def get_launch(session: Session, message_id: int) -> tuple[Message, Launch]:
    """The launch with this id, or an InputError that says there is none, or that the id
    is another kind of message's."""
    message = session.get(Message, message_id)
    if message is None:
        raise InputError(f"no launch with id {message_id}")
    launch = session.scalar(select(Launch).where(Launch.message_id == message_id))
    if launch is None or message.kind != MessageKind.LAUNCH.value:
        raise InputError(f"message {message_id} is not a launch: it is a {message.kind} message")
    return message, launch


def launch_occurrence(session: Session, message_id: int) -> Occurrence:
    occurrence = session.scalar(
        select(Occurrence).where(
            Occurrence.message_id == message_id, Occurrence.purpose == LAUNCH_PURPOSE
        )
    )
    assert occurrence is not None
    return occurrence


def follow_up_now(
    session: Session, message_id: int, parent_id: int, purpose: str, number: int, now: datetime
) -> int:
    """An occurrence of `purpose` following up `parent_id`, dispatched at once (its
    deliveries are written by the caller); the same one if it already exists."""
    insert_ignoring_duplicates(
        session,
        Occurrence,
        [
            {
                "message_id": message_id,
                "purpose": purpose,
                "parent_id": parent_id,
                "follow_up": number,
                "sequence": 0,
                "zone": "UTC",
                "local_time": now.replace(tzinfo=None),
                "due_at": now,
                "status": OccurrenceStatus.DISPATCHED.value,
                "dispatched_at": now,
            }
        ],
    )
    found = session.scalar(
        select(Occurrence.id).where(
            Occurrence.message_id == message_id,
            Occurrence.purpose == purpose,
            Occurrence.parent_id == parent_id,
            Occurrence.follow_up == number,
        )
    )
    assert found is not None
    return found
