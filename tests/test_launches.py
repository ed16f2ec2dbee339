"""Launches end to end against a real database, on a controlled clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cadence.answers.acks import make_answer, record_answer
from cadence.config import Settings
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import tick
from cadence.delivery.sending import send_batch
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch, get_launch, plan
from cadence.launches.changes import LaunchEdit, edit_launch, set_note
from cadence.launches.status import launch_status
from cadence.planning.followups import WorkingHours
from cadence.runtime import Runtime
from cadence.store.models import Delivery, Occurrence, Person
from cadence.worker import policy_from, send_policy_from
from tests import factories as f
from tests.conftest import CliResult

MONDAY_8 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FRIDAY_NOON = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
HOURS = WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri")


def ctx(settings: Settings, rate: float = 300.0) -> LaunchContext:
    return LaunchContext(settings.timezone, rate, HOURS)


def run(rt: Runtime, now: datetime) -> None:
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


def tree(session: Session) -> dict[str, Person]:
    """head -> two leaders -> two staff each, all in London."""
    people: dict[str, Person] = {}
    people["head"] = f.person(session, "head@example.com", timezone="Europe/London")
    for lead in ("l1", "l2"):
        people[lead] = f.person(session, f"{lead}@example.com", timezone="Europe/London",
                                manager=people["head"])  # fmt: skip
        for n in (1, 2):
            name = f"{lead}s{n}"
            people[name] = f.person(session, f"{name}@example.com", timezone="Europe/London",
                                    manager=people[lead])  # fmt: skip
    session.commit()
    return people


def spec(customer_at: datetime = FRIDAY_NOON, **overrides: Any) -> LaunchSpec:
    values: dict[str, Any] = {
        "title": "Same-day refunds",
        "body": "From Friday, refunds under 50 EUR are approved at once, {{ person.first_name }}.",
        "customer_copy": "Refunds under 50 EUR now arrive the same day.",
        "customer_at": customer_at,
        "customer_zone": "Europe/London",
        "audience": Audience(everyone=True),
        "channels": ["log"],
        "talking_points": "Why: fewer repeat contacts.",
    }
    values.update(overrides)
    return LaunchSpec(**values)


def released(session: Session) -> dict[str, str]:
    """email -> why their launch delivery was released."""
    session.expire_all()
    rows = session.execute(
        select(Person.email, Delivery.payload)
        .join(Delivery, Delivery.person_id == Person.id)
        .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
        .where(Occurrence.purpose == "launch")
    ).all()
    return {email: payload["release"] for email, payload in rows}


def ack(session: Session, email: str, now: datetime) -> None:
    delivery = session.scalar(
        select(Delivery).join(Person).join(Occurrence)
        .where(Person.email == email, Occurrence.purpose == "launch")
    )  # fmt: skip
    assert delivery is not None
    record_answer(session, delivery.id, make_answer("ack"), via="slack", now=now,
                  person_id=delivery.person_id)  # fmt: skip
    session.commit()


def test_cascade_waits_for_leaders_and_bypasses_the_silent_one(
    runtime: Runtime, session: Session, settings: Settings
) -> None:
    tree(session)
    message = add_launch(session, spec(), MONDAY_8, ctx(settings))
    session.commit()
    _, launch = get_launch(session, message.id)
    timeline = plan(session, message, launch, ctx(settings))
    assert timeline.ok
    by_email = {r.email: r for r in timeline.releases}
    assert [
        by_email[e].tier for e in ("head@example.com", "l1@example.com", "l1s1@example.com")
    ] == [0, 1, 2]
    start = by_email["head@example.com"].release_at

    run(runtime, start - timedelta(minutes=1))
    assert released(session) == {}
    run(runtime, start)
    assert released(session) == {"head@example.com": "start"}
    briefing = session.scalar(
        select(Delivery).join(Person).where(Person.email == "head@example.com")
    )
    assert briefing is not None and briefing.rendered is not None
    assert "Leader briefing: Same-day refunds" in briefing.rendered
    assert "Refunds under 50 EUR now arrive the same day." in briefing.rendered
    assert "Why: fewer repeat contacts." in briefing.rendered

    ack(session, "head@example.com", start + timedelta(minutes=5))
    run(runtime, start + timedelta(minutes=6))
    assert released(session)["l1@example.com"] == "briefed by leader"
    assert released(session)["l2@example.com"] == "briefed by leader"
    assert "l1s1@example.com" not in released(session)

    set_note(session, message.id, "l1@example.com", "Ping me with questions.", start)
    session.commit()
    ack(session, "l1@example.com", start + timedelta(minutes=10))
    run(runtime, start + timedelta(minutes=11))
    got = released(session)
    assert got["l1s1@example.com"] == got["l1s2@example.com"] == "briefed by leader"
    assert "l2s1@example.com" not in got  # their leader has not acknowledged yet
    team_message = session.scalar(
        select(Delivery).join(Person).where(Person.email == "l1s1@example.com")
    )
    assert team_message is not None and team_message.rendered is not None
    assert "Same-day refunds" in team_message.rendered
    assert "refunds under 50 EUR are approved at once, L1S1." in team_message.rendered

    l2_deadline = by_email["l2@example.com"].deadline
    assert l2_deadline is not None
    # Released at the planned deadline of a leader briefed earlier than planned.
    run(runtime, max(l2_deadline, start + timedelta(days=1)))
    got = released(session)
    assert got["l2s1@example.com"] == got["l2s2@example.com"] == "leader bypassed"
    digest = session.scalar(
        select(Delivery).join(Occurrence).where(Occurrence.purpose == "escalation")
    )
    assert digest is not None and digest.person.email == "head@example.com"
    assert digest.rendered is not None and "l2@example.com" in digest.rendered.replace("\\", "")

    figures = launch_status(session, message.id, ctx(settings), FRIDAY_NOON)
    assert figures["audience"] == 7 and figures["reached"] == 7
    assert figures["reached_before_customers"] == 1.0
    assert figures["leaders_briefed_before_their_teams"] == 1.0
    assert figures["leader_bypasses"] == 2
    assert figures["breaches"] == 0


def test_launch_too_close_is_refused_naming_who_misses(
    session: Session, settings: Settings, cli: Callable[..., CliResult]
) -> None:
    tree(session)
    with pytest.raises(InputError) as refused:
        add_launch(session, spec(customer_at=MONDAY_8 + timedelta(hours=30)), MONDAY_8,
                   ctx(settings))  # fmt: skip
    text = str(refused.value)
    assert "tier 3" in text and "l1s1@example.com" in text
    assert "earliest customer time that works" in text
    result = cli(
        "launch", "add", "--title", "Too soon", "--body", "x", "--customer-copy", "y",
        "--customer-at", "2020-01-01T09:00", "--tz", "Europe/London", "--everyone",
    )  # fmt: skip
    assert result.code == 2 and "already passed" in result.err


def test_fanout_time_at_the_send_rate_counts(session: Session, settings: Settings) -> None:
    rows = [
        {"email": f"p{i}@example.com", "name": f"P {i}", "timezone": "Europe/London",
         "active": True, "created_at": MONDAY_8, "updated_at": MONDAY_8}
        for i in range(3000)
    ]  # fmt: skip
    session.execute(insert(Person), rows)
    session.commit()
    # 3,000 people at 10 a minute take 5 hours; customers hear 27 hours ahead.
    soon = MONDAY_8 + timedelta(hours=27)
    with pytest.raises(InputError, match="fan-out: sending to 3000 people"):
        add_launch(session, spec(customer_at=soon), MONDAY_8, ctx(settings, rate=10))
    session.rollback()
    message = add_launch(session, spec(customer_at=soon), MONDAY_8, ctx(settings, rate=3000))
    assert message.id


def test_late_joiner_gets_it_at_once_and_is_a_breach_after_customers(
    runtime: Runtime, session: Session, settings: Settings
) -> None:
    people = tree(session)
    message = add_launch(session, spec(leader_lead_hours=1), MONDAY_8, ctx(settings))
    session.commit()
    _, launch = get_launch(session, message.id)
    timeline = plan(session, message, launch, ctx(settings))
    # Nobody acknowledges: leaders' deadlines release everyone in turn.
    for r in sorted(timeline.releases, key=lambda r: r.release_at):
        run(runtime, max(r.release_at, r.deadline or r.release_at))
    run(runtime, timeline.everyone_by - timedelta(minutes=1))
    assert len(released(session)) == 7
    late = f.person(session, "late@example.com", timezone="Europe/London", manager=people["l1"])
    session.commit()
    after = FRIDAY_NOON + timedelta(hours=1)
    run(runtime, after)
    assert released(session)["late@example.com"] == "guard"
    figures = launch_status(session, message.id, ctx(settings), after)
    assert figures["breached"] == ["late@example.com"] and figures["breaches"] == 1
    assert figures["reached"] == 8 and late.id


def test_edit_sends_a_correction_to_those_who_had_it(
    runtime: Runtime, session: Session, settings: Settings, cli: Callable[..., CliResult]
) -> None:
    tree(session)
    message = add_launch(session, spec(), MONDAY_8, ctx(settings))
    session.commit()
    _, launch = get_launch(session, message.id)
    start = plan(session, message, launch, ctx(settings)).releases[0].release_at
    run(runtime, start)
    ack(session, "head@example.com", start)
    _, corrections = edit_launch(
        session, message.id,
        LaunchEdit(customer_copy="Refunds under 50 EUR now arrive within the hour."),
        start + timedelta(minutes=30), ctx(settings),
    )  # fmt: skip
    session.commit()
    assert corrections == 1
    run(runtime, start + timedelta(minutes=31))
    correction = session.scalar(
        select(Delivery).join(Occurrence).where(Occurrence.purpose == "correction")
    )
    assert correction is not None and correction.status == "sent"
    assert correction.rendered is not None
    assert "Correction: Same-day refunds" in correction.rendered
    assert "within the hour" in correction.rendered
    # The head's answer was to version 1: it is kept, and marked so.
    rows = json.loads(cli("acks", "--message", str(message.id), "--format", "json").out)
    assert [r["version"] for r in rows] == [1]
    figures = launch_status(session, message.id, ctx(settings), start + timedelta(hours=1))
    assert figures["acknowledged_before_customers"] == 0.0  # nobody has acknowledged v2 yet


def test_launch_verbs_through_the_cli(session: Session, cli: Callable[..., CliResult]) -> None:
    tree(session)
    sydney = f.person(session, "syd@example.com", timezone="Australia/Sydney")
    sydney.manager_id = session.scalar(select(Person.id).where(Person.email == "l2@example.com"))
    session.commit()
    future = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT12:00")
    added = cli(
        "launch", "add", "--title", "Same-day refunds", "--body", "Refunds are faster.",
        "--customer-copy", "Refunds arrive the same day.", "--customer-at", future,
        "--tz", "Europe/London", "--everyone", "--channel", "log", "--format", "json",
    )  # fmt: skip
    assert added.code == 0, added
    launch_id = str(json.loads(added.out)[0]["id"])
    shown = cli("launch", "preview", launch_id, "--format", "json")
    assert shown.code == 0, shown
    preview = json.loads(shown.out)["sends"]
    assert {r["tier"] for r in preview} == {1, 2, 3}
    syd = next(r for r in preview if r["person"] == "syd@example.com")
    local = datetime.fromisoformat(syd["when"])
    assert local.utcoffset() in (timedelta(hours=10), timedelta(hours=11))
    assert 9 <= local.hour < 18 and local.weekday() < 5  # Sydney working hours
    assert cli("launch", "show", launch_id, "--format", "json").code == 0
    assert launch_id in cli("launch", "list").out
    noted = cli("launch", "note", launch_id, "--leader", "l1@example.com", "--text", "Ask me.")
    assert noted.code == 0, noted
    refused_note = cli("launch", "note", launch_id, "--leader", "l1s1@example.com", "--text", "x")
    assert refused_note.code == 2 and "leads no one" in refused_note.err
    edited = cli("launch", "edit", launch_id, "--customer-copy", "Refunds arrive within the hour.")
    assert edited.code == 0 and "version 2" in edited.out
    figures = json.loads(cli("launch", "status", launch_id, "--format", "json").out)
    assert figures["audience"] == 8 and figures["reached"] == 0
    assert cli("launch", "cancel", launch_id).code == 0
    assert cli("launch", "cancel", launch_id).code == 2
    for args, expected in [
        (("launch", "show", "999"), "no launch with id 999"),
        (("launch", "add", "--title", "t", "--body", "b", "--customer-copy", "c",
          "--customer-at", future, "--tz", "Mars/Base", "--everyone"), "unknown time zone"),
        (("launch", "add", "--title", "t", "--body", "b", "--customer-at", future,
          "--tz", "UTC", "--everyone"), "--customer-copy"),
    ]:  # fmt: skip
        bad = cli(*args)
        assert bad.code == 2 and expected in bad.err, (args, bad)


def test_directory_change_that_makes_a_launch_late_is_refused(
    session: Session,
    cli: Callable[..., CliResult],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree(session)
    # Round-the-clock working hours and 30 hours per level keep the arithmetic plain: the
    # three tiers need 60 hours, and everyone must have it within 90.
    monkeypatch.setenv("CADENCE_WORK_START", "00:00")
    monkeypatch.setenv("CADENCE_WORK_END", "23:59")
    monkeypatch.setenv("CADENCE_WORK_DAYS", "mon,tue,wed,thu,fri,sat,sun")
    customer = datetime.now(UTC) + timedelta(days=10)
    added = cli(
        "launch", "add", "--title", "Tight", "--body", "b", "--customer-copy", "c",
        "--customer-at", customer.strftime("%Y-%m-%dT%H:%M"), "--tz", "UTC",
        "--everyone", "--channel", "log", "--lead", str(240 - 90 - 1), "--leader-lead", "30",
    )  # fmt: skip
    assert added.code == 0, added
    # Two more levels under a staff member need 60 hours more: 120 in all.
    deeper = tmp_path / "deeper.csv"
    deeper.write_text(
        "email,name,manager_email,timezone\n"
        "intern@example.com,Ivy Intern,l1s1@example.com,Europe/London\n"
        "intern2@example.com,Ian Intern,intern@example.com,Europe/London\n",
        encoding="utf-8",
    )
    refused = cli("directory", "import", str(deeper))
    assert refused.code == 2, refused
    assert "launches would no longer reach everyone" in refused.err
    assert "intern" in refused.err
    session.expire_all()
    assert session.scalar(select(Person).where(Person.email == "intern@example.com")) is None
    forced = cli("directory", "import", str(deeper), "--allow-late-launches")
    assert forced.code == 0 and "warning: launch" in forced.err
