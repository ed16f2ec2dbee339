"""Launches: staff hear it before customers, and through their team leaders first.

A launch is a message with a customer-announcement time. Its audience is released down the
reporting tree: leaders get a briefing first, and each person's message goes out when their
manager acknowledges, or at the manager's deadline ("leader bypassed", escalated to the
silent leader's own manager). A guard sends it at once to anyone still without it when
everyone should have had it, and anything received after the customer time is a breach.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cadence.config import KNOWN_CHANNELS, Settings
from cadence.directory.audience import Audience, audience_filter, effective_zone
from cadence.errors import InputError
from cadence.messages.attention import isolated
from cadence.messages.channel_choice import channels_for, fallback_channel
from cadence.messages.core import get_message, validate_content
from cadence.messages.markdown import md_escape
from cadence.planning.followups import WorkingHours
from cadence.planning.launch_timeline import (
    Member,
    Release,
    Timeline,
    TimelinePolicy,
    plan_timeline,
    problems,
)
from cadence.planning.recurrence import parse_start, zone
from cadence.rendering import render
from cadence.store.bulk import insert_ignoring_duplicates
from cadence.store.db import session_scope
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Launch,
    LeaderNote,
    Message,
    MessageKind,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    Person,
)

LAUNCH_PURPOSE = "launch"
MAX_COPY = 20_000


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


def members_for(session: Session, audience: Audience, org_zone: str) -> list[Member]:
    rows = session.execute(
        select(Person.id, Person.email, Person.name, Person.manager_id, effective_zone(org_zone))
        .where(audience_filter(audience))
        .order_by(Person.id)
    )
    return [Member(pid, email, name, manager, tz) for pid, email, name, manager, tz in rows]


def plan(session: Session, message: Message, launch: Launch, ctx: LaunchContext) -> Timeline:
    members = members_for(session, Audience.from_json(message.audience), ctx.org_zone)
    return plan_timeline(members, launch.customer_at, launch.planned_from, _policy(launch, ctx))


def _validate(spec: LaunchSpec, now: datetime) -> list[str]:
    found = validate_content(spec.title, spec.body, [])
    if not spec.customer_copy.strip():
        found.append("customer copy is empty")
    elif len(spec.customer_copy) > MAX_COPY:
        found.append(f"customer copy is longer than {MAX_COPY} characters")
    if spec.customer_at <= now:
        found.append(f"the customer time {spec.customer_at.isoformat()} has already passed")
    if spec.lead_hours < 0 or spec.margin_minutes < 0:
        found.append("--lead and --margin cannot be negative")
    if spec.leader_lead_hours is not None and spec.leader_lead_hours <= 0:
        found.append("--leader-lead must be positive (or left out for one working day)")
    return found


def add_launch(session: Session, spec: LaunchSpec, now: datetime, ctx: LaunchContext) -> Message:
    """Store a launch, or refuse it when its timeline cannot reach everyone in time."""

    found = _validate(spec, now)
    known = list(KNOWN_CHANNELS)
    found += [f"unknown channel {c!r}" for c in spec.channels if c not in known]
    if found:
        raise InputError("launch refused:", found)
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
    timeline = plan(session, message, launch, ctx)
    _refuse_if_late(timeline)
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


def _refuse_if_late(timeline: Timeline) -> None:
    if not timeline.releases:
        raise InputError("launch refused: nobody is in its audience")
    found = problems(timeline)
    if found:
        minutes = timeline.fanout.total_seconds() / 60
        if minutes >= 1:
            # Often the reason: at the workspace's send rate, reaching everyone takes time.
            found.append(
                f"fan-out: sending to {len(timeline.releases)} people at the configured rate "
                f"takes {minutes:.0f} minutes (CADENCE_SLACK_RATE_PER_MINUTE)"
            )
        raise InputError("launch refused: staff would not all have it before customers", found)


def get_launch(session: Session, message_id: int) -> tuple[Message, Launch]:
    message = get_message(session, message_id)
    launch = session.scalar(select(Launch).where(Launch.message_id == message_id))
    if launch is None or message.kind != MessageKind.LAUNCH.value:
        raise InputError(f"message {message_id} is not a launch")
    return message, launch


def launch_occurrence(session: Session, message_id: int) -> Occurrence:
    occurrence = session.scalar(
        select(Occurrence).where(
            Occurrence.message_id == message_id, Occurrence.purpose == LAUNCH_PURPOSE
        )
    )
    assert occurrence is not None
    return occurrence


# ---------------------------------------------------------------------------------------
# Release, run by every dispatcher tick


@dataclass
class ReleaseReport:
    released: dict[str, int] = field(default_factory=dict)
    escalations: int = 0


def release_due(
    sessions: sessionmaker[Session], now: datetime, ctx: LaunchContext
) -> ReleaseReport:
    """Release what is due in every launch still in progress, each in a transaction of its
    own: a launch that cannot be released (a bad template, a broken audience) is flagged and
    skipped, and the other launches go on."""
    report = ReleaseReport()
    with session_scope(sessions) as session:
        open_launches = session.execute(
            select(Occurrence.id, Message.id)
            .join(Message, Occurrence.message_id == Message.id)
            .join(Launch, Launch.message_id == Message.id)
            .where(Occurrence.purpose == LAUNCH_PURPOSE)
            .where(Occurrence.status.in_([OccurrenceStatus.PLANNED.value, "dispatching"]))
            .where(Message.status == MessageStatus.ACTIVE.value)
        ).all()
    for occurrence_id, message_id in open_launches:

        def work(session: Session, occurrence_id: int = occurrence_id) -> None:
            occurrence = session.get(Occurrence, occurrence_id)
            assert occurrence is not None
            message = occurrence.message
            launch = session.scalars(select(Launch).where(Launch.message_id == message.id)).one()
            _release_one(session, occurrence, message, launch, now, ctx, report)

        isolated(sessions, message_id, "releasing the launch", now, work)
    return report


def _release_one(
    session: Session,
    occurrence: Occurrence,
    message: Message,
    launch: Launch,
    now: datetime,
    ctx: LaunchContext,
    report: ReleaseReport,
) -> None:
    timeline = plan(session, message, launch, ctx)
    releases = {r.person_id: r for r in timeline.releases}
    delivered: dict[int, list[Delivery]] = {}
    for d in session.scalars(select(Delivery).where(Delivery.occurrence_id == occurrence.id)):
        delivered.setdefault(d.person_id, []).append(d)
    answered = set(
        session.scalars(
            select(Acknowledgement.person_id).where(
                Acknowledgement.occurrence_id == occurrence.id,
                Acknowledgement.counted.is_(True),
            )
        )
    )
    guard = timeline.everyone_by
    preferred = dict(
        session.execute(
            select(Person.id, Person.channel).where(Person.id.in_(list(releases)))
        ).all()
    )
    rows: list[dict[str, Any]] = []
    bypassed: list[Release] = []
    for release in timeline.releases:
        if release.person_id in delivered:
            rows += _retry_failed(delivered[release.person_id], message, now, guard)
            continue
        reason = _release_reason(release, releases, answered, now, guard, launch.customer_at)
        if reason is None:
            continue
        if reason == "leader bypassed" and release.manager_id is not None:
            bypassed.append(releases[release.manager_id])
        for channel in channels_for(
            preferred.get(release.person_id), message.channels, message.channel_mode
        ):
            rows.append(
                {
                    "occurrence_id": occurrence.id,
                    "person_id": release.person_id,
                    "channel": channel,
                    "variant": 0,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "created_at": now,
                    "payload": {"briefing": release.briefing, "release": reason},
                }
            )
        report.released[reason] = report.released.get(reason, 0) + 1
    insert_ignoring_duplicates(session, Delivery, rows)
    if bypassed:
        report.escalations += _escalate_bypasses(session, occurrence, message, bypassed, now)
    occurrence.status = "dispatching"
    occurrence.claimed_at = now
    if now >= launch.customer_at and all(r.person_id in delivered for r in timeline.releases):
        occurrence.status = OccurrenceStatus.DISPATCHED.value
        occurrence.dispatched_at = now


def _release_reason(
    release: Release,
    releases: dict[int, Release],
    answered: set[int],
    now: datetime,
    guard: datetime,
    customer_at: datetime,
) -> str | None:
    """Why `release` goes out now, or None if it waits."""
    if now >= guard:
        # Everyone should have had it by now: late joiners and stragglers get it at once.
        return "guard"
    if release.manager_id is None:
        return "start" if now >= release.release_at else None
    manager = releases.get(release.manager_id)
    if release.manager_id in answered:
        return "briefed by leader"
    if manager is not None and manager.deadline is not None and now >= manager.deadline:
        return "leader bypassed"
    return None


def _retry_failed(
    deliveries: list[Delivery], message: Message, now: datetime, guard: datetime
) -> list[dict[str, Any]]:
    """At the guard, someone whose every delivery failed is tried on a channel not yet used."""
    if now < guard or any(d.status != DeliveryStatus.FAILED.value for d in deliveries):
        return []
    channel = fallback_channel(message.channels, [d.channel for d in deliveries])
    if channel is None:
        return []
    first = deliveries[0]
    return [
        {
            "occurrence_id": first.occurrence_id,
            "person_id": first.person_id,
            "channel": channel,
            "variant": 0,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "payload": {**(first.payload or {}), "release": "guard"},
            "fallback_from_id": first.id,
        }
    ]


def _escalate_bypasses(
    session: Session,
    occurrence: Occurrence,
    message: Message,
    silent: list[Release],
    now: datetime,
) -> int:
    """Tell each silent leader's own manager, once per launch."""
    leaders = {
        p.id: p
        for p in session.scalars(select(Person).where(Person.id.in_([r.person_id for r in silent])))
    }
    by_manager: dict[int, list[dict[str, str]]] = {}
    for leader in leaders.values():
        if leader.manager_id is not None:
            by_manager.setdefault(leader.manager_id, []).append(
                {"name": leader.name, "email": leader.email}
            )
    if not by_manager:
        return 0
    escalation = _follow_up_now(session, message.id, occurrence.id, "escalation", 1, now)
    managers = dict(
        session.execute(
            select(Person.id, Person.channel).where(
                Person.id.in_(list(by_manager)), Person.active.is_(True)
            )
        ).all()
    )
    rows = [
        {
            "occurrence_id": escalation,
            "person_id": manager_id,
            "channel": channels_for(managers[manager_id], message.channels, "first")[0],
            "variant": 0,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "payload": {"people": people, "bypass": True},
        }
        for manager_id, people in by_manager.items()
        if manager_id in managers
    ]
    return insert_ignoring_duplicates(session, Delivery, rows)


# ---------------------------------------------------------------------------------------
# What a launch delivery says


def launch_content(
    delivery: Delivery, message: Message, body: str, recipient_zone: str, session: Session
) -> tuple[str, str, str | None, bool]:
    """(title, Markdown body, leader note, answerable) for a delivery of a launch."""
    launch = session.scalar(select(Launch).where(Launch.message_id == message.id))
    assert launch is not None
    purpose = delivery.occurrence.purpose
    payload = delivery.payload or {}
    when = launch.customer_at.astimezone(zone(recipient_zone)).strftime("%A %d %B %Y, %H:%M %Z")
    if purpose == "escalation":
        people = [
            {"name": md_escape(p["name"]), "email": md_escape(p["email"])}
            for p in payload.get("people", [])
        ]
        text = render("launch/bypass.md", people=people, title=md_escape(message.title),
                      customer_at=when)  # fmt: skip
        return f"Briefing not acknowledged: {message.title}", text, None, False
    if purpose == "correction":
        if payload.get("withdrawn"):
            return f"Withdrawn: {message.title}", render("launch/withdrawn.md"), None, False
        text = render(
            "launch/correction.md", body=body, customer_copy=launch.customer_copy, customer_at=when
        )
        return f"Correction: {message.title}", text, None, True
    if payload.get("briefing"):
        text = render(
            "launch/briefing.md",
            body=body,
            talking_points=launch.talking_points,
            customer_copy=launch.customer_copy,
            faq=launch.faq,
            customer_at=when,
            release_hint="when you acknowledge, or by your deadline",
            message_id=message.id,
            leader_email=delivery.person.email,
        )
        return f"Leader briefing: {message.title}", text, None, True
    note = None
    if delivery.person.manager_id is not None:
        note = session.scalar(
            select(LeaderNote.note).where(
                LeaderNote.message_id == message.id,
                LeaderNote.leader_id == delivery.person.manager_id,
            )
        )
    text = render(
        "launch/staff.md", body=body, customer_copy=launch.customer_copy, customer_at=when
    )
    return message.title, text, note, True


# ---------------------------------------------------------------------------------------
# Notes, changes, figures


def set_note(
    session: Session, message_id: int, leader_email: str, text: str, now: datetime
) -> None:
    """A leader's note for their team; it goes with messages not yet sent."""
    message, _ = get_launch(session, message_id)
    leader = session.scalar(select(Person).where(Person.email == leader_email.strip().lower()))
    if leader is None:
        raise InputError(f"no person with email {leader_email.strip().lower()}")
    reports = session.scalar(
        select(Person.id).where(Person.manager_id == leader.id, Person.active.is_(True)).limit(1)
    )
    if reports is None:
        raise InputError(f"{leader.email} leads no one, so has no team to write to")
    note = text.strip()
    if not note:
        raise InputError("the note is empty")
    if len(note) > 2000:
        raise InputError("the note is longer than 2000 characters")
    existing = session.scalar(
        select(LeaderNote).where(
            LeaderNote.message_id == message.id, LeaderNote.leader_id == leader.id
        )
    )
    if existing is None:
        session.add(LeaderNote(message_id=message.id, leader_id=leader.id, note=note,
                               created_at=now))  # fmt: skip
    else:
        existing.note, existing.created_at = note, now
    session.flush()


@dataclass
class LaunchEdit:
    title: str | None = None
    body: str | None = None
    customer_copy: str | None = None
    talking_points: str | None = None
    faq: str | None = None
    customer_at: datetime | None = None


def edit_launch(
    session: Session, message_id: int, edit: LaunchEdit, now: datetime, ctx: LaunchContext
) -> tuple[Message, int]:
    """Change a launch before its customer time. Messages not yet sent go out as edited;
    everyone who already had it gets a correction. Returns (message, corrections)."""
    message, launch = get_launch(session, message_id)
    if message.status == MessageStatus.CANCELLED.value:
        raise InputError(f"launch {message_id} is cancelled")
    if now >= launch.customer_at:
        raise InputError("customers have already been told: a launch cannot change after that")
    spec = LaunchSpec(
        title=edit.title if edit.title is not None else message.title,
        body=edit.body if edit.body is not None else message.body,
        customer_copy=(
            edit.customer_copy if edit.customer_copy is not None else launch.customer_copy
        ),
        customer_at=edit.customer_at or launch.customer_at,
        customer_zone=launch.customer_zone,
        audience=Audience.from_json(message.audience),
    )
    found = _validate(spec, now)
    if found:
        raise InputError("edit refused:", found)
    material = (spec.title.strip(), spec.body, spec.customer_copy) != (
        message.title,
        message.body,
        launch.customer_copy,
    )
    if edit.customer_at is not None and edit.customer_at != launch.customer_at:
        launch.customer_at = edit.customer_at
        launch.planned_from = now
        _refuse_if_late(plan(session, message, launch, ctx))
    message.title, message.body, launch.customer_copy = (
        spec.title.strip(),
        spec.body,
        spec.customer_copy,
    )
    if edit.talking_points is not None:
        launch.talking_points = edit.talking_points
    if edit.faq is not None:
        launch.faq = edit.faq
    message.updated_at = now
    corrections = 0
    if material:
        message.version += 1
        # Answers to what was first sent are kept, marked with their version; they no
        # longer count as acknowledging what customers will now be told.
        message.ack_version = message.version
        corrections = _send_to_recipients(session, message, now, {"correction": message.version})
    session.flush()
    return message, corrections


def cancel_launch(session: Session, message_id: int, now: datetime) -> tuple[int, int]:
    """Withdraw a launch: nothing more is sent, and whoever had it is told it is off."""
    from cadence.messages.core import cancel

    message, launch = get_launch(session, message_id)
    if now >= launch.customer_at:
        raise InputError("customers have already been told: cancel is no longer possible")
    withdrawn_notices = _send_to_recipients(session, message, now, {"withdrawn": True})
    _, _, withdrawn = cancel(session, message_id, now)
    # The notices themselves must still go out.
    notices = select(Occurrence.id).where(
        Occurrence.message_id == message_id, Occurrence.purpose == "correction"
    )
    session.execute(
        update(Delivery)
        .where(Delivery.occurrence_id.in_(notices))
        .where(Delivery.last_error == "message cancelled")
        .values(status=DeliveryStatus.PENDING.value, last_error=None)
    )
    session.execute(
        update(Occurrence)
        .where(Occurrence.message_id == message_id, Occurrence.purpose == LAUNCH_PURPOSE)
        .values(status=OccurrenceStatus.CANCELLED.value)
    )
    return withdrawn, withdrawn_notices


def _send_to_recipients(
    session: Session, message: Message, now: datetime, payload: dict[str, Any]
) -> int:
    """A follow-up to everyone the launch already reached (a correction or a withdrawal)."""
    root = launch_occurrence(session, message.id)
    reached = session.execute(
        select(Delivery.person_id, Delivery.channel).where(
            Delivery.occurrence_id == root.id, Delivery.status == DeliveryStatus.SENT.value
        )
    ).all()
    if not reached:
        return 0
    number = message.version if "correction" in payload else 10_000 + message.version
    correction = _follow_up_now(session, message.id, root.id, "correction", number, now)
    rows = [
        {
            "occurrence_id": correction,
            "person_id": person_id,
            "channel": channel,
            "variant": 0,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "payload": payload,
        }
        for person_id, channel in reached
    ]
    return insert_ignoring_duplicates(session, Delivery, rows)


def _follow_up_now(
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


def launch_status(
    session: Session, message_id: int, ctx: LaunchContext, now: datetime
) -> dict[str, Any]:
    """The figures of one launch: reach and acknowledgement before customers, leaders
    briefed before their teams, bypasses, lead time, and breaches."""
    message, launch = get_launch(session, message_id)
    root = launch_occurrence(session, message_id)
    timeline = plan(session, message, launch, ctx)
    audience = {r.person_id: r for r in timeline.releases}
    first_sent: dict[int, datetime] = {}
    reasons: dict[int, str] = {}
    for d in session.scalars(select(Delivery).where(Delivery.occurrence_id == root.id)):
        reasons.setdefault(d.person_id, (d.payload or {}).get("release", ""))
        if d.status == DeliveryStatus.SENT.value and d.sent_at is not None:
            first_sent[d.person_id] = min(first_sent.get(d.person_id, d.sent_at), d.sent_at)
    acked_at = {
        a.person_id: a.created_at
        for a in session.scalars(
            select(Acknowledgement)
            .where(Acknowledgement.occurrence_id == root.id, Acknowledgement.counted.is_(True))
            # An answer to what was corrected since no longer counts.
            .where(Acknowledgement.message_version >= message.ack_version)
            .order_by(Acknowledgement.id.desc())
        )
    }
    customer_at = launch.customer_at
    n = len(audience) or 1
    reached_before = [p for p, at in first_sent.items() if p in audience and at <= customer_at]
    acked_before = [p for p, at in acked_at.items() if p in audience and at <= customer_at]
    breaches = sorted(
        audience[p].email for p, at in first_sent.items() if p in audience and at > customer_at
    )
    with_leader = [
        r for r in audience.values() if r.manager_id is not None and r.person_id in first_sent
    ]
    briefed_first = [
        r for r in with_leader
        if r.manager_id in first_sent and first_sent[r.manager_id] < first_sent[r.person_id]
    ]  # fmt: skip
    leads = [
        (customer_at - at).total_seconds() / 3600 for p, at in first_sent.items() if p in audience
    ]
    return {
        "launch": message_id,
        "title": message.title,
        "status": message.status,
        "customer_at": customer_at.isoformat(),
        "audience": len(audience),
        "reached": len([p for p in first_sent if p in audience]),
        "reached_before_customers": round(len(reached_before) / n, 4),
        "acknowledged_before_customers": round(len(acked_before) / n, 4),
        "leaders_briefed_before_their_teams": (
            round(len(briefed_first) / len(with_leader), 4) if with_leader else None
        ),
        "released_after_leader_acknowledged": sum(
            1 for r in reasons.values() if r == "briefed by leader"
        ),
        "leader_bypasses": sum(1 for r in reasons.values() if r == "leader bypassed"),
        "released_by_guard": sum(1 for r in reasons.values() if r == "guard"),
        "median_lead_hours": round(statistics.median(leads), 2) if leads else None,
        "breaches": len(breaches),
        "breached": breaches,
        "not_yet_reached": sorted(
            r.email for r in audience.values() if r.person_id not in first_sent
        ),
        "as_of": now.isoformat(timespec="seconds"),
    }


def late_launches(session: Session, now: datetime, ctx: LaunchContext) -> list[str]:
    """Problems with launches still ahead after a directory change: lines naming each launch
    whose timeline no longer reaches everyone in time."""
    found: list[str] = []
    rows = session.execute(
        select(Message, Launch)
        .join(Launch, Launch.message_id == Message.id)
        .where(Message.status == MessageStatus.ACTIVE.value, Launch.customer_at > now)
    ).all()
    for message, launch in rows:
        timeline = plan(session, message, launch, ctx)
        # Whoever joins once the cascade is under way is sent it at once by the guard; what
        # matters is who the plan itself would reach late.
        late = problems(timeline)
        if late:
            found.append(f"launch {message.id} ({message.title}): " + "; ".join(late))
    return found
