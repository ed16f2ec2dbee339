"""Edits of messages with wordings, UTC UNTIL, reminders in each recipient's zone, and
launch status figures: each against a real database through the CLI or the domain."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cadence.answers.acks import make_answer, record_answer
from cadence.config import Settings
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import tick
from cadence.delivery.sending import send_batch
from cadence.directory.audience import Audience
from cadence.launches.cascade import add_launch, get_launch, plan
from cadence.launches.status import launch_status
from cadence.messages.core import MessageEdit, edit_message
from cadence.messages.planner import plan_cadence
from cadence.planning.recurrence import preview_lines
from cadence.runtime import Runtime
from cadence.store.models import Delivery, Message, Occurrence, Person, Variant
from cadence.web.dashboard.views import launch_releases
from cadence.worker import policy_from, send_policy_from
from tests import factories as f
from tests.conftest import CliResult
from tests.test_launches import MONDAY_8, ack, ctx, released, spec, tree

Cli = Callable[..., CliResult]
MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


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


def wordings(cli: Cli, message_id: int) -> list[str]:
    shown = cli("message", "show", str(message_id), "--format", "json")
    assert shown.code == 0, shown.err
    return list(json.loads(shown.out)["wordings"])


# --- editing a message that has wordings -------------------------------------------------


def test_a_message_with_wordings_can_be_edited_and_its_wordings_replaced(
    cli: Cli, session: Session
) -> None:
    f.person(session, "ada@example.com")
    session.commit()
    added = cli(
        "message", "add", "--title", "Own the outcome", "--body", "v1", "--variant", "v2",
        "--variant", "v3", "--everyone", "--rrule", "FREQ=WEEKLY;BYDAY=MO",
        "--start", "2026-03-02", "--at", "09:00", "--format", "json",
    )  # fmt: skip
    assert added.code == 0, added.err
    message_id = int(json.loads(added.out)[0]["id"])

    retitled = cli("message", "edit", str(message_id), "--title", "Own every outcome")
    assert retitled.code == 0, retitled.err
    assert "now version 2" in retitled.out
    assert wordings(cli, message_id) == ["v1", "v2", "v3"]

    replaced = cli("message", "edit", str(message_id), "--variant", "v3", "--variant", "w4")
    assert replaced.code == 0, replaced.err
    assert wordings(cli, message_id) == ["v1", "v3", "w4"]
    shorter = cli("message", "edit", str(message_id), "--variant", "only")
    assert shorter.code == 0, shorter.err
    assert wordings(cli, message_id) == ["v1", "only"]
    reack = cli("message", "edit", str(message_id), "--variant", "v2", "--require-reack")
    assert reack.code == 0, reack.err
    assert "acknowledgements of earlier versions no longer count" in reack.out
    cleared = cli("message", "edit", str(message_id), "--clear-variants")
    assert cleared.code == 0, cleared.err
    assert wordings(cli, message_id) == ["v1"]
    session.expire_all()
    assert session.scalars(select(Variant)).all() == []
    shown = json.loads(cli("message", "show", str(message_id), "--format", "json").out)
    assert (shown["title"], shown["version"]) == ("Own every outcome", 6)


def test_reacknowledgement_of_a_message_with_wordings_sends_the_new_wording(
    runtime: Runtime, session: Session, cli: Cli
) -> None:
    for email in ("ada@example.com", "bob@example.com"):
        f.person(session, email)
    message = f.core_message(
        session,
        rrule="FREQ=WEEKLY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        variants=["Second wording."],
        audience=Audience(people=("ada@example.com", "bob@example.com")),
    )
    message.remind_after_hours = 0
    session.commit()
    second_monday = MONDAY_9 + timedelta(days=7)
    run(runtime, MONDAY_9)
    run(runtime, second_monday)
    # The second repetition uses the second wording, which the edit replaces.
    latest = session.scalars(select(Delivery).where(Delivery.variant == 1)).all()
    assert len(latest) == 2
    record_answer(session, latest[0].id, make_answer("ack"), via="email",
                  now=second_monday, person_id=latest[0].person_id)  # fmt: skip
    session.commit()

    later = second_monday + timedelta(hours=1)
    result = edit_message(
        session,
        message.id,
        MessageEdit(title="Own it", variants=["A new second wording."], require_reack=True),
        later,
    )
    session.commit()
    assert result.material and result.message.version == 2 and result.reack_sends == 1
    assert result.message.wordings() == [
        "We fix the customer's problem, not just the ticket.",
        "A new second wording.",
    ]
    run(runtime, later)
    session.expire_all()
    resent = session.scalars(
        select(Delivery).join(Occurrence).where(Occurrence.purpose == "reack")
    ).all()
    assert sorted(d.person.email for d in resent) == ["ada@example.com", "bob@example.com"]
    assert all(d.status == "sent" and d.content_version == 2 for d in resent)
    assert all(d.rendered and "Updated: Own it" in d.rendered for d in resent)
    # The repetition keeps its place in the rotation; its wording is the edited one.
    assert {d.variant for d in resent} == {1}
    assert all("A new second wording." in (d.rendered or "") for d in resent)
    status = {r["person"]: r["answered"] for r in json.loads(
        cli("ack-status", str(message.id), "--format", "json").out)}  # fmt: skip
    assert status == {"ada@example.com": False, "bob@example.com": False}
    record_answer(session, resent[1].id, make_answer("ack"), via="email",
                  now=later, person_id=resent[1].person_id)  # fmt: skip
    session.commit()
    status = {r["person"]: r["answered"] for r in json.loads(
        cli("ack-status", str(message.id), "--format", "json").out)}  # fmt: skip
    assert status[resent[1].person.email] is True


# --- UNTIL in UTC, RFC 5545's form for a zoned start ------------------------------------


@pytest.mark.parametrize(
    ("tz", "last"),
    [
        ("UTC", "2026-12-09T09:00:00+00:00"),
        # 09:00 on the 10th in Tokyo is 00:00 UTC: the instant itself, which UNTIL includes.
        ("Asia/Tokyo", "2026-12-10T09:00:00+09:00"),
        ("America/New_York", "2026-12-09T09:00:00-05:00"),
    ],
)
def test_a_utc_until_is_the_same_instant_in_every_zone(tz: str, last: str) -> None:
    lines = preview_lines("FREQ=DAILY;UNTIL=20261210T000000Z", "2026-12-07T09:00", tz, 10)
    assert lines[0].startswith("2026-12-07T09:00") and lines[-1] == last
    ends = datetime.fromisoformat(lines[-1]).astimezone(UTC)
    assert ends <= datetime(2026, 12, 10, tzinfo=UTC)


def test_a_utc_until_is_accepted_everywhere_and_bounds_each_recipient_zone(
    cli: Cli, session: Session
) -> None:
    f.person(session, "tokyo@example.com", timezone="Asia/Tokyo")
    f.person(session, "ny@example.com", timezone="America/New_York")
    session.commit()
    rule = "FREQ=DAILY;UNTIL=20261210T000000Z"
    preview = cli("schedule", "preview", "--rrule", rule, "--start", "2026-12-07T09:00",
                  "--tz", "UTC")  # fmt: skip
    assert preview.code == 0, preview.err
    assert preview.out.split() == [f"2026-12-0{d}T09:00:00+00:00" for d in (7, 8, 9)]
    for tz in ("UTC", "recipient"):
        added = cli("message", "add", "--title", "T", "--body", "B", "--everyone",
                    "--rrule", rule, "--start", "2026-12-07", "--at", "09:00", "--tz", tz,
                    "--channel", "log", "--format", "json")  # fmt: skip
        assert added.code == 0, added.err
    naive = cli("message", "add", "--title", "T", "--body", "B", "--everyone",
                "--rrule", "FREQ=DAILY;UNTIL=20261210T090000", "--start", "2026-12-07",
                "--at", "09:00", "--tz", "UTC", "--channel", "log")  # fmt: skip
    assert naive.code == 0, naive.err

    message = session.scalars(select(Message).where(Message.id == 2)).one()
    assert message.cadence is not None
    now = datetime(2026, 12, 1, tzinfo=UTC)
    plan_cadence(session, message.cadence, now, now + timedelta(days=30), "UTC")
    session.commit()
    planned = session.execute(
        select(Occurrence.zone, Occurrence.local_time)
        .where(Occurrence.message_id == 2)
        .order_by(Occurrence.zone, Occurrence.local_time)
    ).all()
    days: dict[str, list[int]] = {}
    for zone_name, local in planned:
        days.setdefault(zone_name, []).append(local.day)
    assert days == {"America/New_York": [7, 8, 9], "Asia/Tokyo": [7, 8, 9, 10]}


@pytest.mark.parametrize(
    ("rule", "tz", "sentence"),
    [
        ("FREQ=DAILY;UNTIL=20261206T000000Z", "UTC", "UNTIL=20261206T000000Z: before the start"),
        (
            "FREQ=DAILY;UNTIL=20261207T000000Z",
            "America/New_York",
            "UNTIL=20261207T000000Z: before the first occurrence in America/New_York "
            "(it is 2026-12-06T19:00:00 there)",
        ),
        ("FREQ=DAILY;UNTIL=20261206T000000Z", "recipient", "before the start"),
    ],
)
def test_a_utc_until_before_any_send_is_refused_naming_until(
    cli: Cli, session: Session, rule: str, tz: str, sentence: str
) -> None:
    added = cli("message", "add", "--title", "T", "--body", "B", "--everyone", "--rrule", rule,
                "--start", "2026-12-07", "--at", "09:00", "--tz", tz,
                "--channel", "log")  # fmt: skip
    assert added.code == 2 and sentence in added.err, added
    session.expire_all()
    assert session.scalars(select(Message)).all() == []


# --- reminders of a fixed-zone message, in each recipient's working hours ----------------


def reminders(session: Session) -> dict[str, tuple[datetime, datetime]]:
    session.expire_all()
    rows = session.scalars(select(Occurrence).where(Occurrence.purpose == "reminder")).all()
    return {o.zone: (o.due_at, o.local_time) for o in rows}


def reminded(session: Session) -> list[str]:
    session.expire_all()
    rows = session.scalars(
        select(Delivery)
        .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
        .where(Occurrence.purpose == "reminder", Delivery.status == "sent")
        .order_by(Delivery.id)
    ).all()
    return [d.person.email for d in rows]


def utc_message_to_three(session: Session) -> int:
    f.person(session, "ldn@example.com", timezone="Europe/London")
    f.person(session, "ny@example.com", timezone="America/New_York")
    f.person(session, "ny2@example.com", timezone="America/New_York")
    message = f.core_message(
        session,
        rrule="FREQ=WEEKLY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(everyone=True),
    )
    message.remind_after_hours = 1
    message.max_reminders = 1
    message.escalate = False
    session.commit()
    return message.id


def test_reminders_of_a_fixed_zone_message_wait_for_each_recipients_working_hours(
    runtime: Runtime, session: Session
) -> None:
    utc_message_to_three(session)
    run(runtime, MONDAY_9)  # 09:00 UTC: 09:00 in London, 04:00 in New York
    # An hour later it is 10:00 in London, but 05:00 in New York: wait for 09:00 there.
    assert reminders(session) == {
        "Europe/London": (datetime(2026, 3, 2, 10, tzinfo=UTC), datetime(2026, 3, 2, 10)),
        "America/New_York": (datetime(2026, 3, 2, 14, tzinfo=UTC), datetime(2026, 3, 2, 9)),
    }
    answered = session.scalars(
        select(Delivery).join(Delivery.person).where(Person.email == "ny2@example.com")
    ).one()
    record_answer(session, answered.id, make_answer("ack"), via="email",
                  now=MONDAY_9, person_id=answered.person_id)  # fmt: skip
    session.commit()
    run(runtime, datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert reminded(session) == ["ldn@example.com"]
    run(runtime, datetime(2026, 3, 2, 14, tzinfo=UTC))
    assert reminded(session) == ["ldn@example.com", "ny@example.com"]


def test_a_reminder_planned_for_everyone_in_the_fixed_zone_still_reaches_everyone(
    runtime: Runtime, session: Session
) -> None:
    message_id = utc_message_to_three(session)
    run(runtime, MONDAY_9)
    root = session.scalars(select(Occurrence).where(Occurrence.purpose == "cadence")).one()
    # One reminder in the message's own zone, as it was planned before zones were split.
    for planned in session.scalars(select(Occurrence).where(Occurrence.purpose == "reminder")):
        session.delete(planned)
    session.flush()
    due = datetime(2026, 3, 2, 15, tzinfo=UTC)
    session.add(
        Occurrence(
            message_id=message_id,
            purpose="reminder",
            parent_id=root.id,
            follow_up=1,
            sequence=root.sequence,
            zone="UTC",
            local_time=due.replace(tzinfo=None),
            due_at=due,
            status="planned",
        )
    )
    session.commit()
    run(runtime, due)
    assert sorted(reminded(session)) == ["ldn@example.com", "ny2@example.com", "ny@example.com"]


# --- launch status: release reasons, and launch ids ---------------------------------------


def test_a_fallback_at_the_guard_does_not_change_why_someone_was_released(
    runtime: Runtime, session: Session, settings: Settings
) -> None:
    tree(session)
    message = add_launch(session, spec(channels=["log", "email"]), MONDAY_8, ctx(settings))
    session.commit()
    _, launch = get_launch(session, message.id)
    timeline = plan(session, message, launch, ctx(settings))
    start = min(r.release_at for r in timeline.releases)
    run(runtime, start)
    ack(session, "head@example.com", start + timedelta(minutes=1))
    run(runtime, start + timedelta(minutes=2))
    for lead in ("l1", "l2"):
        ack(session, f"{lead}@example.com", start + timedelta(minutes=3))
    run(runtime, start + timedelta(minutes=4))
    assert list(released(session).values()).count("briefed by leader") == 6
    # Two of the team's deliveries failed for good; at the guard each is tried on email.
    session.execute(
        update(Delivery)
        .where(Delivery.person_id.in_(select(Person.id).where(Person.email.like("l_s1@%"))))
        .values(status="failed", last_error="refused by the channel")
    )
    session.commit()
    run(runtime, timeline.everyone_by)
    session.expire_all()
    retried = session.scalars(select(Delivery).where(Delivery.fallback_from_id.is_not(None)))
    assert sorted((d.channel, (d.payload or {})["release"]) for d in retried) == [
        ("email", "guard"),
        ("email", "guard"),
    ]
    figures = launch_status(session, message.id, ctx(settings), timeline.everyone_by)
    assert figures["released_after_leader_acknowledged"] == 6
    assert figures["released_by_guard"] == 0
    rows = launch_releases(session, message.id, ctx(settings), None)
    assert [r["released"] for r in rows].count("briefed by leader") == 6


def test_launch_verbs_name_a_missing_launch_and_a_message_that_is_not_one(
    cli: Cli, session: Session
) -> None:
    f.core_message(session)
    session.commit()
    for verb in ("status", "show", "preview", "cancel"):
        missing = cli("launch", verb, "99")
        assert missing.code == 2 and "no launch with id 99" in missing.err, (verb, missing)
        core = cli("launch", verb, "1")
        assert core.code == 2, (verb, core)
        assert "message 1 is not a launch: it is a core message" in core.err, (verb, core)
