"""Which person-occurrences a figure covers, and the two ways of adding them up.

Figures read the summaries as they are: callers bring them up to date first with
`cadence.figures.summaries.catch_up` (the dashboard, `cadence report` and the beat do), in a
transaction of its own, so that reading never holds a write lock.

A `Slice` is a window of occurrences (due time, message, purpose), a set of people (team,
manager, a leader's scope) and optionally one channel. Its figures come from the
summaries (cadence.figures.summaries), with the default on-time tolerance:

- when it narrows no people, from everyone's per-occurrence sums and histograms (on all
  channels or on one): a few rows per occurrence, whatever the audience;
- when it narrows people to a team or a tree, or groups by team or manager, on all
  channels, from the sums and histograms kept per occurrence for each team and manager;
- otherwise from the person-occurrence rows of the people in it.

Either way a percentile reads the histogram first and then only the rows of the one or
two buckets it needs (cadence.figures.percentiles), so no figure sorts millions of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.util import find_tables

from cadence.directory.audience import team_and_below, tree_of
from cadence.errors import InputError
from cadence.figures.percentiles import StaleHistogram, ValuesIn, percentile
from cadence.figures.summaries import (
    ALL_CHANNELS,
    DEFAULT_TOLERANCE,
    EVERYONE,
    NONE,
    PER_CHANNEL,
    PER_PERSON,
    SEND_PURPOSES,
    SUMS,
)
from cadence.store.models import (
    FigureHistogram,
    Occurrence,
    OccurrenceFigures,
    Person,
    PersonOccurrence,
    Team,
)

PERCENTILES = {"median": 0.5, "p90": 0.9}

#: A column or SQL expression to group by.
SqlColumn = Any
GroupKey = tuple[Any, ...]


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


def occurrence_conditions(
    filters: Filters, now: datetime | None, purposes: Sequence[str] = SEND_PURPOSES
) -> list[ColumnElement[bool]]:
    """WHERE clauses over Occurrence for the window, the message and the purposes."""
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


class People:
    """The people a slice keeps: WHERE clauses for any column holding a person id."""

    def __init__(self, session: Session, filters: Filters) -> None:
        self.teams: Select[int] | None = None
        if filters.team is not None:
            path = filters.team.strip().strip("/")
            if session.scalar(select(Team.id).where(Team.path == path)) is None:
                raise InputError(f"unknown team {path!r}")
            self.teams = select(Team.id).where(team_and_below(path))
        self.anyone, self.root = _tree_root(session, filters)
        self.tree = tree_of(self.root) if self.anyone and self.root is not None else None

    def __call__(self, person_id: Any) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.teams is not None:
            found.append(person_id.in_(select(Person.id).where(Person.team_id.in_(self.teams))))
        if not self.anyone:
            found.append(false())
        elif self.tree is not None:
            found.append(person_id.in_(self.tree))
        return found


class Slice:
    """The person-occurrences of one view of the figures, read from the summaries.

    `per_channel` groups by channel (each channel's rows count for it); a channel filter
    reads that channel's rows. `where` adds conditions on the person-occurrence rows
    (e.g. leader briefings only), which rules out the per-occurrence sums.
    """

    def __init__(
        self,
        session: Session,
        filters: Filters,
        *,
        now: datetime | None = None,
        purposes: Sequence[str] = SEND_PURPOSES,
        tolerance: timedelta = DEFAULT_TOLERANCE,
        per_channel: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> None:
        self.session = session
        self.filters = filters
        self.now = now
        self.purposes = tuple(purposes)
        self.occurrence = occurrence_conditions(filters, now, purposes)
        self.people = People(session, filters)
        self.tolerance = tolerance
        self.per_channel = per_channel
        self.columns = PER_CHANNEL if per_channel or filters.channel is not None else PER_PERSON
        self.where = list(where)
        # Per-occurrence cells can answer unless the rows need a condition of their own.
        self._cells_apply = tolerance == DEFAULT_TOLERANCE and not self.where
        self.summed = self._cells_apply and not filters.narrows_people

    # -- person-occurrence rows ---------------------------------------------------------

    def rows(
        self,
        columns: Sequence[Any],
        *,
        join_person: bool = False,
        join_occurrence: bool = True,
        occurrence_where: Sequence[ColumnElement[bool]] = (),
    ) -> Select[Any]:
        """SELECT `columns` from the slice's person-occurrence rows, joined to their
        occurrence (for its columns) and, with `join_person`, to the person.
        `occurrence_where` narrows the occurrences further."""
        p = PersonOccurrence
        occurrences = select(Occurrence.id).where(*self.occurrence, *occurrence_where)
        stmt = (
            select(*columns)
            .select_from(p)
            .where(
                p.occurrence_id.in_(occurrences),
                *self.columns.rows(),
                *self.people(p.person_id),
                *self.where,
            )
        )
        stmt = stmt.where(*self.on_channel())
        if join_occurrence:
            stmt = stmt.join(Occurrence, Occurrence.id == p.occurrence_id)
        if join_person:
            stmt = stmt.join(Person, Person.id == p.person_id)
        return stmt

    def on_channel(self) -> list[ColumnElement[bool]]:
        """The WHERE clause that keeps a channel filter's rows, or none."""
        channel = self.filters.channel
        return [] if channel is None else [PersonOccurrence.channel == channel]

    def _grouping(self, keys: Mapping[str, SqlColumn], channel: Any) -> list[Any]:
        return [*keys.values(), *([channel] if self.per_channel else [])]

    # -- sums -----------------------------------------------------------------------------

    def sums(
        self, keys: Mapping[str, SqlColumn], *, join_person: bool = False
    ) -> dict[GroupKey, dict[str, Any]]:
        """Per group of `keys` (and channel, when per channel): every sum in SUMS, with
        the earliest first-sent time as `first_sent`."""
        f = OccurrenceFigures
        cells = self._cells(f, keys, join_person)
        if cells is None:
            return self._read_sums(self._row_sums(keys, join_person))
        grouping, where = cells
        found = self._read_sums(
            select(*grouping, *(func.sum(getattr(f, n)) for n in SUMS), func.min(f.first_sent))
            .join(Occurrence, Occurrence.id == f.occurrence_id)
            .where(*self.occurrence, *where)
            .group_by(*grouping)
        )
        if self.people.root is not None:  # the tree's own leader has no cell of their own
            root = self._row_sums(keys, True, PersonOccurrence.person_id == self.people.root)
            for group, more in self._read_sums(root).items():
                found[group] = added(found[group], more) if group in found else more
        return found

    def _row_sums(
        self, keys: Mapping[str, SqlColumn], join_person: bool, *where: ColumnElement[bool]
    ) -> Select[Any]:
        measures = self.columns.measures(self.tolerance)
        grouping = self._grouping(keys, PersonOccurrence.channel)
        stmt = self.rows(
            [
                *grouping,
                *(func.sum(measures[name]) for name in SUMS),
                func.min(self.columns.first_sent),
            ],
            join_person=join_person,
        ).where(*where)
        return stmt.group_by(*grouping) if grouping else stmt

    def _read_sums(self, stmt: Select[Any]) -> dict[GroupKey, dict[str, Any]]:
        out: dict[GroupKey, dict[str, Any]] = {}
        for row in self.session.execute(stmt):
            width = len(row) - len(SUMS) - 1
            if row[width] is None:  # an aggregate over no rows at all
                continue
            sums: dict[str, Any] = {name: int(row[width + i]) for i, name in enumerate(SUMS)}
            sums["first_sent"] = row[-1]
            out[tuple(row[:width])] = sums
        return out

    def _cells(
        self,
        table: type[OccurrenceFigures] | type[FigureHistogram],
        keys: Mapping[str, SqlColumn],
        join_person: bool,
    ) -> tuple[list[Any], list[ColumnElement[bool]]] | None:
        """(grouping, WHERE) for reading `table`'s per-occurrence cells instead of the
        person-occurrence rows, or None when the cells cannot answer.

        Everyone's cells answer a slice that narrows no people, grouped by occurrence
        columns or channel. The cells of each team and manager pair (all channels only)
        answer a slice narrowed to a team or a manager's tree, or grouped by team or
        manager: a tree is its leader (read from their own rows) and everyone whose manager
        is in it.
        """
        if not self._cells_apply:
            return None
        channel, team, manager = table.channel, table.team_id, table.manager_id
        if self.summed and not join_person:
            where = [self._summed_channel(channel), team == EVERYONE, manager == EVERYONE]
            return self._grouping(keys, channel), where
        if (
            self.filters.channel is not None
            or self.per_channel
            or not self.people.anyone
            or not all(_reads_only(c, Occurrence) or _cell_key(c) for c in keys.values())
        ):
            return None
        where = [channel == ALL_CHANNELS, team != EVERYONE]
        if self.people.teams is not None:
            where.append(team.in_(self.people.teams))
        if self.people.tree is not None:
            where.append(manager.in_(self.people.tree))
        cells = {"team_id": team, "manager_id": manager}
        grouping = [
            func.nullif(cells[name], NONE) if (name := _cell_key(c)) else c for c in keys.values()
        ]
        return grouping, where

    def _summed_channel(self, column: Any) -> ColumnElement[bool]:
        found: ColumnElement[bool]
        if self.filters.channel is not None:
            found = column == self.filters.channel
        else:
            found = column != ALL_CHANNELS if self.per_channel else column == ALL_CHANNELS
        return found

    # -- histograms and percentiles ------------------------------------------------------

    def histograms(
        self, keys: Mapping[str, SqlColumn], measure: str, *, join_person: bool = False
    ) -> dict[GroupKey, list[tuple[int, int]]]:
        """Per group: (bucket, acknowledged person-occurrences in it), in bucket order.
        `measure` is "wait" (time-to-acknowledge buckets) or "hour" (whole hours from the
        due time to the answer)."""
        h = FigureHistogram
        cells = self._cells(h, keys, join_person)
        if cells is None or (measure == "hour" and not self.summed):
            return self._read_histograms(self._row_histograms(keys, measure, join_person))
        grouping, where = cells
        found = self._read_histograms(
            select(*grouping, h.bucket, func.sum(h.count))
            .join(Occurrence, Occurrence.id == h.occurrence_id)
            .where(*self.occurrence, *where, h.measure == measure)
            .group_by(*grouping, h.bucket)
        )
        if self.people.root is not None:
            root = self._row_histograms(
                keys, measure, True, PersonOccurrence.person_id == self.people.root
            )
            for group, more in self._read_histograms(root).items():
                counts = dict(found.get(group, []))
                for bucket, n in more:
                    counts[bucket] = counts.get(bucket, 0) + n
                found[group] = sorted(counts.items())
        return found

    def _row_histograms(
        self,
        keys: Mapping[str, SqlColumn],
        measure: str,
        join_person: bool,
        *where: ColumnElement[bool],
    ) -> Select[Any]:
        bucket = self.columns.wait_bucket if measure == "wait" else PersonOccurrence.ack_hour
        grouping = self._grouping(keys, PersonOccurrence.channel)
        return (
            self.rows([*grouping, bucket, func.count()], join_person=join_person)
            .where(self.columns.acknowledged(), *where)
            .group_by(*grouping, bucket)
        )

    def _read_histograms(self, stmt: Select[Any]) -> dict[GroupKey, list[tuple[int, int]]]:
        out: dict[GroupKey, list[tuple[int, int]]] = {}
        for row in self.session.execute(stmt):
            group, bucket, count = tuple(row[:-2]), int(row[-2]), int(row[-1])
            out.setdefault(group, []).append((bucket, count))
        return {group: sorted(counts) for group, counts in out.items()}

    def percentiles(
        self,
        keys: Mapping[str, SqlColumn],
        *,
        join_person: bool = False,
        wanted: Mapping[str, float] = PERCENTILES,
        histograms: Mapping[GroupKey, list[tuple[int, int]]] | None = None,
        values_in: Callable[[GroupKey], ValuesIn] | None = None,
        histograms_again: Callable[[], Mapping[GroupKey, list[tuple[int, int]]]] | None = None,
    ) -> dict[GroupKey, dict[str, float | None]]:
        """Per group: each wanted percentile of the time to acknowledge, in seconds.

        The histograms are read first (or given) and then one or two buckets' rows; when a
        refresh committed in between and a bucket holds fewer rows than its count, the
        histogram is read again, a few times at most, before the percentile is given up as
        unknown (None). Groups that are not `keys`' own (rolled-up ones) bring their
        `values_in` and a way to read their histograms again.
        """
        if histograms is None:
            histograms = self.histograms(keys, "wait", join_person=join_person)
        found: dict[GroupKey, dict[str, float | None]] = {}
        for group, histogram in histograms.items():
            reader = values_in(group) if values_in else self.values_in(keys, group)
            for _ in range(3):
                try:
                    found[group] = {
                        n: _round(percentile(histogram, p, reader)) for n, p in wanted.items()
                    }
                    break
                except StaleHistogram:
                    again = (
                        histograms_again()
                        if histograms_again
                        else self.histograms(keys, "wait", join_person=join_person)
                    )
                    histogram = again.get(group, [])
            else:
                found[group] = dict.fromkeys(wanted)
        return found

    def values_in(
        self, keys: Mapping[str, SqlColumn], group: GroupKey, *where: ColumnElement[bool]
    ) -> ValuesIn:
        """Reads one bucket's times to acknowledge for one group (and `where`), in order."""
        # The group's own occurrences and people are picked first, so that the rows of a
        # bucket are read through the index, without a join.
        by_occurrence: list[ColumnElement[bool]] = []
        by_person: list[ColumnElement[bool]] = []
        by_row: list[ColumnElement[bool]] = []
        grouping = self._grouping(keys, PersonOccurrence.channel)
        for column, value in zip(grouping, group, strict=True):
            same = column.is_not_distinct_from(value)
            if _reads_only(column, Occurrence):
                by_occurrence.append(same)
            elif _reads_only(column, Person):
                by_person.append(same)
            else:
                by_row.append(same)
        # (A row has a wait bucket only once it was sent and answered.)
        rows = self.rows(
            [self.columns.wait_s], join_occurrence=False, occurrence_where=by_occurrence
        ).where(*by_row, *where)
        if by_person:
            rows = rows.where(PersonOccurrence.person_id.in_(select(Person.id).where(*by_person)))

        def values_in(bucket: int, offset: int, limit: int) -> Sequence[float]:
            stmt = (
                rows.where(self.columns.wait_bucket == bucket)
                .order_by(self.columns.wait_s)
                .offset(offset)
                .limit(limit)
            )
            return list(self.session.scalars(stmt))

        return values_in


def _cell_key(column: Any) -> str | None:
    """The cell column for a person column whose groups have cells of their own."""
    for key in (Person.team_id, Person.manager_id):
        if column is key:
            return str(key.key)
    return None


def added(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two groups' sums together."""
    firsts = [t for t in (a["first_sent"], b["first_sent"]) if t is not None]
    return {
        **{name: a[name] + b[name] for name in SUMS},
        "first_sent": min(firsts) if firsts else None,
    }


def _reads_only(column: Any, model: type[Occurrence] | type[Person]) -> bool:
    """Whether a grouping expression reads the columns of one table (occurrences, people)."""
    clause = column.__clause_element__() if hasattr(column, "__clause_element__") else column
    tables = find_tables(clause, check_columns=True)
    return bool(tables) and all(t is model.__table__ for t in tables)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
