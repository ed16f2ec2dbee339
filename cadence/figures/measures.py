"""The figures comms teams act on.

The dashboard shows them over millions of deliveries, so they are read from summaries kept
current as deliveries are sent and answered (cadence.figures.summaries): per-occurrence sums and
histograms, for everyone or per team and manager, and person-occurrence rows where those
cannot answer (cadence.figures.slices). Only aggregated rows reach Python.

The unit is the *person-occurrence*: one person and one occurrence of a message. A person
sent an occurrence on two channels, or on a fallback channel after a failure, counts once.
Only occurrences with purpose "cadence" or "launch" are sends; test sends never count, and
reminders, digests, re-acknowledgement requests and corrections are follow-ups whose
answers are credited to the occurrence they follow up.

Definitions (each figure is None when its denominator is empty):

- planned: person-occurrences with at least one delivery that was not cancelled (a message
  cancelled before it went out withdrew its deliveries: a decision, not a miss).
- sent: planned person-occurrences with at least one delivery `sent` (with a sent time);
  first sent = the earliest such sent time.
- reach = sent / planned.
- acknowledged: sent person-occurrences with a counted answer (the person's first answer,
  on any channel, from the message or any reminder of it, for any version of the message).
- acknowledgement rate = acknowledged / sent.
- time to acknowledge: seconds from first sent to the first counted answer, over
  acknowledged person-occurrences; median and 90th percentile, linearly interpolated
  (PostgreSQL's percentile_cont).
- question rate = sent person-occurrences with any answer (counted or a repeat) that is a
  question / sent.
- clarity score = 100 x (counted answers rated 9-10 - counted answers rated 0-6) / counted
  answers with a rating, over sent person-occurrences; from -100 to 100.
- on-time share = sent person-occurrences of cadence occurrences whose first sent time is no
  more than the tolerance (15 minutes) after the occurrence's due time (in its own zone's
  occurrence) / sent person-occurrences of cadence occurrences. Launches are released down
  the tree after their first due time by design; launch compliance measures them.
- delivered share = sent / planned (the same ratio as reach, shown with the cadence figures).
- missed occurrences: cadence occurrences in the window recorded as missed (too late after
  an outage), which wrote no deliveries and so are invisible to reach. Occurrences belong
  to no one, so people and channel filters do not narrow this count.
- repetition: per person, times received = distinct occurrences of the message sent to them;
  acknowledged = of those, how many they answered; the audience is everyone planned at least
  one occurrence in the window; share reached at least k times = people received >= k /
  audience.
- launch compliance: `cadence.launches.status.launch_status` for each launch due in the window.
- briefing lag: per leader, median seconds from the first sent time of their launch leader
  briefing to their first counted answer to it, over briefings they acknowledged.
- bypasses: per leader, people in their direct team whose launch message was released by
  the leader's deadline instead of their acknowledgement ("leader bypassed"), and the
  number of launches that happened in.

Slicing (`Filters`): the window is on the occurrence's due time (since inclusive, until
exclusive); team, manager and scope select people by their current place in the directory
(a team includes its sub-teams; a manager or scope person includes themself and everyone
below them); channel keeps only deliveries on that channel (an answer on any channel still
counts for it). Breakdowns by team and manager follow the same rule: a team's row is the
figure of that team filter, a manager's row the figure of that manager filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from cadence.directory.audience import tree_of
from cadence.errors import InputError
from cadence.figures.rollup import Rollup
from cadence.figures.slices import PERCENTILES, Filters, GroupKey, Slice, SqlColumn
from cadence.figures.summaries import DEFAULT_TOLERANCE, SEND_PURPOSES, SUMS
from cadence.launches.cascade import LaunchContext
from cadence.launches.status import launch_status
from cadence.planning.followups import WorkingHours
from cadence.store.bulk import chunks
from cadence.store.expressions import period_start
from cadence.store.models import (
    Delivery,
    Message,
    MessageKind,
    Occurrence,
    OccurrenceStatus,
    Person,
    PersonOccurrence,
    Team,
)

BREAKDOWNS = ("message", "team", "manager", "channel", "repetition", "period")
#: The breakdowns whose rows roll up a tree (and can be asked for people's own instead).
ROLLED = ("team", "manager")
PERIODS = ("day", "week", "month")

#: The figure columns of `overview` and of every `breakdown` row, in display order.
FIGURE_COLUMNS = (
    "planned",
    "sent",
    "reach",
    "acknowledged",
    "ack_rate",
    "ack_median_s",
    "ack_p90_s",
    "questions",
    "question_rate",
    "ratings",
    "clarity_score",
    "on_time",
    "on_time_share",
    "delivered_share",
)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(sums: Mapping[str, Any], percentiles: Mapping[str, float | None]) -> dict[str, Any]:
    rated = sums["rated"]
    return {
        "planned": sums["planned"],
        "sent": sums["sent"],
        "reach": _ratio(sums["sent"], sums["planned"]),
        "acknowledged": sums["acknowledged"],
        "ack_rate": _ratio(sums["acknowledged"], sums["sent"]),
        "ack_median_s": percentiles.get("median"),
        "ack_p90_s": percentiles.get("p90"),
        "questions": sums["asked"],
        "question_rate": _ratio(sums["asked"], sums["sent"]),
        "ratings": rated,
        "clarity_score": (
            round(100 * (sums["promoters"] - sums["detractors"]) / rated, 1) if rated else None
        ),
        "on_time": sums["on_time"],
        "on_time_share": _ratio(sums["on_time"], sums["scheduled"]),
        "delivered_share": _ratio(sums["sent"], sums["planned"]),
    }


_EMPTY: dict[str, int] = dict.fromkeys(SUMS, 0)


def _figure_rows(
    sl: Slice, keys: Mapping[str, SqlColumn], *, join_person: bool = False
) -> list[dict[str, Any]]:
    """Per group of `keys`: the key values under their names, then the figures."""
    sums = sl.sums(keys, join_person=join_person)
    percentiles = sl.percentiles(keys, join_person=join_person)
    names = [*keys, *(["channel"] if sl.per_channel else [])]
    return [
        {**dict(zip(names, group, strict=True)), **_figures(s, percentiles.get(group, {}))}
        for group, s in sums.items()
    ]


# ---------------------------------------------------------------------------------------
# Public figures


def default_launch_context() -> LaunchContext:
    """Launch compliance counts membership and send times only, so Cadence's default
    settings give the same figures as the deployment's own (which callers should pass)."""
    return LaunchContext(
        org_zone="UTC",
        rate_per_minute=300.0,
        hours=WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri"),
    )


def overview(
    session: Session,
    filters: Filters,
    now: datetime,
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    launch_context: LaunchContext | None = None,
) -> dict[str, Any]:
    """Every headline figure for the slice, as of `now` (occurrences due after it are
    left out), with launch compliance for each launch due in it."""
    sl = Slice(session, filters, now=now, tolerance=tolerance)
    found = _figure_rows(sl, {})
    figures = found[0] if found else _figures(_EMPTY, {})
    missed = session.scalar(
        select(func.count())
        .select_from(Occurrence)
        .where(*sl.occurrence, Occurrence.purpose == "cadence")
        .where(Occurrence.status == OccurrenceStatus.SKIPPED.value)
        .where(Occurrence.note.like("missed:%"))
    )
    return {
        "as_of": now.isoformat(timespec="seconds"),
        **figures,
        "on_time_tolerance_minutes": tolerance.total_seconds() / 60,
        "missed_occurrences": int(missed or 0),
        "launches": _launches(session, sl, now, launch_context or default_launch_context()),
    }


def _launches(
    session: Session, sl: Slice, now: datetime, ctx: LaunchContext
) -> list[dict[str, Any]]:
    """launch_status for each launch due in the slice. Its counts cover the whole launch,
    or only the leader's tree in a leader's scope (a launch with nobody of it is left out);
    when the slice narrows people, the lists of names keep only people inside it."""
    ids = session.scalars(
        select(Occurrence.message_id)
        .join(Message, Message.id == Occurrence.message_id)
        .where(*sl.occurrence)
        .where(Message.kind == MessageKind.LAUNCH.value, Occurrence.purpose == "launch")
        .order_by(Occurrence.due_at, Occurrence.message_id)
    ).all()
    scope = sl.filters.scope_person_id
    within: set[int] | None = set(session.scalars(tree_of(scope))) if scope is not None else None
    out = []
    for message_id in ids:
        status = launch_status(session, message_id, ctx, now, within)
        if within is not None and not status["audience"]:
            continue
        if sl.filters.narrows_people:
            named = [*status["breached"], *status["not_yet_reached"]]
            inside: set[str] = set()
            for batch in chunks(named):
                inside.update(
                    session.scalars(
                        select(Person.email).where(Person.email.in_(batch), *sl.people(Person.id))
                    )
                )
            status["breached"] = [e for e in status["breached"] if e in inside]
            status["not_yet_reached"] = [e for e in status["not_yet_reached"] if e in inside]
        out.append(status)
    return out


def _keys(by: str, dialect: str, period: str) -> tuple[dict[str, SqlColumn], bool]:
    """The grouping column for a breakdown (none by channel: the slice groups by it), and
    whether it needs the person's row."""
    if by not in BREAKDOWNS:
        raise InputError(f"unknown breakdown {by!r} (one of: {', '.join(BREAKDOWNS)})")
    if period not in PERIODS:
        raise InputError(f"unknown period {period!r} (one of: {', '.join(PERIODS)})")
    if by == "channel":
        return {}, False
    columns: dict[str, tuple[SqlColumn, bool]] = {
        "message": (Occurrence.message_id, False),
        "team": (Person.team_id, True),
        "manager": (Person.manager_id, True),
        "repetition": (Occurrence.sequence + 1, False),
        "period": (period_start(dialect, Occurrence.due_at, period), False),
    }
    column, join_person = columns[by]
    return {by: column}, join_person


def _labels(session: Session, by: str, ids: list[Any]) -> dict[Any, Any]:
    """What a grouping id is called: a message's title, a team's path, a manager's email."""
    known = [i for i in ids if i is not None]
    if by == "message":
        stmt: Select[int, str] = select(Message.id, Message.title).where(Message.id.in_(known))
    elif by == "team":
        stmt = select(Team.id, Team.path).where(Team.id.in_(known))
    elif by == "manager":
        stmt = select(Person.id, Person.email).where(Person.id.in_(known))
    else:
        return {}
    return {i: label for i, label in session.execute(stmt)}


def _none_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value)


def breakdown(
    session: Session,
    by: str,
    filters: Filters,
    now: datetime,
    period: str = "week",
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    own: bool = False,
) -> list[dict[str, Any]]:
    """The headline figures, as of `now`, per message, team, manager, channel, repetition
    (1 = first) or period (UTC day, week from Monday, or month of the due time). Each row
    has the key under the name of `by` (a message also has its title; a team its path, a
    manager their email) and the figure columns.

    A team's row covers the team and its sub-teams, a manager's row the manager and
    everyone below them: each row is the figure of the matching filter
    (cadence.figures.rollup). With `own`, a team's row covers its own members only and a
    manager's row their direct reports. People with no team or manager are under None.

    By channel a person-occurrence counts once per channel it was planned on, and its answer
    counts for each; rows then add up to more than the overview.
    """
    keys, join_person = _keys(by, session.get_bind().dialect.name, period)
    sl = Slice(session, filters, now=now, tolerance=tolerance, per_channel=by == "channel")
    if by in ROLLED and not own:
        rolled = Rollup(sl, by, {})
        found = rolled.percentiles()
        rows = [{by: g[0], **_figures(s, found.get(g, {}))} for g, s in rolled.sums.items()]
    else:
        rows = _figure_rows(sl, keys, join_person=join_person)
    labels = _labels(session, by, [r[by] for r in rows])
    for row in rows:
        if by == "message":
            row["title"] = labels.get(row[by])
        elif by in ROLLED:
            row[by] = labels.get(row[by])
        elif by == "repetition":
            row[by] = int(row[by])
    rows.sort(key=lambda r: _none_last(r[by]))
    if by == "message":
        return [{"message": r["message"], "title": r["title"], **_only_figures(r)} for r in rows]
    return [{by: r[by], **_only_figures(r)} for r in rows]


def _only_figures(row: Mapping[str, Any]) -> dict[str, Any]:
    return {c: row[c] for c in FIGURE_COLUMNS}


def _message(session: Session, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise InputError(f"no message with id {message_id}")
    return message


def ack_curve(session: Session, message_id: int, filters: Filters) -> list[tuple[float, float]]:
    """(hours since the due time, share of sent person-occurrences acknowledged by then),
    at every whole hour from 0 to the hour of the last answer: an answer at 1h10m counts
    from hour 2. Empty when nothing was sent."""
    _message(session, message_id)
    sl = Slice(session, replace(filters, message_id=message_id))
    total = sl.sums({}).get((), {}).get("sent", 0)
    if not total:
        return []
    by_hour = dict(sl.histograms({}, "hour").get((), []))
    last = max(by_hour, default=0)
    curve: list[tuple[float, float]] = []
    answered = 0
    for h in range(last + 1):
        answered += by_hour.get(h, 0)
        curve.append((float(h), round(answered / total, 4)))
    return curve


def heatmap(session: Session, filters: Filters) -> dict[str, Any]:
    """Acknowledgement rate per team (with its sub-teams, as `breakdown` by team) and
    message.

    `rates[i][j]` is for `teams[i]` and `messages[j]`; None where nothing was sent. `cells`
    lists the counts behind every rate.
    """
    found = Rollup(Slice(session, filters), "team", {"message": Occurrence.message_id}).sums
    team_names = _labels(session, "team", [team for team, _ in found])
    titles = _labels(session, "message", [message for _, message in found])
    cells = sorted(
        (
            {
                "team": team_names.get(team),
                "message_id": message,
                "sent": sums["sent"],
                "acknowledged": sums["acknowledged"],
                "ack_rate": _ratio(sums["acknowledged"], sums["sent"]),
            }
            for (team, message), sums in found.items()
        ),
        key=lambda c: (_none_last(c["team"]), c["message_id"]),
    )
    teams = sorted({c["team"] for c in cells}, key=_none_last)
    message_ids = sorted({c["message_id"] for c in cells})
    rate = {(c["team"], c["message_id"]): c["ack_rate"] for c in cells}
    return {
        "teams": teams,
        "messages": [{"id": m, "title": titles.get(m)} for m in message_ids],
        "rates": [[rate.get((t, m)) for m in message_ids] for t in teams],
        "cells": cells,
    }


def _briefing(per_channel: bool) -> Any:
    """Person-occurrences of a launch that were a leader's briefing (on the row's own
    channel, when channels are told apart)."""
    return exists().where(
        Delivery.occurrence_id == PersonOccurrence.occurrence_id,
        Delivery.person_id == PersonOccurrence.person_id,
        Delivery.payload["briefing"].as_boolean().is_(True),
        *([Delivery.channel == PersonOccurrence.channel] if per_channel else []),
    )


def leaders(session: Session, filters: Filters) -> list[dict[str, Any]]:
    """Per leader: launch briefings sent and acknowledged, the median briefing lag, and
    bypasses of their direct team. Team, manager and scope filters select the leaders."""
    briefing = _briefing(per_channel=filters.channel is not None)
    sl = Slice(session, filters, purposes=("launch",), where=[briefing])
    keys = {"leader": PersonOccurrence.person_id}
    briefed = sl.sums(keys)
    lags = sl.percentiles(keys, wanted={"median": PERCENTILES["median"]})
    payload = Delivery.payload
    # The launch occurrences are picked first, so only their deliveries are read.
    launch_occurrences = select(Occurrence.id).where(*sl.occurrence)
    bypassed_units = (
        select(Delivery.occurrence_id, Delivery.person_id)
        .where(
            Delivery.occurrence_id.in_(launch_occurrences),
            payload["release"].as_string() == "leader bypassed",
        )
        .group_by(Delivery.occurrence_id, Delivery.person_id)
    )
    if filters.channel is not None:
        bypassed_units = bypassed_units.where(Delivery.channel == filters.channel)
    bypass = bypassed_units.subquery("bypassed")
    bypasses: dict[int, tuple[int, int]] = {
        leader: (int(people), int(launches))
        for leader, people, launches in session.execute(
            select(
                Person.manager_id,
                func.count(),
                func.count(func.distinct(bypass.c.occurrence_id)),
            )
            .join(Person, Person.id == bypass.c.person_id)
            .where(Person.manager_id.is_not(None), *sl.people(Person.manager_id))
            .group_by(Person.manager_id)
        )
        if leader is not None
    }
    briefings: dict[int, GroupKey] = {int(group[0]): group for group in briefed}
    ids = sorted(set(briefings) | set(bypasses))
    if not ids:
        return []
    reports = {
        manager_id: int(n)
        for manager_id, n in session.execute(
            select(Person.manager_id, func.count())
            .where(Person.manager_id.in_(ids), Person.active.is_(True))
            .group_by(Person.manager_id)
        )
    }
    who = {
        pid: (email, name, path)
        for pid, email, name, path in session.execute(
            select(Person.id, Person.email, Person.name, Team.path)
            .outerjoin(Team, Team.id == Person.team_id)
            .where(Person.id.in_(ids))
        )
    }
    out = []
    for pid in ids:
        email, name, path = who[pid]
        group = briefings.get(pid)
        sums = briefed[group] if group else None
        people, launches = bypasses.get(pid, (0, 0))
        out.append(
            {
                "leader": email,
                "name": name,
                "team": path,
                "direct_reports": int(reports.get(pid, 0)),
                "briefings": sums["sent"] if sums else 0,
                "briefings_acknowledged": sums["acknowledged"] if sums else 0,
                "briefing_lag_median_s": lags[group]["median"] if group in lags else None,
                "bypassed_people": people,
                "bypassed_launches": launches,
            }
        )
    return sorted(out, key=lambda r: r["leader"])


__all__ = [
    "BREAKDOWNS",
    "DEFAULT_TOLERANCE",
    "FIGURE_COLUMNS",
    "PERIODS",
    "ROLLED",
    "SEND_PURPOSES",
    "Filters",
    "ack_curve",
    "breakdown",
    "default_launch_context",
    "heatmap",
    "leaders",
    "overview",
]
