"""Reminders and escalation on silence, run on a controlled clock against a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.acks import make_answer, record_answer
from cadence.audience import Audience
from cadence.channels.registry import make_channel
from cadence.dispatch import tick
from cadence.planning.followups import WorkingHours
from cadence.runtime import Runtime
from cadence.sending import send_batch
from cadence.store.models import Delivery, Message, Occurrence
from cadence.worker import policy_from, send_policy_from
from tests import factories as f

MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # London is on UTC until 29 March
HOURS = WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri")


def run(rt: Runtime, now: datetime) -> list[int]:
    """One tick at `now`, and its sends through the log channel at once."""
    queued: list[int] = []
    tick(rt.sessions, policy_from(rt.settings), queued.extend, now)
    if queued:
        send_batch(
            rt.sessions,
            lambda name: make_channel(name, rt.settings, rt.settings.redis_url),
            queued,
            send_policy_from(rt.settings),
            now,
        )
    return queued


def sent_to(session: Session, purpose: str) -> list[tuple[str, int]]:
    session.expire_all()
    rows = session.execute(
        select(Delivery, Occurrence)
        .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
        .where(Occurrence.purpose == purpose, Delivery.status == "sent")
        .order_by(Delivery.id)
    ).all()
    return [(d.person.email, o.follow_up) for d, o in rows]


def test_reminders_then_one_digest_per_manager(runtime: Runtime, session: Session) -> None:
    boss = f.person(session, "boss@example.com", timezone="Europe/London")
    f.person(session, "ada@example.com", timezone="Europe/London", manager=boss)
    quiet = f.person(session, "bob@example.com", timezone="Europe/London", manager=boss)
    quiet.name = "Bob *Quiet* <Smith>"
    message = f.core_message(
        session,
        rrule="FREQ=WEEKLY",
        start=datetime(2026, 3, 2, 9),
        timezone="Europe/London",
        audience=Audience(people=("ada@example.com", "bob@example.com")),
    )
    message.remind_after_hours = 4
    message.max_reminders = 2
    session.commit()

    run(runtime, MONDAY_9)
    assert sorted(e for e, _ in sent_to(session, "cadence")) == [
        "ada@example.com",
        "bob@example.com",
    ]
    ada_delivery = session.scalar(
        select(Delivery.id)
        .join(Delivery.person)
        .where(Delivery.person.has(email="ada@example.com"))
    )
    assert ada_delivery is not None
    record_answer(
        session, ada_delivery, make_answer("ack"), via="email", now=MONDAY_9 + timedelta(hours=1),
        person_id=session.scalar(select(Delivery.person_id).where(Delivery.id == ada_delivery)),
    )  # fmt: skip
    session.commit()

    run(runtime, MONDAY_9 + timedelta(hours=3, minutes=59))
    assert sent_to(session, "reminder") == []
    run(runtime, MONDAY_9 + timedelta(hours=4))
    assert sent_to(session, "reminder") == [("bob@example.com", 1)]
    run(runtime, MONDAY_9 + timedelta(hours=8))
    assert sent_to(session, "reminder") == [("bob@example.com", 1), ("bob@example.com", 2)]
    # The escalation would fall at 21:00, after hours: it waits for Tuesday 09:00 in London.
    run(runtime, MONDAY_9 + timedelta(hours=12))
    assert sent_to(session, "escalation") == []
    tuesday_9 = MONDAY_9 + timedelta(days=1)
    run(runtime, tuesday_9)
    assert sent_to(session, "escalation") == [("boss@example.com", 3)]
    digest = session.scalar(
        select(Delivery).join(Occurrence).where(Occurrence.purpose == "escalation")
    )
    assert digest is not None and digest.rendered is not None
    assert "Not yet acknowledged: Own the outcome" in digest.rendered
    assert "- Bob \\*Quiet\\* \\<Smith\\> (bob@example\\.com)" in digest.rendered
    assert "ada@example.com" not in digest.rendered
    # Nothing follows the escalation.
    run(runtime, tuesday_9 + timedelta(days=1))
    assert len(sent_to(session, "reminder")) == 2
    assert len(sent_to(session, "escalation")) == 1


def test_an_answer_cancels_a_reminder_not_yet_sent(runtime: Runtime, session: Session) -> None:
    f.person(session, "ada@example.com")
    message = f.core_message(
        session,
        rrule="FREQ=WEEKLY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(people=("ada@example.com",)),
        channels=["slack", "log"],
        channel_mode="all",
    )
    message.remind_after_hours = 2
    session.commit()
    queued: list[int] = []
    tick(runtime.sessions, policy_from(runtime.settings), queued.extend, MONDAY_9)
    session.execute(Delivery.__table__.update().values(status="sent", sent_at=MONDAY_9))
    session.commit()
    reminders: list[int] = []
    tick(
        runtime.sessions,
        policy_from(runtime.settings),
        reminders.extend,
        MONDAY_9 + timedelta(hours=2),
    )
    assert len(reminders) == 2  # one on each channel, queued but not yet sent
    slack_delivery = session.scalar(
        select(Delivery.id)
        .join(Occurrence)
        .where(Occurrence.purpose == "cadence", Delivery.channel == "slack")
    )
    person_id = session.scalar(select(Delivery.person_id).where(Delivery.id == slack_delivery))
    assert slack_delivery is not None and person_id is not None
    recorded = record_answer(
        session,
        slack_delivery,
        make_answer("ack"),
        via="slack",
        now=MONDAY_9 + timedelta(hours=2, minutes=1),
        person_id=person_id,
    )
    session.commit()
    assert recorded.counted and recorded.cancelled_reminders == 2
    session.expire_all()
    statuses = {
        d.channel: d.status
        for d in session.scalars(select(Delivery).where(Delivery.id.in_(reminders)))
    }
    assert statuses == {"slack": "cancelled", "log": "cancelled"}
    assert session.get(Message, message.id) is not None


def test_working_hours_follow_each_zone_and_daylight_saving() -> None:
    sydney = ZoneInfo("Australia/Sydney")
    # Friday 4 April 2026, 18:00 in Sydney (UTC+11): next opening is Monday 09:00, by then
    # on standard time (UTC+10).
    friday_evening = datetime(2026, 4, 3, 7, 0, tzinfo=UTC)
    opens = HOURS.next_open(friday_evening, sydney)
    assert opens.astimezone(sydney).isoformat() == "2026-04-06T09:00:00+10:00"
    inside = datetime(2026, 4, 6, 1, 0, tzinfo=UTC)  # Monday 11:00 in Sydney
    assert HOURS.next_open(inside, sydney) == inside
