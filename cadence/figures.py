"""The figures comms teams act on, each computed by aggregation in the database.

The dashboard shows them over millions of deliveries, so every figure is a GROUP BY with
COUNT/SUM over CASE, never a loop over deliveries in Python. Only aggregated rows (one per
group, per person, or per answer hour) reach Python.

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
- launch compliance: `cadence.launches.launch_status` for each launch due in the window.
- briefing lag: per leader, median seconds from the first sent time of their launch leader
  briefing to their first counted answer to it, over briefings they acknowledged.
- bypasses: per leader, people in their direct team whose launch message was released by
  the leader's deadline instead of their acknowledgement ("leader bypassed"), and the
  number of launches that happened in.

Slicing (`Filters`): the window is on the occurrence's due time (since inclusive, until
exclusive); team, manager and scope select people by their current place in the directory
(a team includes its sub-teams; a manager or scope person includes themself and everyone
below them); channel keeps only deliveries on that channel (an answer on any channel still
counts for it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    Subquery,
    and_,
    case,
    cast,
    extract,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from cadence.acks import answered_condition
from cadence.audience import tree_of
from cadence.errors import InputError
from cadence.launches import LaunchContext, launch_status
from cadence.planning.followups import WorkingHours
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    MessageKind,
    Occurrence,
    OccurrenceStatus,
    Person,
    Team,
)

SEND_PURPOSES = ("cadence", "launch")
DEFAULT_TOLERANCE = timedelta(minutes=15)
BREAKDOWNS = ("message", "team", "manager", "channel", "repetition", "period")
PERIODS = ("day", "week", "month")
PERCENTILES = {"median": 0.5, "p90": 0.9}

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

#: A column or ORM attribute to group by.
SqlColumn = Any

_SUMS = (
    "planned",
    "sent",
    "acknowledged",
    "asked",
    "promoters",
    "detractors",
    "rated",
    "scheduled",
    "on_time",
)


@dataclass(frozen=True)
class Filters:
    """Which person-occurrences a figure covers. Datetimes must be aware."""

    since: datetime | None = None  # occurrences due at or after
    until: datetime | None = None  # occurrences due before
    message_id: int | None = None
    team: str | None = None  # a team path; its sub-teams are included
    manager_email: str | None = None  # this person and everyone below them
    channel: str | None = None
    scope_person_id: int | None = None  # a leader's view: their tree only

    @property
    def narrows_people(self) -> bool:
        return any(v is not None for v in (self.team, self.manager_email, self.scope_person_id))


# ---------------------------------------------------------------------------------------
# Dialect-specific SQL, kept to these few helpers


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def with_answers(units: Any, answers: Any) -> Any:
    """Person-occurrences joined to their answers, if any: the join most figures start from."""
    return units.outerjoin(
        answers,
        and_(
            answers.c.occurrence_id == units.c.occurrence_id,
            answers.c.person_id == units.c.person_id,
        ),
    )


def _seconds(dialect: str, later: Any, earlier: Any) -> ColumnElement[float]:
    """Seconds from `earlier` to `later`; SQLite's julianday is rounded to milliseconds so
    that exact boundaries (sent exactly at the tolerance) compare the same on both."""
    if dialect == "postgresql":
        return cast(extract("epoch", later - earlier), Float)
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def _ceil(dialect: str, value: ColumnElement[float]) -> ColumnElement[int]:
    if dialect == "postgresql":
        return cast(func.ceil(value), Integer)
    whole = cast(value, Integer)  # SQLite truncates; the values here are positive
    return whole + case((value > whole, 1), else_=0)


def _bucket(dialect: str, column: Any, period: str) -> ColumnElement[str]:
    """The UTC day, ISO week (from Monday) or month a time falls in, as YYYY-MM-DD."""
    if dialect == "postgresql":
        return func.to_char(func.date_trunc(period, column), "YYYY-MM-DD")
    if period == "day":
        return func.date(column)
    if period == "week":
        return func.date(column, "weekday 0", "-6 days")
    return func.strftime("%Y-%m-01", column)


# ---------------------------------------------------------------------------------------
# Slicing


def _like_prefix(path: str) -> str:
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "/%"


def _occurrence_conditions(
    filters: Filters, now: datetime | None, purposes: Sequence[str]
) -> list[ColumnElement[bool]]:
    for name, value in (("since", filters.since), ("until", filters.until), ("now", now)):
        if value is not None and value.tzinfo is None:
            raise InputError(f"{name} must be a time with a zone (UTC)")
    if filters.since and filters.until and filters.since >= filters.until:
        raise InputError("the start of the period must be before its end")
    found: list[ColumnElement[bool]] = [Occurrence.purpose.in_(purposes)]
    if filters.since is not None:
        found.append(Occurrence.due_at >= filters.since)
    if filters.until is not None:
        found.append(Occurrence.due_at < filters.until)
    if now is not None:
        found.append(Occurrence.due_at <= now)
    if filters.message_id is not None:
        found.append(Occurrence.message_id == filters.message_id)
    return found


def _tree_root(session: Session, filters: Filters) -> tuple[bool, int | None]:
    """(anyone at all, whose tree): the manager filter and the leader's scope combined.

    Trees nest, so two of them intersect in the lower one, or not at all; one recursive
    query is then enough.
    """
    manager_id: int | None = None
    if filters.manager_email is not None:
        email = filters.manager_email.strip().lower()
        manager_id = session.scalar(select(Person.id).where(Person.email == email))
        if manager_id is None:
            raise InputError(f"no person with email {email}")
    scope = filters.scope_person_id
    if manager_id is None or scope is None or scope == manager_id:
        return True, manager_id if manager_id is not None else scope
    for upper, lower in ((scope, manager_id), (manager_id, scope)):
        tree = tree_of(upper).subquery()
        if session.scalar(select(func.count()).select_from(tree).where(tree.c.id == lower)):
            return True, lower
    return False, None


PeopleConditions = Callable[[Any], list[ColumnElement[bool]]]


def _people_conditions(session: Session, filters: Filters) -> PeopleConditions:
    """A function giving the WHERE clauses that keep a person-id column inside the slice."""
    teams: Select[int] | None = None
    if filters.team is not None:
        path = filters.team.strip().strip("/")
        if session.scalar(select(Team.id).where(Team.path == path)) is None:
            raise InputError(f"unknown team {path!r}")
        teams = select(Team.id).where(
            or_(Team.path == path, Team.path.like(_like_prefix(path), escape="\\"))
        )
    anyone, root = _tree_root(session, filters)
    tree = tree_of(root) if anyone and root is not None else None

    def conditions(person_id: Any) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if teams is not None:
            found.append(person_id.in_(select(Person.id).where(Person.team_id.in_(teams))))
        if not anyone:
            found.append(false())
        elif tree is not None:
            found.append(person_id.in_(tree))
        return found

    return conditions


class _Query:
    """The subqueries every figure is built from, for one slice."""

    def __init__(
        self,
        session: Session,
        filters: Filters,
        *,
        now: datetime | None = None,
        purposes: Sequence[str] = SEND_PURPOSES,
        tolerance: timedelta = DEFAULT_TOLERANCE,
    ) -> None:
        self.session = session
        self.dialect = _dialect(session)
        self.filters = filters
        self.occurrence = _occurrence_conditions(filters, now, purposes)
        self.people = _people_conditions(session, filters)
        self.tolerance = tolerance.total_seconds()

    def units(
        self,
        keys: Mapping[str, SqlColumn],
        *,
        join_person: bool = False,
        per_channel: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> Subquery:
        """One row per person-occurrence (per channel too when `per_channel`): planned (0/1),
        first sent time, due time, purpose, and `keys` (columns of the occurrence or, with
        `join_person`, of the person).

        Deliveries are grouped on their own, selected by occurrence id, so the grouping
        follows the (occurrence, person, channel) unique index without a sort; the
        occurrence and person are joined to the grouped rows.
        """
        grouping: list[SqlColumn] = [Delivery.occurrence_id, Delivery.person_id]
        if per_channel:
            grouping.append(Delivery.channel)
        grouped = select(
            *grouping,
            func.max(case((Delivery.status != DeliveryStatus.CANCELLED.value, 1), else_=0)).label(
                "planned"
            ),
            func.min(
                case(
                    (
                        and_(
                            Delivery.status == DeliveryStatus.SENT.value,
                            Delivery.sent_at.is_not(None),
                        ),
                        Delivery.sent_at,
                    )
                )
            ).label("first_sent"),
        ).where(
            Delivery.occurrence_id.in_(select(Occurrence.id).where(*self.occurrence)),
            *self.people(Delivery.person_id),
            *where,
        )
        if self.filters.channel is not None:
            grouped = grouped.where(Delivery.channel == self.filters.channel)
        per_person = grouped.group_by(*grouping).subquery("grouped")
        stmt = select(
            per_person,
            *(column.label(name) for name, column in keys.items()),
            Occurrence.due_at.label("due_at"),
            Occurrence.purpose.label("purpose"),
        ).join(Occurrence, Occurrence.id == per_person.c.occurrence_id)
        if join_person:
            stmt = stmt.join(Person, Person.id == per_person.c.person_id)
        return stmt.subquery("units")

    def answers(self) -> Subquery:
        """One row per answered person-occurrence: first counted answer, whether any
        answer was a question, and the clarity ratings of counted answers."""
        counted = Acknowledgement.counted.is_(True)
        rating = Acknowledgement.clarity
        return (
            select(
                Acknowledgement.occurrence_id.label("occurrence_id"),
                Acknowledgement.person_id.label("person_id"),
                func.min(case((counted, Acknowledgement.created_at))).label("answered_at"),
                func.max(case((Acknowledgement.kind == "question", 1), else_=0)).label("asked"),
                func.sum(case((and_(counted, rating >= 9), 1), else_=0)).label("promoters"),
                func.sum(case((and_(counted, rating <= 6), 1), else_=0)).label("detractors"),
                func.sum(case((and_(counted, rating.is_not(None)), 1), else_=0)).label("rated"),
            )
            .where(Acknowledgement.occurrence_id.in_(select(Occurrence.id).where(*self.occurrence)))
            .group_by(Acknowledgement.occurrence_id, Acknowledgement.person_id)
            .subquery("answers")
        )

    def rows(self, keys: Sequence[str], units: Subquery, answers: Subquery) -> Subquery:
        """Each person-occurrence with its answer, as 0/1 columns ready to be summed."""
        sent = units.c.first_sent.is_not(None)
        answered = and_(sent, answers.c.answered_at.is_not(None))
        scheduled = and_(sent, units.c.purpose == "cadence")
        lateness = _seconds(self.dialect, units.c.first_sent, units.c.due_at)
        return (
            select(
                *(units.c[k] for k in keys),
                units.c.planned.label("planned"),
                case((sent, 1), else_=0).label("sent"),
                case((answered, 1), else_=0).label("acknowledged"),
                case((and_(sent, answers.c.asked == 1), 1), else_=0).label("asked"),
                case((sent, func.coalesce(answers.c.promoters, 0)), else_=0).label("promoters"),
                case((sent, func.coalesce(answers.c.detractors, 0)), else_=0).label("detractors"),
                case((sent, func.coalesce(answers.c.rated, 0)), else_=0).label("rated"),
                case((scheduled, 1), else_=0).label("scheduled"),
                case((and_(scheduled, lateness <= self.tolerance), 1), else_=0).label("on_time"),
                case(
                    (answered, _seconds(self.dialect, answers.c.answered_at, units.c.first_sent))
                ).label("duration"),
            )
            .select_from(with_answers(units, answers))
            .subquery("rows")
        )

    def figure_rows(
        self,
        keys: Mapping[str, SqlColumn],
        *,
        join_person: bool = False,
        per_channel: bool = False,
    ) -> list[dict[str, Any]]:
        units = self.units(keys, join_person=join_person, per_channel=per_channel)
        names = [*keys, *(["channel"] if per_channel else [])]
        rows = self.rows(names, units, self.answers())
        return [
            {**{k: r[k] for k in names}, **_figures(r)}
            for r in _aggregate(self.session, rows, names, _SUMS, "duration")
        ]


def _aggregate(
    session: Session,
    rows: Subquery,
    keys: Sequence[str],
    sums: Sequence[str],
    duration: str | None,
) -> list[dict[str, Any]]:
    """SUM each of `sums` per group of `keys`, with the median and 90th percentile of
    `duration` (non-null values only).

    PostgreSQL has percentile_cont. On SQLite the values each percentile interpolates
    between are picked out by their rank (a window function) in the same grouped query, so
    percentiles cost one pass and no column of durations is fetched.
    """
    dialect = _dialect(session)
    postgres = dialect == "postgresql"
    source = rows
    if duration is not None and not postgres:
        value = rows.c[duration]
        parts = [rows.c[k] for k in keys]
        source = select(
            rows,
            func.row_number()
            .over(partition_by=[*parts, value.is_(None)], order_by=value)
            .label("_rank"),
            func.count(value).over(partition_by=parts or None).label("_count"),
        ).subquery("ranked")
    group = [source.c[k] for k in keys]
    columns: list[ColumnElement[Any]] = [
        *group,
        *(func.coalesce(func.sum(source.c[s]), 0).label(s) for s in sums),
    ]
    if duration is not None:
        value = source.c[duration]
        if postgres:
            columns.append(func.count(value).label("_n"))
            columns += [
                func.percentile_cont(p).within_group(value).label(f"_{name}")
                for name, p in PERCENTILES.items()
            ]
        else:
            count = source.c["_count"]
            columns.append(func.max(count).label("_n"))
            for name, p in PERCENTILES.items():
                low = cast(p * (count - 1), Integer)
                for suffix, rank in (("lo", low + 1), ("hi", low + 2)):
                    picked = and_(value.is_not(None), source.c["_rank"] == rank)
                    columns.append(func.max(case((picked, value))).label(f"_{name}_{suffix}"))
    stmt = select(*columns)
    if group:
        stmt = stmt.group_by(*group)
    out: list[dict[str, Any]] = []
    for row in session.execute(stmt).mappings():
        item = {k: row[k] for k in keys}
        item.update({s: int(row[s]) for s in sums})
        if duration is not None:
            for name, p in PERCENTILES.items():
                found = (
                    row[f"_{name}"]
                    if postgres
                    else _interpolate(p, row["_n"], row[f"_{name}_lo"], row[f"_{name}_hi"])
                )
                item[name] = None if found is None else round(float(found), 1)
        out.append(item)
    return out


def _interpolate(p: float, n: int | None, low: float | None, high: float | None) -> float | None:
    """percentile_cont's linear interpolation between the values at ranks floor and ceil of
    p x (n - 1)."""
    if not n or low is None:
        return None
    position = p * (n - 1)
    fraction = position - math.floor(position)
    if high is None or fraction == 0:
        return float(low)
    return float(low) + (float(high) - float(low)) * fraction


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(r: Mapping[str, Any]) -> dict[str, Any]:
    rated = r["rated"]
    return {
        "planned": r["planned"],
        "sent": r["sent"],
        "reach": _ratio(r["sent"], r["planned"]),
        "acknowledged": r["acknowledged"],
        "ack_rate": _ratio(r["acknowledged"], r["sent"]),
        "ack_median_s": r["median"],
        "ack_p90_s": r["p90"],
        "questions": r["asked"],
        "question_rate": _ratio(r["asked"], r["sent"]),
        "ratings": rated,
        "clarity_score": (
            round(100 * (r["promoters"] - r["detractors"]) / rated, 1) if rated else None
        ),
        "on_time": r["on_time"],
        "on_time_share": _ratio(r["on_time"], r["scheduled"]),
        "delivered_share": _ratio(r["sent"], r["planned"]),
    }


_EMPTY: dict[str, Any] = {
    **{s: 0 for s in _SUMS},
    **{name: None for name in PERCENTILES},
}


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
    query = _Query(session, filters, now=now, tolerance=tolerance)
    found = query.figure_rows({})
    figures = found[0] if found else _figures(_EMPTY)
    missed = session.scalar(
        select(func.count())
        .select_from(Occurrence)
        .where(*query.occurrence, Occurrence.purpose == "cadence")
        .where(Occurrence.status == OccurrenceStatus.SKIPPED.value)
        .where(Occurrence.note.like("missed:%"))
    )
    return {
        "as_of": now.isoformat(timespec="seconds"),
        **figures,
        "on_time_tolerance_minutes": tolerance.total_seconds() / 60,
        "missed_occurrences": int(missed or 0),
        "launches": _launches(session, query, now, launch_context or default_launch_context()),
    }


def _launches(
    session: Session, query: _Query, now: datetime, ctx: LaunchContext
) -> list[dict[str, Any]]:
    """launch_status for each launch due in the slice. Its counts cover the whole launch;
    when the slice narrows people, the lists of names keep only people inside it."""
    ids = session.scalars(
        select(Occurrence.message_id)
        .join(Message, Message.id == Occurrence.message_id)
        .where(*query.occurrence)
        .where(Message.kind == MessageKind.LAUNCH.value, Occurrence.purpose == "launch")
        .order_by(Occurrence.due_at, Occurrence.message_id)
    ).all()
    out = []
    for message_id in ids:
        status = launch_status(session, message_id, ctx, now)
        if query.filters.narrows_people:
            named = [*status["breached"], *status["not_yet_reached"]]
            inside = set(
                session.scalars(
                    select(Person.email).where(Person.email.in_(named), *query.people(Person.id))
                )
            )
            status["breached"] = [e for e in status["breached"] if e in inside]
            status["not_yet_reached"] = [e for e in status["not_yet_reached"] if e in inside]
        out.append(status)
    return out


def _keys(by: str, dialect: str, period: str) -> tuple[dict[str, SqlColumn], bool, bool]:
    """The grouping column for a breakdown, whether it needs the person's row, and whether
    it is the channel (grouped with the deliveries themselves)."""
    if by not in BREAKDOWNS:
        raise InputError(f"unknown breakdown {by!r} (one of: {', '.join(BREAKDOWNS)})")
    if period not in PERIODS:
        raise InputError(f"unknown period {period!r} (one of: {', '.join(PERIODS)})")
    if by == "channel":
        return {}, False, True
    columns: dict[str, tuple[SqlColumn, bool]] = {
        "message": (Occurrence.message_id, False),
        "team": (Person.team_id, True),
        "manager": (Person.manager_id, True),
        "repetition": (Occurrence.sequence + 1, False),
        "period": (_bucket(dialect, Occurrence.due_at, period), False),
    }
    column, join_person = columns[by]
    return {by: column}, join_person, False


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
) -> list[dict[str, Any]]:
    """The headline figures, as of `now`, per message, team (each person's own team), direct
    manager, channel, repetition (1 = first) or period (UTC day, week from Monday, or month
    of the due time). Each row has the key under the name of `by` (a message also has its title;
    people with no team or manager are under None) and the figure columns.

    By channel a person-occurrence counts once per channel it was planned on, and its answer
    counts for each; rows then add up to more than the overview.
    """
    query = _Query(session, filters, now=now, tolerance=tolerance)
    keys, join_person, per_channel = _keys(by, query.dialect, period)
    rows = query.figure_rows(keys, join_person=join_person, per_channel=per_channel)
    labels = _labels(session, by, [r[by] for r in rows])
    for row in rows:
        if by == "message":
            row["title"] = labels.get(row[by])
        elif by in ("team", "manager"):
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
    query = _Query(session, replace(filters, message_id=message_id))
    units, answers = query.units({}), query.answers()
    since_due = _seconds(query.dialect, answers.c.answered_at, units.c.due_at)
    hour = case(
        (answers.c.answered_at.is_(None), None),
        (since_due <= 0, 0),
        else_=_ceil(query.dialect, since_due / 3600.0),
    ).label("hour")
    counts = session.execute(
        select(hour, func.count())
        .select_from(with_answers(units, answers))
        .where(units.c.first_sent.is_not(None))
        .group_by(hour)
    ).all()
    total = sum(n for _, n in counts)
    if not total:
        return []
    by_hour = {int(h): n for h, n in counts if h is not None}
    last = max(by_hour, default=0)
    curve: list[tuple[float, float]] = []
    answered = 0
    for h in range(last + 1):
        answered += by_hour.get(h, 0)
        curve.append((float(h), round(answered / total, 4)))
    return curve


def heatmap(session: Session, filters: Filters) -> dict[str, Any]:
    """Acknowledgement rate per team (each person's own team) and message.

    `rates[i][j]` is for `teams[i]` and `messages[j]`; None where nothing was sent. `cells`
    lists the counts behind every rate.
    """
    query = _Query(session, filters)
    keys: dict[str, SqlColumn] = {
        "team": Person.team_id,
        "message": Occurrence.message_id,
    }
    units = query.units(keys, join_person=True)
    rows = query.rows(list(keys), units, query.answers())
    found = _aggregate(session, rows, list(keys), ("sent", "acknowledged"), None)
    team_names = _labels(session, "team", [r["team"] for r in found])
    titles = _labels(session, "message", [r["message"] for r in found])
    cells = sorted(
        (
            {
                "team": team_names.get(r["team"]),
                "message_id": r["message"],
                "sent": r["sent"],
                "acknowledged": r["acknowledged"],
                "ack_rate": _ratio(r["acknowledged"], r["sent"]),
            }
            for r in found
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
    query = _Query(session, sliced)
    units, answers = query.units({}), query.answers()
    answered = and_(units.c.first_sent.is_not(None), answers.c.answered_at.is_not(None))
    per_person = (
        select(
            units.c.person_id.label("person_id"),
            func.sum(units.c.planned).label("planned"),
            func.count(units.c.first_sent).label("received"),
            func.sum(case((answered, 1), else_=0)).label("acknowledged"),
        )
        .select_from(with_answers(units, answers))
        .group_by(units.c.person_id)
        .subquery("per_person")
    )
    audience = per_person.c.planned > 0
    summary = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((per_person.c.received >= k, 1), else_=0)), 0),
        ).where(audience)
    ).one()
    distribution = session.execute(
        select(per_person.c.received, func.count())
        .where(audience)
        .group_by(per_person.c.received)
        .order_by(per_person.c.received)
    ).all()
    people = session.execute(
        select(Person.email, Person.name, per_person.c.received, per_person.c.acknowledged)
        .join(Person, Person.id == per_person.c.person_id)
        .where(audience)
        .order_by(Person.email)
    ).all()
    offered = session.scalar(
        select(func.count(func.distinct(Occurrence.sequence))).where(
            *query.occurrence,
            Occurrence.status.in_(
                [OccurrenceStatus.DISPATCHING.value, OccurrenceStatus.DISPATCHED.value]
            ),
        )
    )
    size, reached = int(summary[0]), int(summary[1])
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
        "distribution": {int(times): int(n) for times, n in distribution},
        "people": [
            {"person": email, "name": name, "received": int(got), "acknowledged": int(acked)}
            for email, name, got, acked in people
        ],
    }


def not_acknowledged(session: Session, message_id: int, filters: Filters) -> list[dict[str, Any]]:
    """Active people who have not answered the latest occurrence of the message they were
    sent (in the slice), for a version of the message that still counts: who to chase."""
    message = _message(session, message_id)
    query = _Query(session, replace(filters, message_id=message_id))
    units = query.units({})
    latest = (
        select(
            units.c.occurrence_id,
            units.c.person_id,
            units.c.first_sent,
            units.c.due_at,
            func.row_number()
            .over(
                partition_by=units.c.person_id,
                order_by=[units.c.due_at.desc(), units.c.occurrence_id.desc()],
            )
            .label("newest"),
        )
        .where(units.c.first_sent.is_not(None))
        .subquery("latest")
    )
    manager = aliased(Person)
    rows = session.execute(
        select(
            Person.email,
            Person.name,
            Team.path,
            manager.email,
            Occurrence.sequence,
            latest.c.due_at,
            latest.c.first_sent,
        )
        .select_from(latest)
        .join(Person, Person.id == latest.c.person_id)
        .join(Occurrence, Occurrence.id == latest.c.occurrence_id)
        .outerjoin(Team, Team.id == Person.team_id)
        .outerjoin(manager, manager.id == Person.manager_id)
        .where(latest.c.newest == 1, Person.active.is_(True))
        .where(~answered_condition(latest.c.occurrence_id, latest.c.person_id, message.ack_version))
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


def leaders(session: Session, filters: Filters) -> list[dict[str, Any]]:
    """Per leader: launch briefings sent and acknowledged, the median briefing lag, and
    bypasses of their direct team. Team, manager and scope filters select the leaders."""
    query = _Query(session, filters, purposes=("launch",))
    payload = Delivery.payload
    briefing = payload["briefing"].as_boolean().is_(True)
    units, answers = query.units({}, where=[briefing]), query.answers()
    answered = and_(units.c.first_sent.is_not(None), answers.c.answered_at.is_not(None))
    briefed = (
        select(
            units.c.person_id.label("leader"),
            case((units.c.first_sent.is_not(None), 1), else_=0).label("sent"),
            case((answered, 1), else_=0).label("acknowledged"),
            case(
                (answered, _seconds(query.dialect, answers.c.answered_at, units.c.first_sent))
            ).label("lag"),
        )
        .select_from(with_answers(units, answers))
        .subquery("briefed")
    )
    found = _aggregate(session, briefed, ["leader"], ("sent", "acknowledged"), "lag")
    lags: dict[int, dict[str, Any]] = {int(r["leader"]): r for r in found}
    bypassed_units = (
        select(Delivery.occurrence_id, Delivery.person_id)
        .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
        .where(*query.occurrence, payload["release"].as_string() == "leader bypassed")
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
            .where(Person.manager_id.is_not(None), *query.people(Person.manager_id))
            .group_by(Person.manager_id)
        )
        if leader is not None
    }
    ids = sorted(set(lags) | set(bypasses))
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
        lag = lags.get(pid)
        people, launches = bypasses.get(pid, (0, 0))
        out.append(
            {
                "leader": email,
                "name": name,
                "team": path,
                "direct_reports": int(reports.get(pid, 0)),
                "briefings": lag["sent"] if lag else 0,
                "briefings_acknowledged": lag["acknowledged"] if lag else 0,
                "briefing_lag_median_s": lag["median"] if lag else None,
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
    "SEND_PURPOSES",
    "Filters",
    "ack_curve",
    "breakdown",
    "default_launch_context",
    "heatmap",
    "leaders",
    "not_acknowledged",
    "overview",
    "repetition",
]
