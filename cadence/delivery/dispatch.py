"""The dispatcher: due occurrences become deliveries, deliveries become send tasks.

Every step is a conditional UPDATE whose row count (or RETURNING list) decides who owns the
work, so two ticks, two workers or a tick repeated after a crash never do the same thing
twice. The broker is told about work only after the database has recorded it, and work the
broker lost is found again by age (`requeue_stuck`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from cadence.access.policy import sender_limit
from cadence.delivery.follow_ups import follow_up_zones, waiting_for
from cadence.directory.audience import Audience, audience_filter, effective_zone
from cadence.figures.summaries import refresh
from cadence.launches.cascade import LaunchContext
from cadence.launches.release import release_due
from cadence.messages.attention import isolated
from cadence.messages.channel_choice import channels_for
from cadence.messages.planner import plan
from cadence.planning.followups import FollowUpPolicy, WorkingHours, next_follow_up
from cadence.planning.recurrence import zone
from cadence.store.bulk import affected, insert_ignoring_duplicates
from cadence.store.db import session_scope
from cadence.store.models import (
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    Person,
)

log = logging.getLogger("cadence.delivery.dispatch")

Enqueue = Callable[[list[int]], None]


@dataclass(frozen=True)
class DispatchPolicy:
    """The settings the dispatcher needs, apart from everything else."""

    org_zone: str
    horizon: timedelta
    batch_size: int
    stuck_after: timedelta
    max_lateness: timedelta
    claim_limit: int = 100
    send_rate_per_minute: float = 300.0
    remind_after_hours: float = 24.0
    max_reminders: int = 2
    escalate: bool = True
    working_hours: WorkingHours = field(
        default_factory=lambda: WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri")
    )

    @property
    def launch_context(self) -> LaunchContext:
        """What launches are released with: the same as previews and the dashboard plan with."""
        return LaunchContext(self.org_zone, self.send_rate_per_minute, self.working_hours)


@dataclass
class TickReport:
    planned: int = 0
    claimed: int = 0
    skipped: int = 0
    deliveries_written: int = 0
    queued: int = 0
    requeued: int = 0
    tasks: int = 0
    launch_releases: int = 0
    summarised: int = 0
    notes: list[str] = field(default_factory=list)


def tick(
    sessions: sessionmaker[Session], policy: DispatchPolicy, enqueue: Enqueue, now: datetime
) -> TickReport:
    """One beat of the dispatcher. Safe to run concurrently with itself."""
    report = TickReport()
    report.planned = plan(sessions, now, policy.horizon, policy.org_zone)
    released = release_due(sessions, now, policy.launch_context)
    report.launch_releases = sum(released.released.values())
    release_stale_claims(sessions, policy, now)
    for occurrence_id, message_id in claim_due(sessions, policy, now):
        report.claimed += 1
        _dispatch_one(sessions, policy, occurrence_id, message_id, now, report)
    queued, tasks = queue_pending(sessions, policy, enqueue, now)
    report.queued, report.tasks = queued, tasks
    requeued, more_tasks = requeue_stuck(sessions, policy, enqueue, now)
    report.requeued, report.tasks = requeued, report.tasks + more_tasks
    # Summarise what was sent and answered, so the dashboard rarely has to (unless a
    # refresh is running already: then the next tick does it).
    report.summarised = refresh(sessions, wait=False)
    return report


def _dispatch_one(
    sessions: sessionmaker[Session],
    policy: DispatchPolicy,
    occurrence_id: int,
    message_id: int,
    now: datetime,
    report: TickReport,
) -> None:
    """Write one claimed occurrence's deliveries in a transaction of its own; if that
    raises, skip it (saying why) and flag its message: it stops no other occurrence."""

    def set_aside(session: Session, problem: str) -> None:
        session.execute(
            update(Occurrence)
            .where(Occurrence.id == occurrence_id)
            .where(Occurrence.status == OccurrenceStatus.DISPATCHING.value)
            .values(status=OccurrenceStatus.SKIPPED.value, note=problem[:500])
        )
        report.notes.append(f"occurrence {occurrence_id} of message {message_id}: {problem}")

    done = isolated(
        sessions,
        message_id,
        "dispatching",
        now,
        lambda session: write_deliveries(session, occurrence_id, policy, now),
        set_aside,
    )
    if done is None:
        report.skipped += 1
        return
    written, skipped_note = done
    report.deliveries_written += written
    if skipped_note:
        report.skipped += 1
        report.notes.append(skipped_note)


def claim_due(
    sessions: sessionmaker[Session], policy: DispatchPolicy, now: datetime
) -> list[tuple[int, int]]:
    """Take due occurrences for this tick: (occurrence id, message id) of each. Only rows
    this UPDATE changed are ours."""
    with session_scope(sessions) as session:
        due = (
            select(Occurrence.id)
            .where(Occurrence.status == OccurrenceStatus.PLANNED.value)
            .where(Occurrence.due_at <= now)
            # A launch is released person by person (see cadence.launches.release), not in one go.
            .where(Occurrence.purpose != "launch")
            .order_by(Occurrence.due_at)
            .limit(policy.claim_limit)
            .scalar_subquery()
        )
        claimed = session.execute(
            update(Occurrence)
            .where(Occurrence.id.in_(due))
            .where(Occurrence.status == OccurrenceStatus.PLANNED.value)
            .values(status=OccurrenceStatus.DISPATCHING.value, claimed_at=now)
            .returning(Occurrence.id, Occurrence.message_id)
        ).all()
    return sorted((occurrence_id, message_id) for occurrence_id, message_id in claimed)


def release_stale_claims(
    sessions: sessionmaker[Session], policy: DispatchPolicy, now: datetime
) -> int:
    """Occurrences a crashed tick left half-written go back to be claimed again; the unique
    key on deliveries makes finishing them harmless."""
    with session_scope(sessions) as session:
        return affected(
            session,
            update(Occurrence)
            .where(Occurrence.status == OccurrenceStatus.DISPATCHING.value)
            .where(Occurrence.claimed_at < now - policy.stuck_after)
            .values(status=OccurrenceStatus.PLANNED.value),
        )


def write_deliveries(
    session: Session, occurrence_id: int, policy: DispatchPolicy, now: datetime
) -> tuple[int, str | None]:
    """Write one pending delivery per audience member for a claimed occurrence.

    The audience is read from the directory now (not when planned), in pages by id, so
    memory stays flat whatever its size. Returns (rows written, note if skipped).
    """
    occurrence = session.get(Occurrence, occurrence_id)
    assert occurrence is not None
    message = session.get(Message, occurrence.message_id)
    assert message is not None
    skip = _skip_reason(message, occurrence, policy, now)
    if skip:
        occurrence.status = OccurrenceStatus.SKIPPED.value
        occurrence.note = skip
        return 0, f"occurrence {occurrence.id} of message {message.id}: {skip}"
    if occurrence.purpose in ("reminder", "reack"):
        written = _write_reminders(session, message, occurrence, policy.org_zone, now)
    elif occurrence.purpose == "escalation":
        written = _write_digests(session, message, occurrence, policy.org_zone, now)
    else:
        written = _write_audience(session, message, occurrence, policy, now)
    occurrence.status = OccurrenceStatus.DISPATCHED.value
    occurrence.dispatched_at = now
    if written == 0:
        occurrence.note = occurrence.note or "no recipients"
    # A reminder that found everyone had answered ends the chain.
    if occurrence.purpose == "cadence" or (occurrence.purpose == "reminder" and written):
        _plan_follow_up(session, message, occurrence, policy, now)
    return written, None


def _write_audience(
    session: Session,
    message: Message,
    occurrence: Occurrence,
    policy: DispatchPolicy,
    now: datetime,
) -> int:
    wordings = 1 + len(message.variants)
    variant = occurrence.sequence % wordings
    written = 0
    for page in _audience_pages(session, message, occurrence, policy):
        rows = [
            {
                "occurrence_id": occurrence.id,
                "person_id": person_id,
                "channel": channel,
                "variant": variant,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
            }
            for person_id, preferred in page
            for channel in channels_for(preferred, message.channels, message.channel_mode)
        ]
        written += insert_ignoring_duplicates(session, Delivery, rows)
    return written


def _root(session: Session, occurrence: Occurrence) -> Occurrence:
    root = session.get(Occurrence, occurrence.parent_id) if occurrence.parent_id else None
    return root or occurrence


def _write_reminders(
    session: Session, message: Message, occurrence: Occurrence, org_zone: str, now: datetime
) -> int:
    """The same wording again, to everyone sent the occurrence who has not answered."""
    root = _root(session, occurrence)
    waiting = waiting_for(session, message, occurrence, root, org_zone)
    written = 0
    for start in range(0, len(waiting), 1000):
        ids = waiting[start : start + 1000]
        preferred = dict(
            session.execute(select(Person.id, Person.channel).where(Person.id.in_(ids))).all()
        )
        rows = [
            {
                "occurrence_id": occurrence.id,
                "person_id": person_id,
                "channel": channel,
                "variant": root.sequence % (1 + len(message.variants)),
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
            }
            for person_id in ids
            for channel in channels_for(
                preferred.get(person_id), message.channels, message.channel_mode
            )
        ]
        written += insert_ignoring_duplicates(session, Delivery, rows)
    return written


def _write_digests(
    session: Session, message: Message, occurrence: Occurrence, org_zone: str, now: datetime
) -> int:
    """One delivery to each manager, listing their people who still have not answered."""
    root = _root(session, occurrence)
    waiting = waiting_for(session, message, occurrence, root, org_zone)
    by_manager: dict[int, list[dict[str, str]]] = {}
    for start in range(0, len(waiting), 1000):
        ids = waiting[start : start + 1000]
        manager = aliased(Person)
        for name, email, manager_id in session.execute(
            select(Person.name, Person.email, Person.manager_id)
            .join(manager, Person.manager_id == manager.id)
            .where(Person.id.in_(ids), manager.active.is_(True))
            .order_by(Person.name)
        ):
            if manager_id is not None:  # the join already requires one
                by_manager.setdefault(manager_id, []).append({"name": name, "email": email})
    if not by_manager:
        return 0
    preferred = dict(
        session.execute(
            select(Person.id, Person.channel).where(Person.id.in_(list(by_manager)))
        ).all()
    )
    rows = [
        {
            "occurrence_id": occurrence.id,
            "person_id": manager_id,
            "channel": channels_for(preferred.get(manager_id), message.channels, "first")[0],
            "variant": 0,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "payload": {"people": people, "root_occurrence_id": root.id},
        }
        for manager_id, people in by_manager.items()
    ]
    return insert_ignoring_duplicates(session, Delivery, rows)


def _plan_follow_up(
    session: Session,
    message: Message,
    occurrence: Occurrence,
    policy: DispatchPolicy,
    now: datetime,
) -> None:
    follow = FollowUpPolicy.of(
        message, policy.remind_after_hours, policy.max_reminders, policy.escalate
    )
    root = _root(session, occurrence)
    rows = []
    # Working hours are each recipient's own (see cadence.delivery.follow_ups).
    for zone_name in follow_up_zones(session, message, occurrence, root, policy.org_zone):
        tz = zone(zone_name)
        nxt = next_follow_up(occurrence.follow_up, now, follow, policy.working_hours, tz)
        if nxt is None:
            return
        rows.append(
            {
                "message_id": message.id,
                "purpose": nxt.purpose,
                "parent_id": root.id,
                "follow_up": nxt.number,
                "sequence": root.sequence,
                "zone": zone_name,
                "local_time": nxt.due_at.astimezone(tz).replace(tzinfo=None),
                "due_at": nxt.due_at,
                "status": OccurrenceStatus.PLANNED.value,
            }
        )
    insert_ignoring_duplicates(session, Occurrence, rows)


def _skip_reason(
    message: Message, occurrence: Occurrence, policy: DispatchPolicy, now: datetime
) -> str | None:
    if message.status == MessageStatus.PAUSED.value:
        return "message paused when it fell due"
    if message.status == MessageStatus.CANCELLED.value:
        return "message cancelled"
    if now - occurrence.due_at > policy.max_lateness:
        return f"missed: {now - occurrence.due_at} late, more than the allowed lateness"
    return None


def _audience_pages(
    session: Session, message: Message, occurrence: Occurrence, policy: DispatchPolicy
) -> Iterator[list[tuple[int, str | None]]]:
    audience = Audience.from_json(message.audience)
    cadence = message.cadence
    conditions = [audience_filter(audience)]
    if cadence is not None and cadence.timezone is None:
        conditions.append(effective_zone(policy.org_zone) == occurrence.zone)
    # Teams are resolved now, not when the message was added: whoever a leader's team
    # gained outside the leader's tree since is left out, and counted.
    limit = sender_limit(session, message)
    if limit is not None:
        beyond = select(func.count()).select_from(Person).where(*conditions, ~limit)
        occurrence.outside_tree = int(session.scalar(beyond) or 0)
        conditions.append(limit)
    # Someone who moved zone between two zones' sends of the same repetition gets it once.
    other_occ = aliased(Occurrence)
    conditions.append(
        ~exists().where(
            and_(
                Delivery.person_id == Person.id,
                Delivery.occurrence_id == other_occ.id,
                other_occ.message_id == occurrence.message_id,
                other_occ.sequence == occurrence.sequence,
                other_occ.id != occurrence.id,
            )
        )
    )
    last_id = 0
    while True:
        page = session.execute(
            select(Person.id, Person.channel)
            .where(*conditions)
            .where(Person.id > last_id)
            .order_by(Person.id)
            .limit(policy.batch_size * 5)
        ).all()
        if not page:
            return
        yield [(pid, channel) for pid, channel in page]
        last_id = page[-1][0]


def queue_pending(
    sessions: sessionmaker[Session], policy: DispatchPolicy, enqueue: Enqueue, now: datetime
) -> tuple[int, int]:
    """Hand pending deliveries whose retry time has come to the broker, in batches,
    recording first that they were."""
    ready = [
        Delivery.status == DeliveryStatus.PENDING.value,
        or_(Delivery.retry_at.is_(None), Delivery.retry_at <= now),
    ]
    return _queue_where(sessions, policy, enqueue, now, ready)


def requeue_stuck(
    sessions: sessionmaker[Session], policy: DispatchPolicy, enqueue: Enqueue, now: datetime
) -> tuple[int, int]:
    """Queue again what the broker or a worker lost.

    `queued` for too long: the task never ran (a flushed Redis). `sending` for too long: the
    worker died mid-batch. A send task only takes deliveries still `queued`, so a late
    original and its replacement cannot both send.
    """
    cutoff = now - policy.stuck_after
    with session_scope(sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.SENDING.value)
            .where(Delivery.attempted_at < cutoff)
            # Back-dated so the pass below picks them up; flagged because the dead worker
            # may have sent some of them already.
            .values(
                status=DeliveryStatus.QUEUED.value,
                queued_at=Delivery.attempted_at,
                maybe_sent=True,
            )
        )
    lost = [Delivery.status == DeliveryStatus.QUEUED.value, Delivery.queued_at < cutoff]
    return _queue_where(sessions, policy, enqueue, now, lost)


def _queue_where(
    sessions: sessionmaker[Session],
    policy: DispatchPolicy,
    enqueue: Enqueue,
    now: datetime,
    conditions: list[ColumnElement[bool]],
) -> tuple[int, int]:
    queued = tasks = 0
    last_id = 0
    while True:
        with session_scope(sessions) as session:
            ids = session.scalars(
                select(Delivery.id)
                .where(*conditions)
                .where(Delivery.id > last_id)
                .order_by(Delivery.id)
                .limit(policy.batch_size)
            ).all()
            if not ids:
                return queued, tasks
            last_id = ids[-1]
            # The same conditions again: a concurrent tick may have taken some meanwhile.
            mine = session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(ids), *conditions)
                .values(status=DeliveryStatus.QUEUED.value, queued_at=now, retry_at=None)
                .returning(Delivery.id)
            ).all()
        if mine:
            # Only after the commit: a worker must find these rows already `queued`.
            enqueue(sorted(mine))
            queued += len(mine)
            tasks += 1
