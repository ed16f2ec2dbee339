"""Reminders and escalation on silence, run on a controlled clock against a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.answers.acks import NotRecipient, make_answer, record_answer
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import tick
from cadence.delivery.sending import send_batch
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.messages.core import MessageEdit, edit_message
from cadence.planning.followups import WorkingHours
from cadence.runtime import Runtime
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
        channels=["slack", "email"],
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
    # The email reminder waiting to go out is withdrawn by the click in Slack.
    assert statuses == {"slack": "cancelled", "email": "cancelled"}
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


def test_material_edit_with_reack_resends_to_whoever_acknowledged_the_old_version(
    runtime: Runtime, session: Session, cli: Any
) -> None:
    for email in ("ada@example.com", "bob@example.com"):
        f.person(session, email)
    message = f.core_message(
        session,
        rrule="FREQ=WEEKLY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(people=("ada@example.com", "bob@example.com")),
    )
    message.remind_after_hours = 0
    session.commit()
    run(runtime, MONDAY_9)
    for delivery in session.scalars(select(Delivery)).all():
        record_answer(session, delivery.id, make_answer("ack"), via="email",
                      now=MONDAY_9, person_id=delivery.person_id)  # fmt: skip
    session.commit()
    status = json.loads(cli("ack-status", str(message.id), "--format", "json").out)
    assert all(row["answered"] for row in status)

    refused = cli("message", "edit", str(message.id), "--require-reack")
    assert refused.code == 2 and "needs a changed title or wording" in refused.err
    later = MONDAY_9 + timedelta(hours=1)
    result = edit_message(
        session,
        message.id,
        MessageEdit(body="The customer's problem, solved.", require_reack=True),
        later,
    )
    session.commit()
    assert result.material and result.message.version == 2 and result.reack_sends == 1
    status = json.loads(cli("ack-status", str(message.id), "--format", "json").out)
    assert not any(row["answered"] for row in status)

    run(runtime, later)
    resent = sent_to(session, "reack")
    assert sorted(e for e, _ in resent) == ["ada@example.com", "bob@example.com"]
    update = session.scalar(select(Delivery).join(Occurrence).where(Occurrence.purpose == "reack"))
    assert update is not None and update.rendered is not None
    assert "Updated: Own the outcome" in update.rendered
    assert "The customer's problem, solved." in update.rendered
    assert update.content_version == 2
    # Acknowledging the update counts for version 2; the old answers are kept, marked v1.
    record_answer(session, update.id, make_answer("ack", clarity=9), via="slack",
                  now=later, person_id=update.person_id)  # fmt: skip
    session.commit()
    rows = json.loads(cli("acks", "--message", str(message.id), "--format", "json").out)
    assert sorted(r["version"] for r in rows) == [1, 1, 2]
    status = {r["person"]: r["answered"] for r in json.loads(
        cli("ack-status", str(message.id), "--format", "json").out)}  # fmt: skip
    assert status == {
        update.person.email: True,
        ({"ada@example.com", "bob@example.com"} - {update.person.email}).pop(): False,
    }
    table = cli("ack-status", str(message.id))
    assert "1 of 2 acknowledged" in table.out and "not yet:" in table.out


def test_repeat_clicks_count_once_and_only_the_recipient_may_answer(
    runtime: Runtime, session: Session, cli: Any
) -> None:
    f.person(session, "ada@example.com")
    other = f.person(session, "eve@example.com")
    f.core_message(session, rrule="FREQ=WEEKLY", start=datetime(2026, 3, 2, 9),
                   timezone="UTC", audience=Audience(people=("ada@example.com",)))  # fmt: skip
    session.commit()
    run(runtime, MONDAY_9)
    delivery = session.scalar(select(Delivery))
    assert delivery is not None
    with pytest.raises(NotRecipient):
        record_answer(session, delivery.id, make_answer("ack"), via="email", now=MONDAY_9,
                      person_id=other.id)  # fmt: skip
    first = record_answer(session, delivery.id, make_answer("ack"), via="email",
                          now=MONDAY_9, person_id=delivery.person_id)  # fmt: skip
    again = record_answer(session, delivery.id, make_answer("question", "Why?"), via="slack",
                          now=MONDAY_9, person_id=delivery.person_id)  # fmt: skip
    session.commit()
    assert first.counted and not again.counted
    counted = json.loads(cli("acks", "--format", "json").out)
    everything = json.loads(cli("acks", "--repeats", "--format", "json").out)
    assert len(counted) == 1 and len(everything) == 2
    questions = cli("acks", "--kind", "question", "--repeats", "--format", "json")
    assert [r["kind"] for r in json.loads(questions.out)] == ["question"]
    for args, expected in [
        (("acks", "--kind", "maybe"), "unknown kind"),
        (("ack-status", "999"), "no message with id 999"),
    ]:
        bad = cli(*args)
        assert bad.code == 2 and expected in bad.err
    for bad_answer, expected in [
        (("question", "  ", None), "question is empty"),
        (("ack", None, 11), "clarity must be"),
        (("ack", None, "very"), "clarity must be"),
        (("nod", None, None), "unknown answer"),
    ]:
        with pytest.raises(InputError, match=expected):
            make_answer(*bad_answer)
