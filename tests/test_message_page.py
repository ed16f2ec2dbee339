"""A message's page tells its story, over real HTTP against a live server: the repetitions
sent (newest first) before anything planned, the next send in each zone, no claim that
everyone acknowledged a message nobody was sent yet, and an acknowledgement curve whose
time axis suits the answers' span."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.figures import summaries
from cadence.figures.message_detail import ack_curve_since_sent
from cadence.figures.slices import Filters
from cadence.runtime import Runtime
from cadence.store.models import Message, Occurrence, OccurrenceStatus
from cadence.web.charts import ack_curve_chart, time_axis
from tests import factories as f
from tests.test_dashboard import NOW, Live, answer, delivery, occurrence, parse_csv, sign_in, start

ZONES = ("UTC", "America/New_York", "Asia/Tokyo")
MONDAY = datetime(2026, 3, 16, 9, 0)  # the Monday after NOW, as wall-clock time


def plan(session: Session, message: Message, sequence: int, local: datetime, zone: str) -> None:
    """A planned occurrence, as the planner writes it: due at `local` in `zone`."""
    session.add(
        Occurrence(
            message_id=message.id,
            purpose="cadence",
            sequence=sequence,
            zone=zone,
            local_time=local,
            due_at=local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC),
            status=OccurrenceStatus.PLANNED.value,
        )
    )


def plan_weeks(session: Session, message: Message, first: int, weeks: int) -> None:
    """`weeks` weekly turns from MONDAY, each due in every zone of ZONES."""
    for week in range(weeks):
        for zone in ZONES:
            plan(session, message, first + week, MONDAY + timedelta(weeks=week), zone)


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    """The dashboard's organisation, with "Own the outcome" planned for 80 more weeks in
    three zones (more rows than a page shows) and a weekly "Huddle" planned, never sent."""
    with start(settings, runtime, session) as running:
        everyone = session.get(Message, running.org.everyone_id)
        assert everyone is not None
        plan_weeks(session, everyone, 2, 80)
        huddle = f.core_message(session, title="Huddle")
        plan_weeks(session, huddle, 0, 2)
        session.commit()
        yield running


def test_sent_repetitions_come_first_and_upcoming_apart(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        path = f"/dashboard/messages/{live.org.everyone_id}"
        page = client.get(path)
        assert page.status_code == 200
        assert page.text.index('id="occurrences"') < page.text.index('id="upcoming"')
        sent = parse_csv(client.get(path, params={"format": "csv", "table": "occurrences"}))
        # Only what was sent, newest first, however many turns are planned.
        assert [(r["repetition"], r["status"], r["sent"]) for r in sent] == [
            ("2", "dispatched", "7"),
            ("1", "dispatched", "7"),
        ]
        upcoming = parse_csv(client.get(path, params={"format": "csv", "table": "upcoming"}))
        assert [
            (r["zone"], r["repetition"], r["next_local"], r["more_planned"]) for r in upcoming
        ] == [
            ("Asia/Tokyo", "3", "Mon 16 Mar 2026, 09:00", "79"),
            ("UTC", "3", "Mon 16 Mar 2026, 09:00", "79"),
            ("America/New_York", "3", "Mon 16 Mar 2026, 09:00", "79"),
        ]
        assert [r["due_at"] for r in upcoming] == [
            "2026-03-16T00:00:00+00:00",
            "2026-03-16T09:00:00+00:00",
            "2026-03-16T13:00:00+00:00",
        ]
        assert "Next send: Mon 16 Mar 2026, 09:00 in Asia/Tokyo (and in 2 more zones)" in page.text
        assert "Everyone sent this message has acknowledged it" not in page.text
        # The trend by repetition: 5 of 7, then 1 of 7.
        trend = parse_csv(client.get(path, params={"format": "csv", "table": "by_repetition"}))
        assert [(r["repetition"], r["ack_rate"]) for r in trend] == [
            ("1", "0.7143"),
            ("2", "0.1429"),
        ]
        assert "From 71% for repetition 1 to 14% for repetition 2" in page.text


def test_a_leader_sees_the_next_sends_in_their_peoples_zones(live: Live, session: Session) -> None:
    """Sends are planned per zone before anyone is assigned to them: a leader sees those
    in the zones their people live in, and no others."""
    live.org.people["a1"].timezone = "Asia/Tokyo"
    session.commit()
    with sign_in(live, "lead.a@example.com") as client:
        path = f"/dashboard/messages/{live.org.everyone_id}"
        upcoming = parse_csv(client.get(path, params={"format": "csv", "table": "upcoming"}))
        sent = parse_csv(client.get(path, params={"format": "csv", "table": "occurrences"}))
    assert [r["zone"] for r in upcoming] == ["Asia/Tokyo", "UTC"]
    assert [(r["repetition"], r["planned"]) for r in sent] == [("2", "3"), ("1", "3")]


def test_a_message_not_sent_yet_says_so_and_when_it_goes_out(live: Live, session: Session) -> None:
    huddle = session.scalar(select(Message.id).where(Message.title == "Huddle"))
    with sign_in(live, "comms@example.com") as client:
        page = client.get(f"/dashboard/messages/{huddle}")
        assert page.status_code == 200
        assert "Everyone sent this message has acknowledged it" not in page.text
        assert "has acknowledged" not in page.text
        assert "Not sent yet." in page.text
        assert "Next send: Mon 16 Mar 2026, 09:00 in Asia/Tokyo (and in 2 more zones)." in page.text
        assert "Nothing has been sent in this period yet." in page.text


def test_the_curve_of_answers_within_minutes_is_drawn_in_minutes(
    live: Live, session: Session
) -> None:
    """Everyone answers within two minutes of the send: the axis reads in minutes, not one
    straight line to the first hour."""
    quick = f.core_message(session, title="Quick one")
    sent_at = NOW - timedelta(hours=1)
    o = occurrence(session, quick, 0, sent_at)
    for n, person in enumerate(live.org.people.values()):
        d = delivery(session, o, person, sent_at)
        answer(session, d, sent_at + timedelta(seconds=40 + 10 * n))
    session.commit()
    summaries.refresh(live.runtime.sessions)
    curve = ack_curve_since_sent(session, quick.id, Filters())
    assert curve[0] == (0.0, 0.0) and curve[-1] == (110.0, 1.0)  # 100 s is in the 100-109 s bucket
    assert curve[3] == (61.0, round(3 / 7, 4))  # answers at 40, 50 and 60 s
    with sign_in(live, "comms@example.com") as client:
        page = client.get(f"/dashboard/messages/{quick.id}")
    assert "minutes after being sent it" in page.text
    assert ">1 min<" in page.text and ">2 min<" in page.text
    assert " h<" not in page.text


@pytest.mark.parametrize(
    ("span", "unit", "last_tick"),
    [
        (60, "minutes", 1),  # a one-minute median with nobody later
        (150, "minutes", 3),
        (3_600, "minutes", 60),
        (2 * 3_600 + 1, "hours", 3),
        (25 * 3_600, "hours", 28),  # every four hours
        (3 * 86_400 + 1, "days", 4),
        (30 * 86_400, "days", 35),
        (0, "minutes", 1),
    ],
)
def test_the_time_axis_fits_the_span(span: float, unit: str, last_tick: float) -> None:
    axis = time_axis(span)
    assert axis.unit == unit
    assert axis.ticks[0] == 0 and axis.ticks[-1] == last_tick
    assert axis.ticks[-1] * axis.seconds >= span
    assert len(axis.ticks) <= 9


def test_the_chart_labels_its_ticks_in_the_unit() -> None:
    svg = str(ack_curve_chart([(0.0, 0.0), (61.0, 0.5), (121.0, 0.9)]))
    assert "minutes after being sent it" in svg
    assert ">2 min<" in svg and ">3 min<" in svg
    assert "<script" not in svg
    days = str(ack_curve_chart([(0.0, 0.0), (5 * 86_400.0, 0.8)]))
    assert "days after being sent it" in days and ">5 d<" in days
