"""The figure summaries stay equal to a recomputation from the source tables, whatever is
written, in whatever order, and however often they are refreshed in between.

The database's own triggers log the changes; these tests write through the models and
plain SQL (never through cadence.figures.summaries) and then compare the incrementally kept
tables with a rebuild from scratch.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Float, cast, delete, event, func, literal, null, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cadence.figures import summaries
from cadence.figures.measures import Filters, breakdown, heatmap, overview
from cadence.figures.slices import Slice
from cadence.figures.summaries import wait_bucket, wait_bucket_sql
from cadence.store.db import make_engine, make_sessionmaker
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    FigureChange,
    FigureHistogram,
    Message,
    Occurrence,
    OccurrenceFigures,
    Person,
    PersonOccurrence,
    Team,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHANNELS = ("slack", "email")
STATUSES = ("pending", "queued", "sending", "sent", "failed", "cancelled")
# The statuses that change figures, drawn more often.
STATUS = st.sampled_from((*STATUSES, "sent", "sent", "cancelled"))


def _world(session: Session) -> tuple[list[int], list[int]]:
    """Four people (in two teams, and one in none; p0 leads p1 and p2, p1 leads p3) and
    one message with a cadence
    occurrence, a launch occurrence, a reminder of the first and a test send: (person ids,
    occurrence ids)."""
    for model in (Acknowledgement, Delivery, Occurrence, Message, Person, Team, FigureChange):
        session.execute(delete(model))
    teams = [Team(path="Support", name="Support"), Team(path="Sales", name="Sales")]
    session.add_all(teams)
    session.flush()
    people: list[int] = []
    for i, manager in enumerate((None, 0, 0, 1)):  # p0 leads p1 and p2; p1 leads p3
        p = Person(email=f"p{i}@example.com", name=f"P{i}", active=True,
                   team_id=teams[i % 2].id if i < 3 else None,
                   manager_id=None if manager is None else people[manager],
                   created_at=T0, updated_at=T0)  # fmt: skip
        session.add(p)
        session.flush()
        people.append(p.id)
    message = Message(kind="core", title="Own it", body="Body", status="active",
                      audience={"everyone": True}, channels=list(CHANNELS),
                      created_at=T0, updated_at=T0)  # fmt: skip
    session.add(message)
    session.flush()
    occurrences: list[int] = []
    for sequence, purpose in enumerate(("cadence", "launch", "reminder", "test")):
        o = Occurrence(
            message_id=message.id,
            purpose=purpose,
            parent_id=occurrences[0] if purpose == "reminder" else None,
            follow_up=1 if purpose == "reminder" else 0,
            sequence=sequence,
            zone="UTC",
            local_time=(T0 + timedelta(days=sequence)).replace(tzinfo=None),
            due_at=T0 + timedelta(days=sequence),
            status="dispatched",
        )
        session.add(o)
        session.flush()
        occurrences.append(o.id)
    return people, occurrences


def _snapshot(session: Session) -> list[list[tuple[Any, ...]]]:
    out = []
    for model in (PersonOccurrence, OccurrenceFigures, FigureHistogram):
        table = model.__table__
        rows = session.execute(select(table).order_by(*table.primary_key.columns)).all()
        out.append([tuple(round(v, 3) if isinstance(v, float) else v for v in row) for row in rows])
    return out


minutes = st.integers(min_value=-30, max_value=60 * 72)
operation = st.one_of(
    st.tuples(st.just("deliver"), st.integers(0, 3), st.integers(0, 3),
              st.sampled_from(CHANNELS), STATUS, minutes),
    st.tuples(st.just("status"), st.integers(0, 7), STATUS, minutes),
    st.tuples(st.just("ack"), st.integers(0, 7), st.sampled_from(("ack", "question")),
              st.one_of(st.none(), st.integers(0, 10)), st.booleans(), st.integers(1, 2),
              minutes),
    st.tuples(st.just("unack"), st.integers(0, 7)),
    st.tuples(st.just("rate"), st.integers(0, 7), st.one_of(st.none(), st.integers(0, 10))),
    st.tuples(st.just("undeliver"), st.integers(0, 7)),
    st.tuples(st.just("move_due"), st.integers(0, 3), minutes),
    st.tuples(st.just("move_team"), st.integers(0, 3), st.sampled_from(("Support", "Sales", None))),
    st.tuples(st.just("move_manager"), st.sampled_from((2, 3)), st.sampled_from((None, 0, 1))),
)  # fmt: skip


def _apply(
    session: Session, people: list[int], occurrences: list[int], op: tuple[Any, ...]
) -> None:
    deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    acks = session.scalars(select(Acknowledgement).order_by(Acknowledgement.id)).all()
    kind = op[0]
    if kind == "deliver":
        _, o, p, channel, status, at = op
        taken = session.scalar(
            select(func.count()).where(
                Delivery.occurrence_id == occurrences[o],
                Delivery.person_id == people[p],
                Delivery.channel == channel,
            )
        )
        if not taken:
            sent = T0 + timedelta(days=o, minutes=at) if status == "sent" else None
            session.add(
                Delivery(occurrence_id=occurrences[o], person_id=people[p], channel=channel,
                         status=status, created_at=T0, sent_at=sent)
            )  # fmt: skip
    elif kind == "status" and deliveries:
        _, i, status, at = op
        d = deliveries[i % len(deliveries)]
        d.status = status
        if status == "sent":
            d.sent_at = T0 + timedelta(minutes=at)
    elif kind == "ack" and deliveries:
        _, i, answer, clarity, counted, version, at = op
        d = deliveries[i % len(deliveries)]
        root = d.occurrence.parent_id or d.occurrence_id
        if counted and session.scalar(
            select(func.count()).where(
                Acknowledgement.occurrence_id == root,
                Acknowledgement.person_id == d.person_id,
                Acknowledgement.message_version == version,
                Acknowledgement.counted.is_(True),
            )
        ):
            counted = False
        session.add(Acknowledgement(delivery_id=d.id, occurrence_id=root,
                                    person_id=d.person_id, kind=answer, clarity=clarity,
                                    message_version=version, via=d.channel, counted=counted,
                                    created_at=T0 + timedelta(minutes=at)))  # fmt: skip
    elif kind == "rate" and acks:
        acks[op[1] % len(acks)].clarity = op[2]
    elif kind == "unack" and acks:
        session.delete(acks[op[1] % len(acks)])
    elif kind == "undeliver" and deliveries:
        session.delete(deliveries[op[1] % len(deliveries)])  # its answers go with it
    elif kind == "move_team":
        _, p, path = op
        team_id = session.scalar(select(Team.id).where(Team.path == path)) if path else None
        session.execute(update(Person).where(Person.id == people[p]).values(team_id=team_id))
    elif kind == "move_manager":
        _, p, manager = op
        manager_id = None if manager is None else people[manager]
        session.execute(update(Person).where(Person.id == people[p]).values(manager_id=manager_id))
    elif kind == "move_due":
        _, o, at = op
        session.execute(
            update(Occurrence)
            .where(Occurrence.id == occurrences[o])
            .values(due_at=T0 + timedelta(minutes=at))
        )
    session.flush()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(st.tuples(operation, st.booleans()), max_size=25))
# Every kind of change made after a refresh, alone, so none can go unlogged unnoticed.
@example(ops=[(("deliver", 0, 0, "slack", "sent", 5), True), (("status", 0, "sent", 50), False)])
@example(ops=[(("deliver", 0, 0, "slack", "sent", 5), True), (("status", 0, "failed", 0), False)])
@example(
    ops=[(("deliver", 0, 0, "slack", "queued", 0), True), (("status", 0, "cancelled", 0), False)]
)
@example(ops=[(("deliver", 1, 0, "email", "sent", 5), True), (("undeliver", 0), False)])
@example(
    ops=[
        (("deliver", 0, 0, "slack", "sent", 5), False),
        (("ack", 0, "ack", 9, True, 1, 60), True),
        (("rate", 0, 3), False),
    ]
)
@example(
    ops=[
        (("deliver", 0, 0, "slack", "sent", 5), False),
        (("ack", 0, "question", None, True, 1, 60), True),
        (("unack", 0), False),
    ]
)
@example(
    ops=[
        (("deliver", 2, 1, "slack", "sent", 5), False),
        (("ack", 0, "ack", None, True, 2, 90), True),
    ]
)
@example(ops=[(("deliver", 0, 0, "slack", "sent", 5), True), (("move_due", 0, 600), False)])
@example(ops=[(("deliver", 0, 0, "slack", "sent", 5), True), (("move_team", 0, "Sales"), False)])
@example(ops=[(("deliver", 0, 3, "slack", "sent", 5), True), (("move_manager", 3, 0), False)])
def test_kept_summaries_equal_a_rebuild(
    session: Session, ops: list[tuple[tuple[Any, ...], bool]]
) -> None:
    people, occurrences = _world(session)
    for op, then_refresh in ops:
        _apply(session, people, occurrences, op)
        if then_refresh:
            summaries.catch_up(session, chunk=3)
    summaries.catch_up(session)
    assert not summaries.pending(session)
    kept = _snapshot(session)
    summaries.rebuild(session)
    assert _snapshot(session) == kept
    _cells_agree_with_rows(session)
    session.rollback()


# A tolerance a microsecond longer than the default: the same figures for times in whole
# milliseconds, but read from the person-occurrence rows instead of per-occurrence cells.
ROWS_ONLY = summaries.DEFAULT_TOLERANCE + timedelta(microseconds=1)


def _cells_agree_with_rows(session: Session) -> None:
    now = T0 + timedelta(days=30)
    p0, p1 = (
        session.scalar(select(Person.id).where(Person.email == e))
        for e in ("p0@example.com", "p1@example.com")
    )
    for filters in (
        Filters(),
        Filters(team="Support"),
        Filters(channel="email"),
        Filters(manager_email="p1@example.com"),
        Filters(scope_person_id=p0, team="Sales"),
        Filters(scope_person_id=p1, manager_email="p0@example.com"),
    ):
        by_cells = overview(session, filters, now)
        by_rows = overview(session, filters, now, tolerance=ROWS_ONLY)
        assert {**by_cells, "on_time_tolerance_minutes": 0} == {
            **by_rows,
            "on_time_tolerance_minutes": 0,
        }, filters
    for by in ("message", "team", "manager", "channel", "repetition", "period"):
        for filters in (Filters(), Filters(scope_person_id=p0)):
            assert breakdown(session, by, filters, now) == breakdown(
                session, by, filters, now, tolerance=ROWS_ONLY
            ), (by, filters)
    heat = heatmap(session, Filters(scope_person_id=p1))
    for cell in heat["cells"]:
        by_rows = breakdown(
            session, "team", Filters(scope_person_id=p1, message_id=cell["message_id"]),
            now, tolerance=ROWS_ONLY,
        )  # fmt: skip
        row = next(r for r in by_rows if r["team"] == cell["team"])
        assert (cell["sent"], cell["acknowledged"]) == (row["sent"], row["acknowledged"])


def test_one_person_occurrence_counts_once_on_its_first_channel(session: Session) -> None:
    people, occurrences = _world(session)
    o = occurrences[0]
    session.add_all(
        [
            Delivery(occurrence_id=o, person_id=people[0], channel="slack", status="failed",
                     created_at=T0),
            Delivery(occurrence_id=o, person_id=people[0], channel="email", status="sent",
                     created_at=T0, sent_at=T0 + timedelta(minutes=5)),
        ]
    )  # fmt: skip
    session.flush()
    summaries.catch_up(session)
    rows = {
        r.channel: r
        for r in session.scalars(
            select(PersonOccurrence).where(PersonOccurrence.occurrence_id == o)
        )
    }
    assert (rows["email"].counts, rows["slack"].counts) == (1, 0)
    assert rows["slack"].first_sent == T0 + timedelta(minutes=5)  # the person's first send
    assert rows["slack"].channel_first_sent is None  # but not on this channel
    cells = {
        c.channel: (c.planned, c.sent)
        for c in session.scalars(
            select(OccurrenceFigures).where(OccurrenceFigures.occurrence_id == o)
        )
    }
    assert cells == {"": (1, 1), "email": (1, 1), "slack": (1, 0)}


def test_only_changes_that_matter_are_logged(session: Session) -> None:
    people, occurrences = _world(session)
    summaries.catch_up(session)
    d = Delivery(occurrence_id=occurrences[0], person_id=people[0], channel="slack",
                 status="pending", created_at=T0)  # fmt: skip
    session.add(d)
    session.flush()

    def logged() -> int:
        session.flush()
        found = session.scalar(select(func.count()).select_from(FigureChange))
        summaries.catch_up(session)
        return int(found or 0)

    assert logged() == 1  # written
    for status in ("queued", "sending"):
        d.status = status
        assert logged() == 0  # on its way: no figure changes
    d.attempts = 2
    assert logged() == 0
    d.status, d.sent_at = "sent", T0
    assert logged() == 1
    session.execute(text("UPDATE occurrences SET note = 'x'"))
    assert logged() == 0
    session.execute(
        update(Occurrence)
        .where(Occurrence.id == occurrences[0])
        .values(due_at=T0 + timedelta(hours=1))
    )
    assert logged() == 1


def test_a_change_committed_during_a_refresh_is_not_lost(runtime: Any) -> None:
    """A refresh works from what was committed when it started; a writer that commits while
    it runs leaves a change behind for the next one, never a stale summary."""
    sessions: sessionmaker[Session] = runtime.sessions
    with sessions() as setup:
        people, occurrences = _world(setup)
        d = Delivery(occurrence_id=occurrences[0], person_id=people[0], channel="slack",
                     status="sent", created_at=T0, sent_at=T0)  # fmt: skip
        setup.add(d)
        setup.commit()
        delivery_id, person_id, occurrence_id = d.id, d.person_id, d.occurrence_id

    refresher = sessions()
    summaries.catch_up(refresher)  # holds the refresh lock until it commits

    def answer() -> None:
        with sessions() as writer:
            writer.add(Acknowledgement(delivery_id=delivery_id, occurrence_id=occurrence_id,
                                       person_id=person_id, kind="ack", message_version=1,
                                       via="slack", counted=True,
                                       created_at=T0 + timedelta(minutes=10)))  # fmt: skip
            writer.commit()

    thread = threading.Thread(target=answer)
    thread.start()
    thread.join(timeout=0.5)  # PostgreSQL commits now; SQLite waits for the write lock
    refresher.commit()
    refresher.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    with sessions() as reader:
        assert summaries.pending(reader)  # the answer was left for the next refresh
        summaries.catch_up(reader)
        figures = overview(reader, Filters(), T0 + timedelta(days=30))
        assert (figures["sent"], figures["acknowledged"], figures["ack_median_s"]) == (1, 1, 600.0)


def test_refreshes_take_turns(runtime: Any) -> None:
    """Two refreshes never run at once: the second waits for the first to commit."""
    sessions: sessionmaker[Session] = runtime.sessions
    with sessions() as setup:
        people, occurrences = _world(setup)
        setup.add(Delivery(occurrence_id=occurrences[0], person_id=people[0], channel="slack",
                           status="pending", created_at=T0))  # fmt: skip
        setup.commit()
    first = sessions()
    assert summaries.catch_up(first) == 1
    done = threading.Event()
    handled: list[int] = []

    def second() -> None:
        with sessions() as other:
            other.add(Delivery(occurrence_id=occurrences[0], person_id=people[1],
                               channel="slack", status="pending", created_at=T0))  # fmt: skip
            other.commit()
            handled.append(summaries.catch_up(other))
            other.commit()
            done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not done.wait(1.0)  # blocked behind the first refresh
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert handled == [1]
    with sessions() as reader:
        assert reader.scalar(select(func.count()).select_from(PersonOccurrence)) == 2


def wait_bucket_bounds(bucket: int) -> tuple[float, float]:
    """[low, high) of the seconds a bucket holds: whole seconds below 100 s, then two
    significant figures, with everything negative in -1 and from 10^9 s on in the top."""
    if bucket < 0:
        return -math.inf, 0.0
    if bucket >= 10**9:
        return 1e9, math.inf
    width = 1 if bucket < 100 else 10 ** (len(str(bucket)) - 2)
    return float(bucket), float(bucket + width)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seconds=st.one_of(
        st.floats(min_value=-1e4, max_value=3e9, allow_nan=False),
        st.integers(min_value=0, max_value=10**6).map(float),
        st.sampled_from([0.0, 99.999, 100.0, 999.999, 1000.0, 1e9 - 0.001, 1e9]),
    )
)
def test_wait_buckets_agree_in_sql_and_python(session: Session, seconds: float) -> None:
    seconds = round(seconds, 3)  # stored times are exact to the millisecond
    dialect = session.get_bind().dialect.name
    in_sql = session.scalar(select(wait_bucket_sql(dialect, literal(seconds, Float))))
    bucket = wait_bucket(seconds)
    assert in_sql == bucket
    low, high = wait_bucket_bounds(bucket)
    assert low <= seconds < high
    if 100 <= seconds < 1e9:
        assert (high - low) / low <= 0.1 + 1e-9  # two significant figures at least


def test_no_wait_is_no_bucket(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    assert session.scalar(select(wait_bucket_sql(dialect, cast(null(), Float)))) is None


@pytest.mark.parametrize("channels", [1, 2])
def test_rebuild_after_a_bulk_load(session: Session, channels: int) -> None:
    """History written straight into the tables (a restore, a bulk import) is summarised by
    `rebuild`, and its figures are the ones a kept summary gives."""
    people, occurrences = _world(session)
    session.flush()
    for i, person_id in enumerate(people):
        for channel in CHANNELS[:channels]:
            session.execute(
                text(
                    "INSERT INTO deliveries (occurrence_id, person_id, channel, variant, status, "
                    "attempts, created_at, sent_at, maybe_sent) VALUES (:o, :p, :c, 0, 'sent', 1, "
                    ":t, :s, false)"
                ),
                {"o": occurrences[0], "p": person_id, "c": channel, "t": T0.replace(tzinfo=None),
                 "s": (T0 + timedelta(minutes=i)).replace(tzinfo=None)},
            )  # fmt: skip
    summaries.catch_up(session)
    kept = _snapshot(session)
    assert summaries.rebuild(session) == 2  # the cadence and launch occurrences
    assert _snapshot(session) == kept
    figures = overview(session, Filters(), T0 + timedelta(days=30))
    assert (figures["planned"], figures["sent"], figures["on_time"]) == (4, 4, 4)


def test_a_histogram_read_before_a_refresh_is_read_again(session: Session) -> None:
    """Percentiles read a histogram, then a bucket; a refresh committing in between leaves
    the bucket with fewer rows than counted, and the histogram is then read again."""
    people, occurrences = _world(session)
    for minutes, person_id in zip((10, 20, 30), people, strict=False):
        d = Delivery(occurrence_id=occurrences[0], person_id=person_id, channel="slack",
                     status="sent", created_at=T0, sent_at=T0)  # fmt: skip
        session.add(d)
        session.flush()
        session.add(Acknowledgement(delivery_id=d.id, occurrence_id=d.occurrence_id,
                                    person_id=person_id, kind="ack", message_version=1,
                                    via="slack", counted=True,
                                    created_at=T0 + timedelta(minutes=minutes)))  # fmt: skip
    session.flush()
    summaries.catch_up(session)
    sl = Slice(session, Filters())
    fresh = sl.percentiles({})
    assert fresh == {(): {"median": 1200.0, "p90": 1680.0}}
    # As if a fourth answer had been counted and then removed again by a later refresh.
    stale = {(): [(bucket, count + 1) for bucket, count in sl.histograms({}, "wait")[()]]}
    assert sl.percentiles({}, histograms=stale) == fresh


def test_a_read_only_database_is_read_as_it_is(runtime: Any, database_url: str) -> None:
    """Where Cadence may only read (a read-only file, a standby), refreshing is skipped and
    the figures are those summarised where the writing happens."""
    with runtime.sessions() as setup:
        people, occurrences = _world(setup)
        setup.add(Delivery(occurrence_id=occurrences[0], person_id=people[0], channel="slack",
                           status="sent", created_at=T0, sent_at=T0))  # fmt: skip
        setup.commit()
    reader = make_engine(database_url)

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if reader.dialect.name == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET default_transaction_read_only = on")
            dbapi_connection.commit()
        cursor.close()

    event.listen(reader, "connect", read_only)
    try:
        assert summaries.refresh(make_sessionmaker(reader)) == 0
        with make_sessionmaker(reader)() as session:
            assert summaries.pending(session)
            assert overview(session, Filters(), T0 + timedelta(days=1))["planned"] == 0
    finally:
        reader.dispose()
    assert summaries.refresh(runtime.sessions) == 1
