"""Figures against a real database, with every expected value worked out by hand.

The organisation (zones in brackets):

    ann  Support           (London)   leads bob and cat
    bob  Support           (New York) leads dan and eve
    cat  Support           (London)
    dan  Support/EMEA      (London)
    eve  Support/EMEA      (London)
    fay  Support Partners  (London)   a team whose name only starts like "Support"

Message 1, "Own the outcome", repeats weekly in each person's zone; message 2, "Say sorry
once", went out once. Times are UTC, March 2026 (London is on UTC until the 29th).

    O1  m1 rep 1 London   due 2nd 09:00  ann slack 09:01   cat slack 09:20 (late)
                                        dan slack failed, email 09:05 (fallback)
                                        eve slack 09:02 and email 09:03 (two channels)
                                        fay email failed
    O2  m1 rep 1 New York due 2nd 14:00  bob slack 14:10
    O3  m1 rep 2 London   due 9th 09:00  ann 09:00, cat 09:30 (late), dan 09:01,
                                        eve pending, fay cancelled (withdrawn)
    --  m1 rep 2 New York due 9th 14:00  missed after an outage: no deliveries
    O4  m2 rep 1 London   due 8th 10:00  ann 10:00, bob 10:05, cat queued,
        (a Sunday)                       dan email 10:10, eve 10:15 (exactly 15 min)
    R1  reminder of O1, 3rd 09:00: cat (a follow-up, not a send)
    OT  test send of m1, 2nd 08:00: ann, who answers with clarity 0 (never counted)

Answers (seconds from first sent to first counted answer):

    O1 ann ack 09:11 (600) clarity 10, then a repeat that is a question
    O1 cat ack 3rd 10:00 through the reminder (88800) clarity 7
    O1 dan question 09:35 (1800) clarity 3
    O1 eve ack 09:12 (600), then a repeat on email
    O2 bob ack 15:10 (3600) clarity 9
    O3 ann ack 09:30 (1800) clarity 8
    O4 bob question 10:35 (1800) clarity 6; dan ack 10:20 (600); eve ack 11:15 (3600) clarity 10
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.figures import summaries
from cadence.figures.measures import (
    FIGURE_COLUMNS,
    Filters,
    ack_curve,
    breakdown,
    heatmap,
    leaders,
    overview,
)
from cadence.figures.message_detail import not_acknowledged, repetition
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch, launch_occurrence
from cadence.planning.followups import WorkingHours
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    Message,
    Occurrence,
    Person,
)
from tests import factories as f

NOW = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@dataclass
class Org:
    people: dict[str, Person]
    m1: Message
    m2: Message

    def id(self, name: str) -> int:
        return self.people[name].id


def occurrence(
    session: Session,
    message: Message,
    *,
    sequence: int,
    zone: str,
    due: datetime,
    purpose: str = "cadence",
    status: str = "dispatched",
    parent: Occurrence | None = None,
    note: str | None = None,
) -> Occurrence:
    o = Occurrence(
        message_id=message.id,
        purpose=purpose,
        parent_id=parent.id if parent else None,
        follow_up=1 if parent else 0,
        sequence=sequence,
        zone=zone,
        local_time=due.replace(tzinfo=None),
        due_at=due,
        status=status,
        note=note,
    )
    session.add(o)
    session.flush()
    return o


def deliver(
    session: Session,
    o: Occurrence,
    p: Person,
    channel: str,
    status: str,
    sent_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
) -> Delivery:
    d = Delivery(
        occurrence_id=o.id,
        person_id=p.id,
        channel=channel,
        status=status,
        created_at=o.due_at,
        sent_at=sent_at,
        payload=payload,
    )
    session.add(d)
    session.flush()
    return d


def answer(
    session: Session,
    d: Delivery,
    when: datetime,
    *,
    kind: str = "ack",
    clarity: int | None = None,
    counted: bool = True,
    root: Occurrence | None = None,
) -> None:
    session.add(
        Acknowledgement(
            delivery_id=d.id,
            occurrence_id=root.id if root else d.occurrence_id,
            person_id=d.person_id,
            kind=kind,
            question="Which customers?" if kind == "question" else None,
            clarity=clarity,
            message_version=1,
            via=d.channel,
            counted=counted,
            created_at=when,
        )
    )
    session.flush()


def people(session: Session) -> dict[str, Person]:
    support = f.team(session, "Support")
    emea = f.team(session, "Support/EMEA", support)
    partners = f.team(session, "Support Partners")
    london, new_york = "Europe/London", "America/New_York"
    p: dict[str, Person] = {}
    p["ann"] = f.person(session, "ann@example.com", timezone=london, team=support)
    p["bob"] = f.person(
        session, "bob@example.com", timezone=new_york, team=support, manager=p["ann"]
    )
    p["cat"] = f.person(session, "cat@example.com", timezone=london, team=support, manager=p["ann"])
    p["dan"] = f.person(session, "dan@example.com", timezone=london, team=emea, manager=p["bob"])
    p["eve"] = f.person(session, "eve@example.com", timezone=london, team=emea, manager=p["bob"])
    p["fay"] = f.person(session, "fay@example.com", timezone=london, team=partners)
    return p


def seed(session: Session) -> Org:
    """The organisation, deliveries and answers described at the top of this file."""
    p = people(session)
    m1 = f.core_message(session, title="Own the outcome")
    m2 = f.core_message(
        session, title="Say sorry once", audience=Audience(teams=("Support",)), timezone="UTC"
    )
    ann, bob, cat, dan, eve, fay = (p[n] for n in ("ann", "bob", "cat", "dan", "eve", "fay"))

    o1 = occurrence(session, m1, sequence=0, zone="Europe/London", due=at(2, 9))
    d = deliver(session, o1, ann, "slack", "sent", at(2, 9, 1))
    answer(session, d, at(2, 9, 11), clarity=10)
    answer(session, d, at(2, 9, 30), kind="question", counted=False)
    deliver(session, o1, cat, "slack", "sent", at(2, 9, 20))
    deliver(session, o1, dan, "slack", "failed")
    d = deliver(session, o1, dan, "email", "sent", at(2, 9, 5))
    answer(session, d, at(2, 9, 35), kind="question", clarity=3)
    d = deliver(session, o1, eve, "slack", "sent", at(2, 9, 2))
    answer(session, d, at(2, 9, 12))
    d = deliver(session, o1, eve, "email", "sent", at(2, 9, 3))
    answer(session, d, at(2, 9, 13), counted=False)
    deliver(session, o1, fay, "email", "failed")

    r1 = occurrence(
        session, m1, sequence=0, zone="Europe/London", due=at(3, 9), purpose="reminder", parent=o1
    )
    d = deliver(session, r1, cat, "slack", "sent", at(3, 9))
    answer(session, d, at(3, 10), clarity=7, root=o1)

    o2 = occurrence(session, m1, sequence=0, zone="America/New_York", due=at(2, 14))
    d = deliver(session, o2, bob, "slack", "sent", at(2, 14, 10))
    answer(session, d, at(2, 15, 10), clarity=9)

    o3 = occurrence(session, m1, sequence=1, zone="Europe/London", due=at(9, 9))
    d = deliver(session, o3, ann, "slack", "sent", at(9, 9))
    answer(session, d, at(9, 9, 30), clarity=8)
    deliver(session, o3, cat, "slack", "sent", at(9, 9, 30))
    deliver(session, o3, dan, "slack", "sent", at(9, 9, 1))
    deliver(session, o3, eve, "slack", "pending")
    deliver(session, o3, fay, "email", "cancelled")
    occurrence(
        session,
        m1,
        sequence=1,
        zone="America/New_York",
        due=at(9, 14),
        status="skipped",
        note="missed: 13:00:00 late, more than the allowed lateness",
    )

    o4 = occurrence(session, m2, sequence=0, zone="UTC", due=at(8, 10))
    deliver(session, o4, ann, "slack", "sent", at(8, 10))
    d = deliver(session, o4, bob, "slack", "sent", at(8, 10, 5))
    answer(session, d, at(8, 10, 35), kind="question", clarity=6)
    deliver(session, o4, cat, "slack", "queued")
    d = deliver(session, o4, dan, "email", "sent", at(8, 10, 10))
    answer(session, d, at(8, 10, 20))
    d = deliver(session, o4, eve, "slack", "sent", at(8, 10, 15))
    answer(session, d, at(8, 11, 15), clarity=10)

    test = occurrence(session, m1, sequence=0, zone="UTC", due=at(2, 8), purpose="test")
    d = deliver(session, test, ann, "slack", "sent", at(2, 8))
    answer(session, d, at(2, 8, 5), clarity=0)
    summaries.catch_up(session)
    session.commit()
    return Org(p, m1, m2)


def figures(**values: Any) -> dict[str, Any]:
    """A full set of figure columns: counts default to 0 and ratios to None."""
    out: dict[str, Any] = {c: None for c in FIGURE_COLUMNS}
    out.update({c: 0 for c in ("planned", "sent", "acknowledged", "questions", "ratings")})
    out["on_time"] = 0
    out.update(values)
    return out


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {c: result[c] for c in FIGURE_COLUMNS}


# ---------------------------------------------------------------------------------------
# Headline figures


def test_overview_of_everything(session: Session) -> None:
    seed(session)
    result = overview(session, Filters(), NOW)
    # 15 person-occurrences planned (fay's withdrawn one is not); 12 sent; 9 answered.
    # Durations 600 x3, 1800 x3, 3600 x2, 88800: median the 5th; p90 at rank 7.2 of 0..8,
    # 3600 + 0.2 x (88800 - 3600). Ratings 10, 7, 3, 9, 8, 6, 10: (3 - 2) / 7.
    # On time: all but cat's two late ones (eve's 15 minutes exactly is on time).
    assert headline(result) == figures(
        planned=15,
        sent=12,
        reach=0.8,
        acknowledged=9,
        ack_rate=0.75,
        ack_median_s=1800.0,
        ack_p90_s=20640.0,
        questions=3,
        question_rate=0.25,
        ratings=7,
        clarity_score=14.3,
        on_time=10,
        on_time_share=0.8333,
        delivered_share=0.8,
    )
    assert result["missed_occurrences"] == 1
    assert result["on_time_tolerance_minutes"] == 15
    assert result["launches"] == []
    assert result["as_of"] == "2026-03-20T00:00:00+00:00"


def test_nothing_delivered_gives_none_not_errors(session: Session) -> None:
    result = overview(session, Filters(), NOW)
    assert headline(result) == figures()
    assert result["missed_occurrences"] == 0 and result["launches"] == []
    for by in ("message", "team", "manager", "channel", "repetition", "period"):
        assert breakdown(session, by, Filters(), NOW) == []
    assert heatmap(session, Filters()) == {"teams": [], "messages": [], "rates": [], "cells": []}
    assert leaders(session, Filters()) == []
    m = f.core_message(session)
    assert ack_curve(session, m.id, Filters()) == []
    assert not_acknowledged(session, m.id, Filters()) == []
    reps = repetition(session, m.id, None, None, 2)
    assert reps["audience"] == 0 and reps["share_reached_at_least_k"] is None
    assert reps["people"] == [] and reps["distribution"] == {}


def test_only_what_was_due_by_now_counts(session: Session) -> None:
    seed(session)
    # By noon on the 8th: O1, O2 and O4; O3 and the missed one are still ahead.
    result = overview(session, Filters(), at(8, 12))
    assert (result["planned"], result["sent"], result["acknowledged"]) == (11, 9, 8)
    assert result["missed_occurrences"] == 0


def test_test_sends_and_reminders_are_not_sends(session: Session) -> None:
    org = seed(session)
    # ann's test send, answered with clarity 0, would make 16 planned, 13 sent, 10 answered
    # and 8 ratings with 3 detractors (a score of 0).
    result = overview(session, Filters(), NOW)
    assert (result["planned"], result["sent"], result["acknowledged"]) == (15, 12, 9)
    assert (result["ratings"], result["clarity_score"]) == (7, 14.3)
    # cat's reminder is not a second send of O1, but her answer to it counts for O1.
    cat = overview(session, Filters(scope_person_id=org.id("cat")), NOW)
    assert (cat["planned"], cat["sent"], cat["acknowledged"]) == (3, 2, 1)
    assert cat["ack_median_s"] == 88800.0


def test_a_person_on_two_channels_counts_once(session: Session) -> None:
    org = seed(session)
    eve = overview(session, Filters(scope_person_id=org.id("eve")), NOW)
    # O1 on slack and email, O3 pending, O4: three planned, two sent, two answered. Her
    # repeat click on email is not a second answer; the first send (09:02) starts the clock:
    # 600 and 3600 seconds.
    assert (eve["planned"], eve["sent"], eve["acknowledged"]) == (3, 2, 2)
    assert (eve["ack_median_s"], eve["on_time"]) == (2100.0, 2)
    # dan: slack failed, email sent: one person-occurrence, sent, timed from the email.
    dan = overview(session, Filters(scope_person_id=org.id("dan"), message_id=org.m1.id), NOW)
    assert (dan["planned"], dan["sent"], dan["acknowledged"]) == (2, 2, 1)
    assert dan["ack_median_s"] == 1800.0


def test_on_time_is_against_each_zones_own_due_time(session: Session) -> None:
    org = seed(session)
    # bob's O2 was due 14:00 UTC (09:00 in New York) and sent 14:10: on time, although it
    # went out five hours after the London occurrence of the same repetition.
    new_york = Filters(since=at(2, 12), until=at(3, 0))
    bob = overview(session, new_york, NOW)
    assert (bob["sent"], bob["on_time"], bob["on_time_share"]) == (1, 1, 1.0)
    # bob's tree: sent 10, 5, 5, 1, 10, 2 and 15 minutes after their own due times.
    tree = Filters(scope_person_id=org.id("bob"))
    assert overview(session, tree, NOW)["on_time"] == 7
    assert overview(session, tree, NOW, tolerance=timedelta(minutes=10))["on_time"] == 6
    assert overview(session, tree, NOW, tolerance=timedelta(0))["on_time_share"] == 0.0


# ---------------------------------------------------------------------------------------
# Slicing


def test_team_includes_sub_teams_and_not_lookalike_names(session: Session) -> None:
    seed(session)
    support = overview(session, Filters(team="Support"), NOW)
    # Everyone but fay (Support Partners): 15 - 1 planned; all 12 sends and 9 answers.
    assert (support["planned"], support["sent"], support["acknowledged"]) == (14, 12, 9)
    assert support["reach"] == 0.8571
    emea = overview(session, Filters(team="Support/EMEA"), NOW)
    assert (emea["planned"], emea["sent"], emea["acknowledged"]) == (6, 5, 4)
    with pytest.raises(InputError, match="unknown team 'Nope'"):
        overview(session, Filters(team="Nope"), NOW)


def test_manager_tree_and_leader_scope(session: Session) -> None:
    org = seed(session)
    # bob, dan and eve: bob's O2 and O4, and their 6 (5 sent, 4 answered).
    # Durations 3600, 1800 | 1800, 600, 600, 3600: median 1800, p90 at rank 4.5 = 3600.
    # Ratings 9, 6 | 3, 10: two promoters, two detractors.
    expected = figures(
        planned=8,
        sent=7,
        reach=0.875,
        acknowledged=6,
        ack_rate=0.8571,
        ack_median_s=1800.0,
        ack_p90_s=3600.0,
        questions=2,
        question_rate=0.2857,
        ratings=4,
        clarity_score=0.0,
        on_time=7,
        on_time_share=1.0,
        delivered_share=0.875,
    )
    assert headline(overview(session, Filters(manager_email="Bob@Example.com"), NOW)) == expected
    assert headline(overview(session, Filters(scope_person_id=org.id("bob")), NOW)) == expected
    # A manager inside the leader's scope, or a leader inside the manager's tree: the lower.
    within = Filters(manager_email="bob@example.com", scope_person_id=org.id("ann"))
    assert headline(overview(session, within, NOW)) == expected
    above = Filters(manager_email="ann@example.com", scope_person_id=org.id("bob"))
    assert headline(overview(session, above, NOW)) == expected
    # Trees that do not meet: nobody.
    apart = Filters(manager_email="fay@example.com", scope_person_id=org.id("bob"))
    assert headline(overview(session, apart, NOW)) == figures()
    with pytest.raises(InputError, match=r"no person with email nobody@example\.com"):
        overview(session, Filters(manager_email="nobody@example.com"), NOW)


def test_window_message_and_channel(session: Session) -> None:
    org = seed(session)
    # Due from the 5th (inclusive) to the 9th 09:00 (exclusive): O4 only.
    window = overview(session, Filters(since=at(5, 0), until=at(9, 9)), NOW)
    assert (window["planned"], window["sent"], window["acknowledged"]) == (5, 4, 3)
    m2 = overview(session, Filters(message_id=org.m2.id), NOW)
    assert (m2["planned"], m2["sent"]) == (5, 4)
    # Email deliveries: dan O1, eve O1, fay O1 (failed), dan O4 planned; fay's withdrawn
    # one is not. All three sent were answered (eve answered on slack: still counts).
    email = overview(session, Filters(channel="email"), NOW)
    assert (email["planned"], email["sent"], email["acknowledged"]) == (4, 3, 3)
    assert (email["reach"], email["ack_rate"]) == (0.75, 1.0)
    with pytest.raises(InputError, match="time with a zone"):
        overview(session, Filters(since=datetime(2026, 3, 1)), NOW)
    with pytest.raises(InputError, match="before its end"):
        overview(session, Filters(since=at(9, 0), until=at(2, 0)), NOW)


# ---------------------------------------------------------------------------------------
# Breakdowns


def test_breakdown_by_message(session: Session) -> None:
    org = seed(session)
    rows = breakdown(session, "message", Filters(), NOW)
    # m1 durations 600, 600, 1800, 1800, 3600, 88800: median between 1800 and 1800, p90 at
    # rank 4.5. m2 durations 600, 1800, 3600: p90 at rank 1.8 = 1800 + 0.8 x 1800.
    assert rows == [
        {
            "message": org.m1.id,
            "title": "Own the outcome",
            **figures(
                planned=10,
                sent=8,
                reach=0.8,
                acknowledged=6,
                ack_rate=0.75,
                ack_median_s=1800.0,
                ack_p90_s=46200.0,
                questions=2,
                question_rate=0.25,
                ratings=5,
                clarity_score=20.0,
                on_time=6,
                on_time_share=0.75,
                delivered_share=0.8,
            ),
        },
        {
            "message": org.m2.id,
            "title": "Say sorry once",
            **figures(
                planned=5,
                sent=4,
                reach=0.8,
                acknowledged=3,
                ack_rate=0.75,
                ack_median_s=1800.0,
                ack_p90_s=3240.0,
                questions=1,
                question_rate=0.25,
                ratings=2,
                clarity_score=0.0,
                on_time=4,
                on_time_share=1.0,
                delivered_share=0.8,
            ),
        },
    ]


def test_breakdown_by_team_rolls_up_sub_teams(session: Session) -> None:
    seed(session)
    rows = {r["team"]: r for r in breakdown(session, "team", Filters(), NOW)}
    assert list(rows) == ["Support", "Support Partners", "Support/EMEA"]
    for path, row in rows.items():
        assert _figures_of(row) == headline(overview(session, Filters(team=path), NOW))
    # ann, bob, cat with dan and eve of Support/EMEA.
    assert (rows["Support"]["planned"], rows["Support"]["acknowledged"]) == (14, 9)


def _figures_of(row: dict[str, Any]) -> dict[str, Any]:
    return {c: row[c] for c in FIGURE_COLUMNS}


def test_breakdown_by_own_team(session: Session) -> None:
    seed(session)
    rows = breakdown(session, "team", Filters(), NOW, own=True)
    assert rows == [
        # ann, bob, cat. Durations 600, 1800, 1800, 3600, 88800; p90 at rank 3.6.
        {
            "team": "Support",
            **figures(
                planned=8,
                sent=7,
                reach=0.875,
                acknowledged=5,
                ack_rate=0.7143,
                ack_median_s=1800.0,
                ack_p90_s=54720.0,
                questions=2,
                question_rate=0.2857,
                ratings=5,
                clarity_score=20.0,
                on_time=5,
                on_time_share=0.7143,
                delivered_share=0.875,
            ),
        },
        # fay: one failed send; her withdrawn one is not planned.
        {"team": "Support Partners", **figures(planned=1, reach=0.0, delivered_share=0.0)},
        # dan, eve. Durations 600, 600, 1800, 3600: median 1200, p90 at rank 2.7.
        {
            "team": "Support/EMEA",
            **figures(
                planned=6,
                sent=5,
                reach=0.8333,
                acknowledged=4,
                ack_rate=0.8,
                ack_median_s=1200.0,
                ack_p90_s=3060.0,
                questions=1,
                question_rate=0.2,
                ratings=2,
                clarity_score=0.0,
                on_time=5,
                on_time_share=1.0,
                delivered_share=0.8333,
            ),
        },
    ]


def test_breakdown_by_manager_channel_repetition_and_period(session: Session) -> None:
    org = seed(session)

    def counts(by: str, filters: Filters | None = None, **kw: Any) -> list[tuple[Any, ...]]:
        rows = breakdown(session, by, filters or Filters(), NOW, **kw)
        return [(r[by], r["planned"], r["sent"], r["acknowledged"]) for r in rows]

    # A manager's whole tree: ann's is everyone but fay; ann and fay have no manager.
    assert counts("manager") == [
        ("ann@example.com", 14, 12, 9),
        ("bob@example.com", 8, 7, 6),
        (None, 4, 3, 2),
    ]
    for row in breakdown(session, "manager", Filters(), NOW):
        if row["manager"] is not None:
            wanted = overview(session, Filters(manager_email=row["manager"]), NOW)
            assert _figures_of(row) == headline(wanted)
    # Direct reports: ann leads bob and cat, bob leads dan and eve.
    assert counts("manager", own=True) == [
        ("ann@example.com", 5, 4, 3),
        ("bob@example.com", 6, 5, 4),
        (None, 4, 3, 2),
    ]
    # Per channel, eve's O1 counts on both, and answers count on every channel.
    assert counts("channel") == [("email", 4, 3, 3), ("slack", 13, 10, 7)]
    assert counts("repetition") == [(1, 11, 9, 8), (2, 4, 3, 1)]
    assert counts("repetition", Filters(message_id=org.m1.id)) == [(1, 6, 5, 5), (2, 4, 3, 1)]
    # Weeks start on Monday: O4 on Sunday the 8th is in the week of the 2nd.
    assert counts("period") == [("2026-03-02", 11, 9, 8), ("2026-03-09", 4, 3, 1)]
    assert counts("period", period="day") == [
        ("2026-03-02", 6, 5, 5),
        ("2026-03-08", 5, 4, 3),
        ("2026-03-09", 4, 3, 1),
    ]
    assert counts("period", period="month") == [("2026-03-01", 15, 12, 9)]
    with pytest.raises(InputError, match="unknown breakdown 'zone'"):
        breakdown(session, "zone", Filters(), NOW)
    with pytest.raises(InputError, match="unknown period 'year'"):
        breakdown(session, "period", Filters(), NOW, period="year")


# ---------------------------------------------------------------------------------------
# Curves, heatmap, repetition, who to chase


def test_ack_curve(session: Session) -> None:
    org = seed(session)
    # m1: 8 sent. Answers after the due time: 11, 35, 12 and 30 minutes (hour 1), 70
    # minutes (bob, hour 2), and cat's 25 hours exactly (hour 25).
    curve = ack_curve(session, org.m1.id, Filters())
    assert curve[:3] == [(0.0, 0.0), (1.0, 0.5), (2.0, 0.625)]
    assert curve[24] == (24.0, 0.625)
    assert curve[-1] == (25.0, 0.75) and len(curve) == 26
    assert ack_curve(session, org.m2.id, Filters()) == [(0.0, 0.0), (1.0, 0.5), (2.0, 0.75)]
    assert ack_curve(session, org.m1.id, Filters(team="Support/EMEA")) == [
        (0.0, 0.0),
        (1.0, 0.6667),
    ]
    with pytest.raises(InputError, match="no message with id 999"):
        ack_curve(session, 999, Filters())


def test_heatmap(session: Session) -> None:
    org = seed(session)
    result = heatmap(session, Filters())
    assert result["teams"] == ["Support", "Support Partners", "Support/EMEA"]
    assert result["messages"] == [
        {"id": org.m1.id, "title": "Own the outcome"},
        {"id": org.m2.id, "title": "Say sorry once"},
    ]
    # Support's row includes Support/EMEA's people.
    assert result["rates"] == [[0.75, 0.75], [None, None], [0.6667, 1.0]]
    assert result["cells"][0] == {
        "team": "Support",
        "message_id": org.m1.id,
        "sent": 8,
        "acknowledged": 6,
        "ack_rate": 0.75,
    }
    scoped = heatmap(session, Filters(scope_person_id=org.id("bob")))
    assert scoped["teams"] == ["Support", "Support/EMEA"]
    assert scoped["rates"] == [[0.75, 1.0], [0.6667, 1.0]]


def test_repetition(session: Session) -> None:
    org = seed(session)
    result = repetition(session, org.m1.id, at(1, 0), at(20, 0), 2)
    # bob's second repetition was missed; eve's is still pending; fay never got it.
    assert result["repetitions"] == 2
    assert (result["audience"], result["reached_at_least_k"]) == (6, 3)
    assert result["share_reached_at_least_k"] == 0.5
    assert result["distribution"] == {0: 1, 1: 2, 2: 3}
    assert [(r["person"], r["received"], r["acknowledged"]) for r in result["people"]] == [
        ("ann@example.com", 2, 2),
        ("bob@example.com", 1, 1),
        ("cat@example.com", 2, 1),
        ("dan@example.com", 2, 1),
        ("eve@example.com", 1, 1),
        ("fay@example.com", 0, 0),
    ]
    assert repetition(session, org.m1.id, at(1, 0), at(20, 0), 1)["share_reached_at_least_k"] == (
        0.8333
    )
    # From the 5th: O3 only; fay's was withdrawn and bob had none, so neither is audience.
    later = repetition(session, org.m1.id, at(5, 0), None, 1)
    assert (later["audience"], later["reached_at_least_k"], later["repetitions"]) == (4, 3, 1)
    scoped = repetition(
        session, org.m1.id, None, None, 2, filters=Filters(scope_person_id=org.id("bob"))
    )
    assert (scoped["audience"], scoped["reached_at_least_k"]) == (3, 1)
    with pytest.raises(InputError, match="k must be at least 1"):
        repetition(session, org.m1.id, None, None, 0)


def test_not_acknowledged(session: Session) -> None:
    org = seed(session)
    rows = not_acknowledged(session, org.m1.id, Filters())
    assert rows == [
        {
            "person": "cat@example.com",
            "name": "Cat",
            "team": "Support",
            "manager": "ann@example.com",
            "repetition": 2,
            "due_at": "2026-03-09T09:00:00+00:00",
            "sent_at": "2026-03-09T09:30:00+00:00",
        },
        {
            "person": "dan@example.com",
            "name": "Dan",
            "team": "Support/EMEA",
            "manager": "bob@example.com",
            "repetition": 2,
            "due_at": "2026-03-09T09:00:00+00:00",
            "sent_at": "2026-03-09T09:01:00+00:00",
        },
    ]
    # eve's latest sent is O1 (O3 is pending), which she answered.
    assert [r["person"] for r in not_acknowledged(session, org.m2.id, Filters())] == [
        "ann@example.com"
    ]
    scoped = not_acknowledged(session, org.m1.id, Filters(scope_person_id=org.id("bob")))
    assert [r["person"] for r in scoped] == ["dan@example.com"]
    # A new version that must be acknowledged again: earlier answers no longer count.
    org.m1.version = org.m1.ack_version = 2
    org.people["dan"].active = False
    session.flush()
    assert [r["person"] for r in not_acknowledged(session, org.m1.id, Filters())] == [
        "ann@example.com",
        "bob@example.com",
        "cat@example.com",
        "eve@example.com",
    ]


# ---------------------------------------------------------------------------------------
# Launches and leaders


def launch_context(settings: Settings) -> LaunchContext:
    return LaunchContext(
        settings.timezone, 300.0, WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri")
    )


def launch(session: Session, settings: Settings, title: str, customer_at: datetime) -> Occurrence:
    spec = LaunchSpec(
        title=title,
        body="From Friday, refunds under 50 EUR are approved at once.",
        customer_copy="Refunds under 50 EUR now arrive the same day.",
        customer_at=customer_at,
        customer_zone="Europe/London",
        audience=Audience(teams=("Support",)),
        channels=["log"],
    )
    message = add_launch(session, spec, at(2, 8), launch_context(settings))
    return launch_occurrence(session, message.id)


def seed_launches(session: Session, settings: Settings) -> tuple[dict[str, Person], int, int]:
    """Two launches to ann's tree (ann leads bob and cat; bob leads dan and eve).

    Launch 1 (customers told 13th 12:00): ann briefed 10th 09:00, acknowledges two hours
    later; bob briefed 11:00, never acknowledges, so dan and eve are released by his
    deadline, dan only after customers heard (a breach).
    Launch 2 (customers told 20th 12:00): ann briefed 17th 09:00, acknowledges after 30
    minutes; bob briefed 10:00, acknowledges after 10 minutes; everyone released by them.
    """
    p = people(session)
    first = launch(session, settings, "Same-day refunds", at(13, 12))
    brief = {"briefing": True, "release": "start"}
    d = deliver(session, first, p["ann"], "log", "sent", at(10, 9), brief)
    answer(session, d, at(10, 11))
    brief = {"briefing": True, "release": "briefed by leader"}
    deliver(session, first, p["bob"], "log", "sent", at(10, 11), brief)
    d = deliver(
        session, first, p["cat"], "log", "sent", at(10, 11), {"release": "briefed by leader"}
    )
    answer(session, d, at(10, 12))
    deliver(session, first, p["dan"], "log", "sent", at(13, 13), {"release": "leader bypassed"})
    deliver(session, first, p["eve"], "log", "sent", at(11, 11), {"release": "leader bypassed"})

    second = launch(session, settings, "Loyalty week", at(20, 12))
    d = deliver(session, second, p["ann"], "log", "sent", at(17, 9), {"briefing": True})
    answer(session, d, at(17, 9, 30))
    d = deliver(session, second, p["bob"], "log", "sent", at(17, 10), {"briefing": True})
    answer(session, d, at(17, 10, 10))
    for name in ("cat", "dan", "eve"):
        deliver(session, second, p[name], "log", "sent", at(17, 11), {"release": "briefed"})
    summaries.catch_up(session)
    session.commit()
    return p, first.message_id, second.message_id


def test_leaders(session: Session, settings: Settings) -> None:
    p, _, second = seed_launches(session, settings)
    rows = leaders(session, Filters())
    assert rows == [
        {
            "leader": "ann@example.com",
            "name": "Ann",
            "team": "Support",
            "direct_reports": 2,
            "briefings": 2,
            "briefings_acknowledged": 2,
            "briefing_lag_median_s": 4500.0,  # between 7200 and 1800
            "bypassed_people": 0,
            "bypassed_launches": 0,
        },
        {
            "leader": "bob@example.com",
            "name": "Bob",
            "team": "Support",
            "direct_reports": 2,
            "briefings": 2,
            "briefings_acknowledged": 1,
            "briefing_lag_median_s": 600.0,
            "bypassed_people": 2,
            "bypassed_launches": 1,
        },
    ]
    scoped = leaders(session, Filters(scope_person_id=p["bob"].id))
    assert [r["leader"] for r in scoped] == ["bob@example.com"]
    only_second = leaders(session, Filters(message_id=second))
    assert [
        (r["leader"], r["briefing_lag_median_s"], r["bypassed_people"]) for r in only_second
    ] == [
        ("ann@example.com", 1800.0, 0),
        ("bob@example.com", 600.0, 0),
    ]
    assert leaders(session, Filters(team="Support/EMEA")) == []


def test_launch_compliance_in_the_overview(session: Session, settings: Settings) -> None:
    p, first, second = seed_launches(session, settings)
    result = overview(session, Filters(), NOW, launch_context=launch_context(settings))
    # Launch deliveries are sends, but launches are not held to the cadence's on-time rule.
    assert (result["planned"], result["sent"], result["acknowledged"]) == (10, 10, 4)
    assert result["on_time_share"] is None
    first_status, second_status = result["launches"]
    assert (first_status["launch"], second_status["launch"]) == (first, second)
    assert first_status["leader_bypasses"] == 2
    assert (first_status["breaches"], first_status["breached"]) == (1, ["dan@example.com"])
    # A leader's view counts and names only their own tree: cat alone, who heard in time.
    cat_view = overview(session, Filters(scope_person_id=p["cat"].id), NOW)
    assert cat_view["launches"][0]["audience"] == 1
    assert cat_view["launches"][0]["breaches"] == 0
    assert cat_view["launches"][0]["breached"] == []
    # A team filter (comms narrowing the page) keeps the whole launch's counts.
    assert overview(session, Filters(team="Support"), NOW)["launches"][0]["breaches"] == 1
    only_first = overview(session, Filters(message_id=first), NOW)
    assert [s["launch"] for s in only_first["launches"]] == [first]
