"""One message in detail: how often each person received it, who has not acknowledged it
yet, how fast people answered, and its occurrences, sent and still to come."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from cadence.errors import InputError
from cadence.figures.measures import (
    _EMPTY,
    _message,
    _none_last,
    _ratio,
)
from cadence.figures.slices import Filters, Slice
from cadence.store.models import (
    Occurrence,
    OccurrenceStatus,
    Person,
    PersonOccurrence,
    Team,
)


def repetition(
    session: Session,
    message_id: int,
    since: datetime | None,
    until: datetime | None,
    k: int,
    *,
    filters: Filters | None = None,
) -> dict[str, Any]:
    """How often each person in a message's audience really received it in the window, how
    often they acknowledged it, and the share reached at least `k` times. `filters` narrows
    people or the channel (a leader's scope); its window and message are replaced."""
    if k < 1:
        raise InputError("k must be at least 1")
    message = _message(session, message_id)
    sliced = replace(filters or Filters(), message_id=message_id, since=since, until=until)
    sl = Slice(session, sliced)
    columns = sl.columns
    per_person = (
        sl.rows(
            [
                PersonOccurrence.person_id.label("person_id"),
                func.sum(columns.planned).label("planned"),
                func.count(columns.first_sent).label("received"),
                func.sum(case((columns.acknowledged(), 1), else_=0)).label("acknowledged"),
            ]
        )
        .group_by(PersonOccurrence.person_id)
        .subquery("per_person")
    )
    # One pass: everyone in the audience (planned at least once) with their counts; the
    # summary and the distribution are added up from the same rows.
    people = session.execute(
        select(Person.email, Person.name, per_person.c.received, per_person.c.acknowledged)
        .join(Person, Person.id == per_person.c.person_id)
        .where(per_person.c.planned > 0)
        .order_by(Person.email)
    ).all()
    spread: dict[int, int] = {}
    for _, _, got, _ in people:
        spread[int(got)] = spread.get(int(got), 0) + 1
    offered = session.scalar(
        select(func.count(func.distinct(Occurrence.sequence))).where(
            *sl.occurrence,
            Occurrence.status.in_(
                [OccurrenceStatus.DISPATCHING.value, OccurrenceStatus.DISPATCHED.value]
            ),
        )
    )
    size, reached = len(people), sum(n for times, n in spread.items() if times >= k)
    return {
        "message_id": message.id,
        "title": message.title,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "k": k,
        "repetitions": int(offered or 0),
        "audience": size,
        "reached_at_least_k": reached,
        "share_reached_at_least_k": _ratio(reached, size),
        "distribution": dict(sorted(spread.items())),
        "people": [
            {"person": email, "name": name, "received": int(got), "acknowledged": int(acked)}
            for email, name, got, acked in people
        ],
    }


def not_acknowledged(session: Session, message_id: int, filters: Filters) -> list[dict[str, Any]]:
    """Active people who have not answered the latest occurrence of the message they were
    sent (in the slice), for a version of the message that still counts: who to chase.

    Each person's latest send is the first of their rows of the message in
    (person, message, due time) order, so the cost follows the number of people, not the
    length of the message's history.
    """
    message = _message(session, message_id)
    sl = Slice(session, replace(filters, message_id=message_id))
    p, columns = PersonOccurrence, sl.columns
    # The window is put on the rows' own copy of the due time (every row is of a send), so
    # the index is read newest first and the first sent row ends the search.
    window = [p.message_id == message_id]
    if filters.since is not None:
        window.append(p.due_at >= filters.since)
    if filters.until is not None:
        window.append(p.due_at < filters.until)
    newest = (
        select(p.occurrence_id)
        .where(p.person_id == Person.id, *window, *columns.rows(), columns.sent())
        .where(*sl.on_channel())
        .order_by(p.due_at.desc(), p.occurrence_id.desc())
        .limit(1)
        .correlate(Person)
        .scalar_subquery()
    )
    latest = (
        select(Person.id.label("person_id"), newest.label("occurrence_id"))
        .where(Person.active.is_(True), *sl.people(Person.id))
        # Worked out person by person first; planners would rather scan every row.
        .cte("latest")
        .prefix_with("MATERIALIZED")
    )
    manager = aliased(Person)
    answered = and_(p.answered_version.is_not(None), p.answered_version >= message.ack_version)
    rows = session.execute(
        select(
            Person.email,
            Person.name,
            Team.path,
            manager.email,
            Occurrence.sequence,
            p.due_at,
            columns.first_sent,
        )
        .select_from(latest)
        .join(p, and_(p.occurrence_id == latest.c.occurrence_id, p.person_id == latest.c.person_id))
        .join(Occurrence, Occurrence.id == p.occurrence_id)
        .join(Person, Person.id == p.person_id)
        .outerjoin(Team, Team.id == Person.team_id)
        .outerjoin(manager, manager.id == Person.manager_id)
        .where(*columns.rows(), ~answered)
        .where(*sl.on_channel())
    ).all()
    out = [
        {
            "person": email,
            "name": name,
            "team": team,
            "manager": manager_email,
            "repetition": sequence + 1,
            "due_at": due.isoformat(timespec="seconds"),
            "sent_at": sent.isoformat(timespec="seconds"),
        }
        for email, name, team, manager_email, sequence, due, sent in rows
    ]
    return sorted(out, key=lambda r: (_none_last(r["team"]), r["person"]))


TIMELINE_LIMIT = 200


def occurrence_story(
    session: Session,
    message_id: int,
    filters: Filters,
    limit: int = TIMELINE_LIMIT,
    *,
    default_zone: str = "UTC",
) -> dict[str, list[dict[str, Any]]]:
    """The message's occurrences told as its story, in the slice:

    - `sent`: those that fell due and were dealt with (sent, or skipped or cancelled),
      newest first, at most `limit`, with the people planned, sent and acknowledged (when
      the slice narrows people or the channel, only those with someone planned in it);
    - `next_by_zone`: per zone, its next planned send and how many more are planned
      after it. People are only assigned when a send falls due, so a slice that narrows
      people keeps the zones its active people live in (`default_zone` for those without
      one of their own); a message in one fixed zone keeps its zone."""
    message = _message(session, message_id)
    sl = Slice(session, replace(filters, message_id=message_id))
    narrowed = filters.narrows_people or filters.channel is not None
    sums = sl.sums({"occurrence": Occurrence.id})
    planned = Occurrence.status == OccurrenceStatus.PLANNED.value
    sent = []
    for occurrence in session.scalars(
        select(Occurrence)
        .where(*sl.occurrence, ~planned)
        .order_by(Occurrence.due_at.desc(), Occurrence.id.desc())
    ):
        counts = sums.get((occurrence.id,))
        if narrowed and not (counts and counts["planned"]):
            continue
        sent.append(_timeline_row(occurrence, counts or {**_EMPTY, "first_sent": None}))
        if len(sent) == limit:
            break
    zones: set[str] | None = None
    fixed = message.cadence is not None and message.cadence.timezone is not None
    if filters.narrows_people and not fixed:
        zones = set(
            session.scalars(
                select(func.coalesce(Person.timezone, default_zone))
                .where(Person.active.is_(True), *sl.people(Person.id))
                .distinct()
            )
        )
    by_zone: dict[str, dict[str, Any]] = {}
    for occurrence in session.scalars(
        select(Occurrence).where(*sl.occurrence, planned).order_by(Occurrence.due_at, Occurrence.id)
    ):
        if zones is not None and occurrence.zone not in zones:
            continue
        if occurrence.zone in by_zone:
            by_zone[occurrence.zone]["more_planned"] += 1
        else:
            by_zone[occurrence.zone] = {
                **_timeline_row(occurrence, {**_EMPTY, "first_sent": None}),
                "more_planned": 0,
            }
    return {
        "sent": sent,
        "next_by_zone": sorted(by_zone.values(), key=lambda r: (r["due_at"], r["zone"])),
    }


def _timeline_row(occurrence: Occurrence, counts: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "repetition": occurrence.sequence + 1,
        "zone": occurrence.zone,
        "due_at": occurrence.due_at,
        "local_time": occurrence.local_time,
        "status": occurrence.status,
        "first_sent": counts["first_sent"],
        "planned": counts["planned"],
        "sent": counts["sent"],
        "acknowledged": counts["acknowledged"],
        "ack_rate": _ratio(counts["acknowledged"], counts["sent"]),
        "outside_tree": occurrence.outside_tree,
    }


def ack_curve_since_sent(
    session: Session, message_id: int, filters: Filters
) -> list[tuple[float, float]]:
    """(seconds since a person was sent the message, share of sent person-occurrences
    acknowledged by then), starting at (0, 0), one point per time-to-acknowledge bucket
    (whole seconds below 100 s, then at most 10% wide), each at its bucket's end: the
    same waits the median and 90th percentile are taken from, so a one-minute median
    shows as a rise within the first minutes. Empty when nothing was sent."""
    _message(session, message_id)
    sl = Slice(session, replace(filters, message_id=message_id))
    total = sl.sums({}).get((), {}).get("sent", 0)
    if not total:
        return []
    curve: list[tuple[float, float]] = [(0.0, 0.0)]
    answered = 0
    for bucket, count in sl.histograms({}, "wait").get((), []):
        answered += count
        point = (float(_bucket_end(bucket)), round(answered / total, 4))
        if point[0] == curve[-1][0]:
            curve[-1] = point
        else:
            curve.append(point)
    return curve


def _bucket_end(bucket: int) -> int:
    """Where a time-to-acknowledge bucket (see cadence.figures.summaries) ends: answers
    before the send (clock skew) count from 0."""
    if bucket < 0:
        return 0
    if bucket < 100:
        return bucket + 1
    width: int = 10 ** (len(str(bucket)) - 2)
    return bucket + width


__all__ = [
    "TIMELINE_LIMIT",
    "ack_curve_since_sent",
    "not_acknowledged",
    "occurrence_story",
    "repetition",
]
