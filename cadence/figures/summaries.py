"""The figure summaries, kept current from the change log.

Deliveries and acknowledgements are the source of truth; figures over millions of them
cannot be computed from them on every page view. So three derived tables hold what the
figures read (see their models):

- `person_occurrences`: one row per send delivery, with the person-occurrence's values
  (planned, first sent, first counted answer, ratings, time to acknowledge) worked out;
- `occurrence_figures`: the sums of those rows per occurrence, for everyone (on all
  channels and on each one) and for each team and manager pair;
- `figure_histograms`: per occurrence, how many answers fall in each time-to-acknowledge
  bucket (for the same groups) and in each hour after the due time.

Triggers in the database (created by migration 0007) write a `figure_changes` row in the
same transaction as any change that matters, so every writer (sender, dispatcher,
acknowledgement, directory import, a hand-written UPDATE) is covered. `catch_up`
recomputes the rows those changes touch from the source tables, in the caller's
transaction, and deletes the changes. A refresh is a recomputation, never an increment, so
running it twice, or after a crash, gives the same result. The beat runs it every tick,
and the dashboard and `cadence report` run it (`refresh`) before they read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from cadence.store.bulk import affected
from cadence.store.db import session_scope
from cadence.store.expressions import ceil_int, floor_int, seconds_between
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    FigureChange,
    FigureHistogram,
    Occurrence,
    OccurrenceFigures,
    Person,
    PersonOccurrence,
)

log = logging.getLogger("cadence.figures.summaries")

#: Occurrence purposes that are sends; tests, reminders and digests are not.
SEND_PURPOSES = ("cadence", "launch")
#: How late a core message may go out and still count as on time.
DEFAULT_TOLERANCE = timedelta(minutes=15)
#: The `channel` of summary rows that count each person once, whatever the channel.
ALL_CHANNELS = ""
#: The `team_id` and `manager_id` of summary rows for everyone, and of those for people
#: in no team or with no manager.
EVERYONE = 0
NONE = -1
#: Change rows handled per round of `catch_up`, and occurrences recomputed per statement.
CHUNK = 50_000
OCCURRENCES_AT_ONCE = 500
# PostgreSQL advisory lock held by the one refresh running at a time ("CADE"), with the
# schema as its second key: advisory locks belong to the whole database, and two Cadence
# installations in two schemas of one database must not wait for each other.
_LOCK_KEY = 0x43414445

# ---------------------------------------------------------------------------------------
# Time-to-acknowledge buckets: two significant figures of the seconds (whole seconds
# below 100 s), so a bucket is at most 10% wide and a whole history has a few hundred.

_TOP_BUCKET = 10**9


def wait_bucket_sql(dialect: str, seconds: Any) -> ColumnElement[int]:
    """The bucket of a time to acknowledge, in SQL; NULL for NULL."""
    whens: list[tuple[Any, Any]] = [
        (seconds.is_(None), null()),
        (seconds < 0, -1),
        (seconds < 100, floor_int(dialect, seconds)),
    ]
    for exponent in range(3, 10):
        width = 10 ** (exponent - 2)
        whens.append((seconds < 10**exponent, floor_int(dialect, seconds / width) * width))
    return case(*whens, else_=_TOP_BUCKET)


def wait_bucket(seconds: float) -> int:
    """The same bucket, in Python."""
    if seconds < 0:
        return -1
    if seconds < 100:
        return math.floor(seconds)
    if seconds >= _TOP_BUCKET:
        return _TOP_BUCKET
    width: int = 10 ** (len(str(math.floor(seconds))) - 2)
    return math.floor(seconds / width) * width


# ---------------------------------------------------------------------------------------
# Which columns a figure reads


@dataclass(frozen=True)
class Columns:
    """The columns of `person_occurrences` for one way of counting: each person-occurrence
    once (`per_channel` False: its `counts` row, its all-channel values) or each channel's
    rows with that channel's own values."""

    per_channel: bool

    def _either(self, name: str) -> Any:
        """The column `name` for this way of counting (`channel_name` per channel)."""
        return getattr(PersonOccurrence, f"channel_{name}" if self.per_channel else name)

    planned = property(lambda self: self._either("planned"))
    first_sent = property(lambda self: self._either("first_sent"))
    lateness_s = property(lambda self: self._either("lateness_s"))
    wait_s = property(lambda self: self._either("wait_s"))
    wait_bucket = property(lambda self: self._either("wait_bucket"))

    @property
    def channel(self) -> Any:
        return PersonOccurrence.channel if self.per_channel else literal(ALL_CHANNELS)

    def rows(self) -> list[ColumnElement[bool]]:
        """The WHERE clause that picks one row per person-occurrence, or none."""
        return [] if self.per_channel else [PersonOccurrence.counts == 1]

    def sent(self) -> ColumnElement[bool]:
        sent: ColumnElement[bool] = self.first_sent.is_not(None)
        return sent

    def acknowledged(self) -> ColumnElement[bool]:
        return and_(self.sent(), PersonOccurrence.answered_at.is_not(None))

    def measures(self, tolerance: timedelta = DEFAULT_TOLERANCE) -> dict[str, Any]:
        """Per row, what the figures add up: 0/1 flags and counts (joined to the
        occurrence, for its purpose)."""
        p = PersonOccurrence
        sent = self.sent()
        scheduled = and_(sent, Occurrence.purpose == "cadence")
        return {
            "planned": self.planned,
            "sent": case((sent, 1), else_=0),
            "acknowledged": case((self.acknowledged(), 1), else_=0),
            "asked": case((and_(sent, p.asked == 1), 1), else_=0),
            "promoters": case((sent, p.promoters), else_=0),
            "detractors": case((sent, p.detractors), else_=0),
            "rated": case((sent, p.rated), else_=0),
            "scheduled": case((scheduled, 1), else_=0),
            "on_time": case(
                (and_(scheduled, self.lateness_s <= tolerance.total_seconds()), 1), else_=0
            ),
        }


PER_PERSON = Columns(per_channel=False)
PER_CHANNEL = Columns(per_channel=True)
SUMS = tuple(PER_PERSON.measures())


# ---------------------------------------------------------------------------------------
# Recomputing


Changed = Callable[[Any, Any], ColumnElement[bool]]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _changed_in(occurrences: Sequence[int]) -> Changed:
    """A WHERE builder for "this person-occurrence, of one of these occurrences, has a
    taken change". The occurrence ids are given as values, so that planners read the rows
    of those occurrences through their indexes whatever their statistics say."""
    taken = FigureChange.taken.is_(True)
    pairs = select(FigureChange.occurrence_id, FigureChange.person_id).where(
        taken, FigureChange.occurrence_id.is_not(None), FigureChange.person_id.is_not(None)
    )
    whole = select(FigureChange.occurrence_id).where(taken, FigureChange.person_id.is_(None))

    def changed(occurrence_id: Any, person_id: Any) -> ColumnElement[bool]:
        return and_(
            occurrence_id.in_(occurrences),
            or_(tuple_(occurrence_id, person_id).in_(pairs), occurrence_id.in_(whole)),
        )

    return changed


def person_occurrence_rows(dialect: str, changed: Changed) -> Select[Any]:
    """The `person_occurrences` rows of the send deliveries `changed` selects, computed
    from deliveries, their occurrences and the acknowledgements."""
    d, a = Delivery, Acknowledgement
    sent = and_(d.status == DeliveryStatus.SENT.value, d.sent_at.is_not(None))
    counted = a.counted.is_(True)
    # Each delivery with the answers of its person-occurrence: joined row by row through
    # the acknowledgements' (occurrence, person) index, then grouped per delivery.
    per_channel = (
        select(
            d.occurrence_id.label("occurrence_id"),
            d.person_id.label("person_id"),
            d.channel.label("channel"),
            func.max(case((d.status != DeliveryStatus.CANCELLED.value, 1), else_=0)).label(
                "channel_planned"
            ),
            func.max(case((sent, d.sent_at))).label("channel_first_sent"),
            func.max(Occurrence.message_id).label("message_id"),
            func.max(Occurrence.due_at).label("due_at"),
            func.min(case((counted, a.created_at))).label("answered_at"),
            func.max(case((counted, a.message_version))).label("answered_version"),
            func.max(case((a.kind == "question", 1), else_=0)).label("asked"),
            func.sum(case((and_(counted, a.clarity >= 9), 1), else_=0)).label("promoters"),
            func.sum(case((and_(counted, a.clarity <= 6), 1), else_=0)).label("detractors"),
            func.sum(case((and_(counted, a.clarity.is_not(None)), 1), else_=0)).label("rated"),
        )
        .join(Occurrence, Occurrence.id == d.occurrence_id)
        .outerjoin(a, and_(a.occurrence_id == d.occurrence_id, a.person_id == d.person_id))
        .where(Occurrence.purpose.in_(SEND_PURPOSES), changed(d.occurrence_id, d.person_id))
        .group_by(d.id)
        .subquery("per_channel")
    )
    c = per_channel.c
    unit = [c.occurrence_id, c.person_id]
    ranked = select(
        per_channel,
        func.max(c.channel_planned).over(partition_by=unit).label("planned"),
        func.min(c.channel_first_sent).over(partition_by=unit).label("first_sent"),
        # The row that stands for the person-occurrence: the channel it first went out on.
        func.row_number()
        .over(
            partition_by=unit,
            order_by=[c.channel_first_sent.is_(None), c.channel_first_sent, c.channel],
        )
        .label("rank"),
    ).subquery("ranked")
    r = ranked.c
    answered = r.answered_at.is_not(None)

    def waited(first_sent: Any) -> Any:
        return case(
            (
                and_(first_sent.is_not(None), answered),
                seconds_between(dialect, r.answered_at, first_sent),
            )
        )

    since_due = seconds_between(dialect, r.answered_at, r.due_at)
    measured = select(
        r.occurrence_id,
        r.person_id,
        r.channel,
        r.message_id,
        r.due_at,
        case((r.rank == 1, 1), else_=0).label("counts"),
        r.planned,
        r.first_sent,
        seconds_between(dialect, r.first_sent, r.due_at).label("lateness_s"),
        waited(r.first_sent).label("wait_s"),
        r.channel_planned,
        r.channel_first_sent,
        seconds_between(dialect, r.channel_first_sent, r.due_at).label("channel_lateness_s"),
        waited(r.channel_first_sent).label("channel_wait_s"),
        r.answered_at,
        r.answered_version,
        func.coalesce(r.asked, 0).label("asked"),
        func.coalesce(r.promoters, 0).label("promoters"),
        func.coalesce(r.detractors, 0).label("detractors"),
        func.coalesce(r.rated, 0).label("rated"),
        case(
            (answered, case((since_due <= 0, 0), else_=ceil_int(dialect, since_due / 3600.0)))
        ).label("ack_hour"),
    ).subquery("measured")
    m = measured.c
    buckets = {
        "wait_bucket": wait_bucket_sql(dialect, m.wait_s),
        "channel_wait_bucket": wait_bucket_sql(dialect, m.channel_wait_s),
    }
    return select(*(buckets[n].label(n) if n in buckets else m[n] for n in _STORED))


# In table order, which is the order INSERT ... SELECT fills them in.
_STORED = [c.name for c in PersonOccurrence.__table__.columns]


def cell_of(column: Any) -> ColumnElement[int]:
    """The `team_id` or `manager_id` of the summary cell a person's team or manager
    falls in."""
    return func.coalesce(column, NONE)


def _cells(columns: Columns, by_group: bool) -> tuple[list[Any], list[Any]]:
    """(the cell key columns, what to group by) for one kind of summary row: everyone's,
    or (`by_group`) each team and manager's."""
    p = PersonOccurrence
    if by_group:
        team, manager = cell_of(Person.team_id), cell_of(Person.manager_id)
    else:
        team = manager = literal(EVERYONE)
    keys = [
        p.occurrence_id,
        columns.channel.label("channel"),
        team.label("team_id"),
        manager.label("manager_id"),
    ]
    grouping = [p.occurrence_id, *([p.channel] if columns.per_channel else [])]
    return keys, grouping + ([team, manager] if by_group else [])


def _figure_rows(
    columns: Columns, touched: Sequence[int], *, by_group: bool = False
) -> Select[Any]:
    keys, grouping = _cells(columns, by_group)
    stmt = (
        select(
            *keys,
            *(func.sum(value).label(name) for name, value in columns.measures().items()),
            func.min(columns.first_sent).label("first_sent"),
        )
        .join(Occurrence, Occurrence.id == PersonOccurrence.occurrence_id)
        .where(PersonOccurrence.occurrence_id.in_(touched), *columns.rows())
        .group_by(*grouping)
    )
    return stmt.join(Person, Person.id == PersonOccurrence.person_id) if by_group else stmt


def _histogram_rows(
    columns: Columns, measure: str, touched: Sequence[int], *, by_group: bool = False
) -> Select[Any]:
    p = PersonOccurrence
    bucket = columns.wait_bucket if measure == "wait" else p.ack_hour
    keys, grouping = _cells(columns, by_group)
    stmt = (
        select(
            keys[0],
            keys[1],
            literal(measure).label("measure"),
            keys[2],
            keys[3],
            bucket.label("bucket"),
            func.count().label("count"),
        )
        .where(p.occurrence_id.in_(touched), columns.acknowledged(), *columns.rows())
        .group_by(*grouping, bucket)
    )
    return stmt.join(Person, Person.id == p.person_id) if by_group else stmt


# The summary rows kept per occurrence: (how rows are counted, split by team and manager,
# measures).
_KEPT = (
    (PER_PERSON, False, ("wait", "hour")),
    (PER_CHANNEL, False, ("wait", "hour")),
    (PER_PERSON, True, ("wait",)),
)


def _refresh_taken(session: Session) -> None:
    dialect = _dialect(session)
    taken = FigureChange.taken.is_(True)
    found: set[int] = {
        int(occurrence_id)
        for occurrence_id in session.scalars(
            select(FigureChange.occurrence_id).where(taken, FigureChange.occurrence_id.is_not(None))
        )
        if occurrence_id is not None
    }
    # People who moved team or manager: the cells of each of their sends, read from the
    # deliveries (the source) so that none the summaries have not seen yet is missed.
    moved = select(FigureChange.person_id).where(taken, FigureChange.occurrence_id.is_(None))
    found |= set(
        session.scalars(
            select(Delivery.occurrence_id)
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(Delivery.person_id.in_(moved), Occurrence.purpose.in_(SEND_PURPOSES))
            .distinct()
        )
    )
    occurrences = sorted(found)
    for start in range(0, len(occurrences), OCCURRENCES_AT_ONCE):
        _refresh_occurrences(session, dialect, occurrences[start : start + OCCURRENCES_AT_ONCE])


def _refresh_occurrences(session: Session, dialect: str, touched: Sequence[int]) -> None:
    """Recompute the changed person-occurrences of these occurrences, then every cell of
    theirs."""
    changed = _changed_in(touched)
    p = PersonOccurrence
    session.execute(delete(p).where(changed(p.occurrence_id, p.person_id)))
    session.execute(
        insert(PersonOccurrence).from_select(_STORED, person_occurrence_rows(dialect, changed))
    )
    figure_columns = [c.name for c in OccurrenceFigures.__table__.columns]
    histogram_columns = [c.name for c in FigureHistogram.__table__.columns]
    session.execute(delete(OccurrenceFigures).where(OccurrenceFigures.occurrence_id.in_(touched)))
    session.execute(delete(FigureHistogram).where(FigureHistogram.occurrence_id.in_(touched)))
    for columns, by_group, measures in _KEPT:
        session.execute(
            insert(OccurrenceFigures).from_select(
                figure_columns, _figure_rows(columns, touched, by_group=by_group)
            )
        )
        for measure in measures:
            session.execute(
                insert(FigureHistogram).from_select(
                    histogram_columns,
                    _histogram_rows(columns, measure, touched, by_group=by_group),
                )
            )


def pending(session: Session) -> bool:
    """Whether any change waits to be summarised."""
    return bool(session.scalar(select(exists().where(FigureChange.id.is_not(None)))))


def catch_up(session: Session, *, chunk: int = CHUNK, wait: bool = True) -> int:
    """Recompute the summaries of every change committed so far (and of the caller's own,
    uncommitted ones), in the caller's transaction. Returns how many changes it handled.

    One refresh runs at a time (an advisory lock on PostgreSQL, the write lock on
    SQLite): two refreshes working from different snapshots could otherwise write an
    older result over a newer one. With `wait` False, on PostgreSQL, it leaves the work to
    a refresh already running instead of waiting for it.
    """
    if not pending(session):
        return 0
    postgres = _dialect(session) == "postgresql"
    if postgres and not wait:
        if not session.scalar(select(func.pg_try_advisory_xact_lock(*_lock()))):
            return 0  # another refresh is running; it or the next one will do these
    elif postgres:
        session.execute(select(func.pg_advisory_xact_lock(*_lock())))
    # Only what was logged before this refresh began, so that writers logging changes as
    # fast as it works cannot keep it going.
    last = session.scalar(select(func.max(FigureChange.id)))
    handled = 0
    with _bulk_plans(session):
        while True:
            # Rows left taken by a refresh that failed but was committed are taken again.
            batch = select(FigureChange.id).where(FigureChange.id <= last)
            took = affected(
                session,
                update(FigureChange)
                .where(FigureChange.id.in_(batch.order_by(FigureChange.id).limit(chunk)))
                .values(taken=True),
            )
            if not took:
                return handled
            _refresh_taken(session)
            session.execute(delete(FigureChange).where(FigureChange.taken.is_(True)))
            handled += took


def _lock() -> tuple[Any, Any]:
    return literal(_LOCK_KEY), func.hashtext(func.current_schema())


@contextmanager
def _bulk_plans(session: Session) -> Iterator[None]:
    """On PostgreSQL: plan the refresh's statements without nested loops.

    The occurrences a refresh works on are usually the newest, which the planner's
    statistics have not seen yet; it then expects one row and joins thousands of
    deliveries to thousands of answers pair by pair. Hash joins cost little more when it
    is right and save seconds when it is not. The setting is local to the transaction, so
    a failed refresh's rollback undoes it too.
    """
    if _dialect(session) != "postgresql":
        yield
        return
    before = session.scalar(select(func.current_setting("enable_nestloop")))
    session.execute(select(func.set_config("enable_nestloop", "off", True)))
    yield
    session.execute(select(func.set_config("enable_nestloop", before, True)))


def refresh(sessions: sessionmaker[Session], *, wait: bool = True) -> int:
    """`catch_up` in a transaction of its own, committed before anything is read. On a
    database Cadence may only read (a read-only file, a standby) it does nothing: the
    figures are then those summarised where the writing happens."""
    try:
        with session_scope(sessions) as session:
            return catch_up(session, wait=wait)
    except DBAPIError as exc:
        if not _read_only(exc):
            raise
        log.info("figure summaries not refreshed: the database is read-only here")
        return 0


def _read_only(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate == "25006" or "readonly database" in str(exc.orig)


def rebuild(session: Session) -> int:
    """Recompute every summary from the source tables (after a bulk load, or to repair).
    Returns how many occurrences it summarised."""
    session.execute(delete(FigureChange))
    session.execute(delete(FigureHistogram))
    session.execute(delete(OccurrenceFigures))
    session.execute(delete(PersonOccurrence))
    session.execute(
        insert(FigureChange).from_select(
            ["occurrence_id", "person_id"],
            select(Occurrence.id, null()).where(Occurrence.purpose.in_(SEND_PURPOSES)),
        )
    )
    return catch_up(session)
