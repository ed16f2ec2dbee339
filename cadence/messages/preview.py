"""Upcoming sends of a message, for people to check a cadence before it runs."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.directory.audience import Audience, audience_filter, effective_zone
from cadence.errors import InputError
from cadence.planning.recurrence import expand, parse_rule, zone
from cadence.store.models import Message, MessageStatus, Person

# Beyond this many people in one zone a row says how many rather than who.
NAMED_LIMIT = 5


@dataclass(frozen=True)
class UpcomingSend:
    at: datetime  # aware, in the recipients' zone
    zone: str
    repetition: int
    variant: int
    recipients: list[str]
    total: int


def upcoming_sends(
    session: Session,
    message: Message,
    org_zone: str,
    now: datetime,
    count: int,
    person_email: str | None = None,
) -> list[UpcomingSend]:
    """The next `count` sends of `message` (per zone when recipients are in several)."""
    if count < 1:
        raise InputError("--count must be at least 1")
    if message.cadence is None:
        raise InputError(f"message {message.id} has no cadence")
    if message.status == MessageStatus.CANCELLED.value:
        raise InputError(f"message {message.id} is cancelled: nothing will be sent")
    cadence = message.cadence
    condition = audience_filter(Audience.from_json(message.audience))
    if person_email is not None:
        email = person_email.strip().lower()
        if session.scalar(select(Person.id).where(Person.email == email)) is None:
            raise InputError(f"no person with email {email}")
        if session.scalar(select(Person.id).where(condition, Person.email == email)) is None:
            raise InputError(f"{email} is not in the audience of message {message.id}")
        condition = condition & (Person.email == email)
    zone_col = effective_zone(org_zone)
    by_zone: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for email, zone_name in session.execute(
        select(Person.email, zone_col).where(condition).order_by(Person.email)
    ):
        target = cadence.timezone or zone_name
        totals[target] = totals.get(target, 0) + 1
        if len(by_zone.setdefault(target, [])) < NAMED_LIMIT:
            by_zone[target].append(email)
    rule = parse_rule(cadence.rrule, cadence.start_local)
    wordings = 1 + len(message.variants)

    def stream(zone_name: str) -> Iterator[UpcomingSend]:
        tz = zone(zone_name)
        for rec in expand(rule, tz, not_before=now, end_date=cadence.end_date):
            yield UpcomingSend(
                at=rec.at.astimezone(tz),
                zone=zone_name,
                repetition=rec.sequence + 1,
                variant=rec.sequence % wordings,
                recipients=by_zone[zone_name],
                total=totals[zone_name],
            )

    streams = [stream(zone_name) for zone_name in sorted(by_zone)]
    merged = heapq.merge(*streams, key=lambda s: (s.at, s.zone))
    return list(islice(merged, count))
