"""Releasing a launch, run by every dispatcher tick: each person when their leader has
acknowledged or at the leader's deadline, bypasses escalated, the guard, failed sends retried."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cadence.launches.cascade import (
    LAUNCH_PURPOSE,
    LaunchContext,
    follow_up_now,
    left_out,
    plan,
)
from cadence.messages.attention import isolated
from cadence.messages.channel_choice import channels_for, fallback_channel
from cadence.planning.launch_timeline import (
    Release,
)
from cadence.store.bulk import chunks, insert_ignoring_duplicates
from cadence.store.db import session_scope
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Launch,
    Message,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    Person,
)

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
    # Every member of staff may fall due in one tick: ask in slices.
    preferred: dict[int, str | None] = {}
    for batch in chunks(releases):
        preferred.update(
            session.execute(select(Person.id, Person.channel).where(Person.id.in_(batch))).all()
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
    occurrence.outside_tree = left_out(session, message)
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
    escalation = follow_up_now(session, message.id, occurrence.id, "escalation", 1, now)
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
