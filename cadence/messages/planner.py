"""Planning occurrences from cadences over a rolling horizon.

Only the next `horizon` is ever written down, so edits to a message or the directory shape
every send that has not been planned yet; `invalidate` makes the next tick plan again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from cadence.directory.audience import Audience, audience_zones
from cadence.messages.attention import isolated, planning_failed_recently
from cadence.planning.recurrence import expand_zones, parse_rule, zone
from cadence.store.bulk import insert_ignoring_duplicates
from cadence.store.db import session_scope
from cadence.store.models import (
    Cadence,
    Message,
    MessageKind,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
)


def plan(sessions: sessionmaker[Session], now: datetime, horizon: timedelta, org_zone: str) -> int:
    """Write the occurrences of every active cadence due within `horizon` of `now`.

    A cadence is re-planned once half its horizon has passed, or at once after
    `invalidate`. Each cadence is planned in a transaction of its own: one whose planning
    raises is rolled back and its message flagged (see cadence.messages.attention), it is
    tried again after half a horizon or an edit (nothing of its plan is skipped meanwhile),
    and every other cadence is planned as usual. Returns the number of new occurrences.
    """
    refresh_before = now + horizon / 2
    with session_scope(sessions) as session:
        due = session.execute(
            select(Cadence.id, Cadence.message_id)
            .join(Message)
            .where(Message.status == MessageStatus.ACTIVE.value)
            .where(Message.kind == MessageKind.CORE.value)
            .where(or_(Cadence.planned_until.is_(None), Cadence.planned_until < refresh_before))
            .where(~planning_failed_recently(now - horizon / 2))
        ).all()
    created = 0
    for cadence_id, message_id in due:

        def work(session: Session, cadence_id: int = cadence_id) -> int:
            cadence = session.get(Cadence, cadence_id)
            if cadence is None:
                return 0
            return plan_cadence(session, cadence, now, now + horizon, org_zone)

        created += isolated(sessions, message_id, "planning", now, work) or 0
    return created


def plan_cadence(
    session: Session, cadence: Cadence, now: datetime, until: datetime, org_zone: str
) -> int:
    message = cadence.message
    if cadence.timezone:
        zones = [cadence.timezone]
    else:
        zones = audience_zones(session, Audience.from_json(message.audience), org_zone)
    # Continue where the last plan ended; a fresh plan starts now, never in the past.
    not_before = now if cadence.planned_until is None else min(cadence.planned_until, now)
    rule = parse_rule(cadence.rrule, cadence.start_local)
    # The rule is expanded once for every zone: each turn keeps its one number everywhere.
    rows = [
        {
            "message_id": message.id,
            "sequence": rec.sequence,
            "zone": tz.key,
            "local_time": rec.local,
            "due_at": rec.at,
            "status": OccurrenceStatus.PLANNED.value,
        }
        for tz, rec in expand_zones(
            rule,
            [zone(name) for name in zones],
            not_before=not_before,
            until=until,
            end_date=cadence.end_date,
        )
    ]
    created = insert_ignoring_duplicates(session, Occurrence, rows)
    cadence.planned_until = until
    return created


def invalidate(session: Session, message_id: int | None = None) -> None:
    """Make the next tick plan again (after a directory import or a message edit)."""
    stmt = update(Cadence).values(planned_until=None)
    if message_id is not None:
        stmt = stmt.where(Cadence.message_id == message_id)
    session.execute(stmt)
