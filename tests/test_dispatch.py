"""The dispatcher against a real database: planning, claiming, writing, queueing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.delivery.dispatch import DispatchPolicy, tick
from cadence.directory.audience import Audience
from cadence.figures import summaries
from cadence.messages.core import pause, resume
from cadence.runtime import Runtime
from cadence.store.models import (
    Delivery,
    DeliveryStatus,
    Occurrence,
    OccurrenceFigures,
    OccurrenceStatus,
    Person,
)
from tests import factories as f

POLICY = DispatchPolicy(
    org_zone="UTC",
    horizon=timedelta(days=14),
    batch_size=3,
    stuck_after=timedelta(minutes=5),
    max_lateness=timedelta(hours=12),
)


class Queue:
    """Collects what the dispatcher hands to the broker."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, ids: list[int]) -> None:
        with self.lock:
            self.batches.append(ids)

    @property
    def ids(self) -> list[int]:
        return [i for b in self.batches for i in b]


def deliveries_by_email(session: Session) -> dict[str, list[Delivery]]:
    session.expire_all()
    out: dict[str, list[Delivery]] = {}
    for d in session.scalars(select(Delivery).order_by(Delivery.id)):
        out.setdefault(d.person.email, []).append(d)
    return out


def test_weekly_0900_reaches_each_zone_at_its_own_0900(runtime: Runtime, session: Session) -> None:
    f.person(session, "syd@example.com", timezone="Australia/Sydney")
    f.person(session, "lon@example.com", timezone="Europe/London")
    f.person(session, "nyc@example.com", timezone="America/New_York")
    f.core_message(session, rrule="FREQ=WEEKLY;BYDAY=MO", start=datetime(2026, 3, 2, 9, 0))
    session.commit()
    queue = Queue()
    tick(runtime.sessions, POLICY, queue, f.T0)
    due = {
        o.zone: o.due_at
        for o in session.scalars(select(Occurrence).where(Occurrence.sequence == 0))
    }
    # Monday 2 March 2026, 09:00 local: Sydney is UTC+11 (summer), London UTC+0, NY UTC-5.
    assert due == {
        "Australia/Sydney": datetime(2026, 3, 1, 22, 0, tzinfo=UTC),
        "Europe/London": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        "America/New_York": datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
    }
    sent_to: list[tuple[datetime, list[str]]] = []
    for at in sorted(due.values()):
        tick(runtime.sessions, POLICY, queue, at - timedelta(seconds=1))
        before = set(deliveries_by_email(session))
        tick(runtime.sessions, POLICY, queue, at)
        sent_to.append((at, sorted(set(deliveries_by_email(session)) - before)))
    assert [who for _, who in sent_to] == [
        ["syd@example.com"],
        ["lon@example.com"],
        ["nyc@example.com"],
    ]
    # No worker consumes here, so later ticks requeue what is still queued; still three.
    assert len(set(queue.ids)) == 3


def test_weekly_0900_follows_dst_in_each_zone(runtime: Runtime, session: Session) -> None:
    f.person(session, "lon@example.com", timezone="Europe/London")
    f.person(session, "nyc@example.com", timezone="America/New_York")
    f.core_message(session, rrule="FREQ=WEEKLY;BYDAY=MO", start=datetime(2026, 3, 2, 9, 0))
    session.commit()
    tick(runtime.sessions, POLICY, Queue(), f.T0)
    got = {
        (o.zone, o.sequence): o.due_at
        for o in session.scalars(select(Occurrence).where(Occurrence.sequence < 2))
    }
    # New York moves to UTC-4 on 8 March; London stays on UTC+0 until 29 March.
    assert got[("America/New_York", 0)].hour == 14
    assert got[("America/New_York", 1)].hour == 13
    assert got[("Europe/London", 1)].hour == 9


def test_variants_alternate_by_repetition(runtime: Runtime, session: Session) -> None:
    f.person(session, "a@example.com")
    f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 1, 9, 0),
        timezone="UTC",
        variants=["Second wording"],
    )
    session.commit()
    queue = Queue()
    for day in range(3):
        tick(runtime.sessions, POLICY, queue, datetime(2026, 3, 1 + day, 9, 0, tzinfo=UTC))
    variants = [d.variant for d in deliveries_by_email(session)["a@example.com"]]
    assert variants == [0, 1, 0]


def test_one_delivery_per_person_even_with_concurrent_ticks(
    runtime: Runtime, session: Session
) -> None:
    for i in range(40):
        f.person(session, f"p{i:02d}@example.com")
    f.core_message(session, rrule="FREQ=DAILY", start=datetime(2026, 3, 1, 9), timezone="UTC")
    session.commit()
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    queue = Queue()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            tick(runtime.sessions, POLICY, queue, now)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    total = session.scalar(select(func.count()).select_from(Delivery))
    assert total == 40
    # Every delivery handed to the broker exactly once, in batches of at most batch_size.
    assert sorted(queue.ids) == sorted(set(queue.ids))
    assert len(queue.ids) == 40
    assert max(len(b) for b in queue.batches) <= POLICY.batch_size


def test_paused_message_sends_nothing_and_resumes_later(runtime: Runtime, session: Session) -> None:
    f.person(session, "a@example.com")
    msg = f.core_message(session, rrule="FREQ=DAILY", start=datetime(2026, 3, 1, 9), timezone="UTC")
    session.commit()
    queue = Queue()
    tick(runtime.sessions, POLICY, queue, f.T0)
    pause(session, msg.id, f.T0)
    session.commit()
    report = tick(runtime.sessions, POLICY, queue, datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    assert report.skipped == 1
    assert queue.ids == []
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    resume(session, msg.id, datetime(2026, 3, 1, 10, tzinfo=UTC))
    session.commit()
    tick(runtime.sessions, POLICY, queue, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert len(queue.ids) == 1
    session.expire_all()
    skipped = session.scalar(
        select(func.count()).where(Occurrence.status == OccurrenceStatus.SKIPPED.value)
    )
    assert skipped == 1


def test_directory_change_before_occurrence_changes_recipients(
    runtime: Runtime, session: Session
) -> None:
    support = f.team(session, "Support")
    emea = f.team(session, "Support/EMEA", parent=support)
    sales = f.team(session, "Sales")
    f.person(session, "stays@example.com", team=emea)
    mover = f.person(session, "mover@example.com", team=emea)
    f.person(session, "seller@example.com", team=sales)
    f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 1, 9),
        timezone="UTC",
        audience=Audience(teams=("Support",)),
    )
    session.commit()
    queue = Queue()
    tick(runtime.sessions, POLICY, queue, datetime(2026, 3, 1, 9, tzinfo=UTC))
    assert sorted(deliveries_by_email(session)) == ["mover@example.com", "stays@example.com"]
    mover = session.get(Person, mover.id)
    assert mover is not None
    mover.team = sales
    newcomer = f.person(session, "new@example.com", team=support)
    session.commit()
    tick(runtime.sessions, POLICY, queue, datetime(2026, 3, 2, 9, tzinfo=UTC))
    day2 = {
        email
        for email, ds in deliveries_by_email(session).items()
        if any(d.occurrence.sequence == 1 for d in ds)
    }
    assert day2 == {"stays@example.com", newcomer.email}


def test_occurrence_too_late_is_recorded_as_missed(runtime: Runtime, session: Session) -> None:
    f.person(session, "a@example.com")
    f.core_message(session, rrule="FREQ=DAILY", start=datetime(2026, 3, 1, 9), timezone="UTC")
    session.commit()
    queue = Queue()
    tick(runtime.sessions, POLICY, queue, f.T0)
    # The dispatcher was down for a day: yesterday's send is not fired off late.
    tick(runtime.sessions, POLICY, queue, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    first = session.scalar(select(Occurrence).where(Occurrence.sequence == 0))
    assert first is not None
    assert first.status == OccurrenceStatus.SKIPPED.value
    assert first.note and first.note.startswith("missed")
    assert queue.ids == []


def test_stuck_queued_delivery_is_requeued_once(runtime: Runtime, session: Session) -> None:
    f.person(session, "a@example.com")
    f.core_message(session, rrule="FREQ=DAILY", start=datetime(2026, 3, 1, 9), timezone="UTC")
    session.commit()
    lost = Queue()
    now = datetime(2026, 3, 1, 9, tzinfo=UTC)
    tick(runtime.sessions, POLICY, lost, now)
    assert len(lost.ids) == 1
    again = Queue()
    tick(runtime.sessions, POLICY, again, now + timedelta(minutes=4))
    assert again.ids == []  # not stuck yet
    tick(runtime.sessions, POLICY, again, now + timedelta(minutes=6))
    assert again.ids == lost.ids
    tick(runtime.sessions, POLICY, again, now + timedelta(minutes=7))
    assert again.ids == lost.ids  # the requeue reset its clock
    status = session.scalar(select(Delivery.status))
    assert status == DeliveryStatus.QUEUED.value


def test_occurrence_left_half_written_by_a_crashed_tick_is_finished_once(
    runtime: Runtime, session: Session
) -> None:
    from cadence.delivery.dispatch import claim_due, write_deliveries

    for name in ("a", "b", "c"):
        f.person(session, f"{name}@example.com")
    f.core_message(session, rrule="FREQ=DAILY", start=datetime(2026, 3, 1, 9), timezone="UTC")
    session.commit()
    now = datetime(2026, 3, 1, 9, tzinfo=UTC)
    tick(runtime.sessions, POLICY, Queue(), f.T0)  # plan only
    [(occurrence_id, _message_id)] = claim_due(runtime.sessions, POLICY, now)
    # The crashed tick got as far as one person, then died without finishing.
    half = DispatchPolicy(**{**POLICY.__dict__, "batch_size": 1})
    with runtime.sessions() as s:
        write_deliveries(s, occurrence_id, half, now)
        s.rollback()
        a = s.scalar(select(Person).where(Person.email == "a@example.com"))
        assert a is not None
        s.add(Delivery(occurrence_id=occurrence_id, person_id=a.id, channel="log",
                       created_at=now))  # fmt: skip
        s.commit()
    queue = Queue()
    tick(runtime.sessions, POLICY, queue, now + timedelta(minutes=1))
    assert session.scalar(select(func.count()).select_from(Delivery)) == 1  # still claimed
    tick(runtime.sessions, POLICY, queue, now + POLICY.stuck_after + timedelta(minutes=1))
    session.expire_all()
    emails = sorted(d.person.email for d in session.scalars(select(Delivery)))
    assert emails == ["a@example.com", "b@example.com", "c@example.com"]
    occurrence = session.get(Occurrence, occurrence_id)
    assert occurrence is not None and occurrence.status == OccurrenceStatus.DISPATCHED.value


def test_the_tick_summarises_what_was_written(runtime: Runtime, session: Session) -> None:
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        f.person(session, email)
    f.core_message(session, rrule="FREQ=WEEKLY;BYDAY=MO", start=datetime(2026, 3, 2, 9, 0))
    session.commit()
    tick(runtime.sessions, POLICY, Queue(), f.T0)
    report = tick(runtime.sessions, POLICY, Queue(), datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert report.deliveries_written == 3
    assert report.summarised == 3  # one change per delivery written
    session.expire_all()
    assert not summaries.pending(session)
    cells = session.scalars(
        select(OccurrenceFigures).where(
            OccurrenceFigures.channel == summaries.ALL_CHANNELS,
            OccurrenceFigures.team_id == summaries.EVERYONE,
        )
    ).all()
    assert [(c.planned, c.sent) for c in cells] == [(3, 0)]
