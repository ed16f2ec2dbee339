"""Launch timelines: staff before customers, leaders before their people, in working hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadence.errors import InputError
from cadence.planning.followups import WorkingHours
from cadence.planning.launch_timeline import (
    Member,
    Release,
    Timeline,
    TimelinePolicy,
    plan_timeline,
    problems,
)

HOURS = WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri")
POLICY = TimelinePolicy(
    lead=timedelta(hours=24),
    leader_lead=None,
    margin=timedelta(hours=1),
    rate_per_minute=300,
    hours=HOURS,
)
MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # London is on UTC until 29 March
LONDON = "Europe/London"
SYDNEY = "Australia/Sydney"


def person(pid: int, manager: int | None, zone: str = LONDON) -> Member:
    return Member(pid, f"p{pid}@example.com", f"Person {pid}", manager, zone)


def three_levels(zone: str = LONDON) -> list[Member]:
    """A head, two leaders under them, two staff under each leader."""
    return [
        person(1, None, zone),
        person(2, 1, zone),
        person(3, 1, zone),
        person(4, 2, zone),
        person(5, 2, zone),
        person(6, 3, zone),
        person(7, 3, zone),
    ]


def by_id(timeline: Timeline) -> dict[int, Release]:
    return {r.person_id: r for r in timeline.releases}


def in_hours(at: datetime, zone: str, hours: WorkingHours = HOURS) -> bool:
    local = at.astimezone(ZoneInfo(zone))
    return local.weekday() in hours.days and hours.start <= local.time() < hours.end


def test_three_levels_cascade_a_working_day_apart_and_finish_before_everyone_by() -> None:
    customer = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # Friday
    timeline = plan_timeline(three_levels(), customer, MONDAY_9, POLICY)

    assert timeline.ok and problems(timeline) == []
    assert timeline.everyone_by == customer - timedelta(hours=25)
    assert timeline.earliest_customer_at is None
    got = by_id(timeline)
    assert {pid: r.tier for pid, r in got.items()} == {1: 0, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2}
    assert {pid for pid, r in got.items() if r.briefing} == {1, 2, 3}
    assert all(r.deadline is None for r in got.values() if not r.briefing)
    assert got[1].manager_id is None and got[4].manager_id == 2
    for leader, people in ((1, (2, 3)), (2, (4, 5)), (3, (6, 7))):
        deadline = got[leader].deadline
        assert deadline == got[leader].release_at + timedelta(days=1)
        assert all(got[p].release_at == deadline for p in people)
    assert all(r.release_at + timeline.fanout <= timeline.everyone_by for r in got.values())
    assert [tier for tier, *_ in timeline.tiers()] == [0, 1, 2]
    assert [people for *_, people in timeline.tiers()] == [1, 2, 4]
    assert timeline.releases == sorted(
        timeline.releases, key=lambda r: (r.release_at, r.tier, r.email)
    )


def test_a_leader_briefed_on_friday_has_until_monday() -> None:
    friday_9 = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    customer = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # Tuesday: everyone by Monday 11:00
    timeline = plan_timeline([person(1, None), person(2, 1)], customer, friday_9, POLICY)

    assert timeline.ok
    got = by_id(timeline)
    assert got[1].release_at.weekday() == 4  # Friday
    assert got[1].deadline == got[1].release_at + timedelta(days=3)
    assert got[2].release_at == got[1].deadline  # Monday, same time


def test_a_launch_two_hours_away_is_refused_naming_the_tiers_and_a_time_that_works() -> None:
    timeline = plan_timeline(three_levels(), MONDAY_9 + timedelta(hours=2), MONDAY_9, POLICY)

    assert not timeline.ok
    assert {r.tier for r in timeline.misses} == {0, 1, 2}
    lines = problems(timeline)
    assert len(lines) == 4
    # Shown as people count tiers, as the dashboard does: the top of the cascade is tier 1.
    tier_3 = next(line for line in lines if line.startswith("tier 3:"))
    assert "4 people" in tier_3
    assert all(f"p{pid}@example.com ({LONDON})" in tier_3 for pid in (4, 5, 6, 7))
    # Head Monday 09:00, leaders Tuesday, staff Wednesday, then fan-out, lead and margin.
    earliest = datetime(2026, 3, 5, 10, 1, tzinfo=UTC)
    assert timeline.earliest_customer_at == earliest
    assert lines[-1] == f"earliest customer time that works: {earliest.isoformat()}"
    assert lines[-1].endswith("+00:00")


def test_problems_names_at_most_five_people_per_tier() -> None:
    members = [person(1, None)] + [person(pid, 1) for pid in range(2, 12)]
    timeline = plan_timeline(members, MONDAY_9 + timedelta(hours=2), MONDAY_9, POLICY)

    tier_2 = next(line for line in problems(timeline) if line.startswith("tier 2:"))
    assert "10 people" in tier_2
    assert tier_2.count("@example.com") == 5
    assert tier_2.endswith("and 5 more")


def test_the_earliest_customer_time_is_itself_feasible() -> None:
    first = plan_timeline(three_levels(), MONDAY_9 + timedelta(hours=2), MONDAY_9, POLICY)
    assert first.earliest_customer_at is not None

    again = plan_timeline(three_levels(), first.earliest_customer_at, MONDAY_9, POLICY)
    assert again.ok
    late = plan_timeline(
        three_levels(), first.earliest_customer_at - timedelta(minutes=1), MONDAY_9, POLICY
    )
    assert not late.ok


def test_a_sydney_team_under_a_london_leader_hears_in_sydney_working_hours() -> None:
    members = [
        person(1, None, LONDON),
        person(2, 1, SYDNEY),
        person(3, 1, SYDNEY),
    ]
    customer = datetime(2026, 3, 13, 12, 0, tzinfo=UTC)
    timeline = plan_timeline(members, customer, MONDAY_9, POLICY)

    assert timeline.ok
    got = by_id(timeline)
    assert in_hours(got[1].release_at, LONDON)
    deadline = got[1].deadline
    assert deadline is not None
    for pid in (2, 3):
        assert in_hours(got[pid].release_at, SYDNEY)
        assert got[pid].release_at >= deadline
        assert got[pid].release_at == HOURS.next_open(deadline, ZoneInfo(SYDNEY))
    # A London working-hours deadline is night in Sydney: they wait for their morning.
    assert got[2].release_at.astimezone(ZoneInfo(SYDNEY)).time() == time(9, 0)


def test_across_the_march_daylight_saving_change_times_stay_in_working_hours() -> None:
    # London moves to BST on Sunday 29 March 2026; staff hear on Monday 30 March.
    now = datetime(2026, 3, 26, 9, 0, tzinfo=UTC)  # Thursday, 09:00 GMT
    customer = datetime(2026, 3, 31, 11, 0, tzinfo=UTC)  # Tuesday, 12:00 BST
    timeline = plan_timeline(three_levels(), customer, now, POLICY)

    assert timeline.ok
    got = by_id(timeline)
    london = ZoneInfo(LONDON)
    for r in timeline.releases:
        assert in_hours(r.release_at, LONDON)
    head, leader, staff = (got[pid].release_at.astimezone(london) for pid in (1, 2, 4))
    assert staff.date().isoformat() == "2026-03-30"
    assert staff.utcoffset() == timedelta(hours=1) and leader.utcoffset() == timedelta(0)
    # One working day keeps the wall-clock time, so the UTC gap over the change is 71 hours.
    assert head.time() == leader.time() == staff.time()
    assert got[4].release_at - got[2].release_at == timedelta(hours=71)
    assert got[4].release_at + timeline.fanout <= timeline.everyone_by


def _staff_wide(count: int) -> list[Member]:
    leaders = 99
    members = [person(0, None)] + [person(pid, 0) for pid in range(1, leaders + 1)]
    members += [person(pid, 1 + pid % leaders) for pid in range(leaders + 1, count)]
    return members


def test_fan_out_of_a_large_audience_is_part_of_the_timeline() -> None:
    members = _staff_wide(100_000)
    customer = MONDAY_9 + timedelta(hours=96)  # Friday 09:00: everyone by Thursday 08:00

    slow = plan_timeline(members, customer, MONDAY_9, TimelinePolicy(rate_per_minute=60))
    assert slow.fanout > timedelta(hours=27)
    assert not slow.ok
    assert any(line.startswith("tier 3: 99900 people") for line in problems(slow))

    fast = plan_timeline(members, customer, MONDAY_9, TimelinePolicy(rate_per_minute=6_000))
    assert fast.fanout < timedelta(minutes=17)
    assert fast.ok
    assert len(fast.releases) == 100_000
    assert all(r.release_at + fast.fanout <= fast.everyone_by for r in fast.releases)


def test_the_plan_starts_as_late_as_still_fits() -> None:
    # The first guess (two days before everyone_by) lands on Tuesday before 09:00, which
    # leaves staff until Thursday 09:00; moving earlier to the last minute that still fits
    # starts the head on Monday at 17:29 and staff on Wednesday at 17:29.
    members = _staff_wide(1_000)
    customer = MONDAY_9 + timedelta(hours=96)
    timeline = plan_timeline(members, customer, MONDAY_9, TimelinePolicy(rate_per_minute=6_000))

    assert timeline.ok
    assert by_id(timeline)[0].release_at == datetime(2026, 3, 2, 17, 29, tzinfo=UTC)


def test_an_explicit_leader_lead_replaces_the_working_day() -> None:
    policy = TimelinePolicy(leader_lead=timedelta(hours=2), hours=HOURS)
    customer = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)  # everyone by Monday 15:00
    timeline = plan_timeline(three_levels(), customer, MONDAY_9, policy)

    assert timeline.ok
    got = by_id(timeline)
    assert got[1].deadline == got[1].release_at + timedelta(hours=2)
    assert got[2].release_at == got[1].release_at + timedelta(hours=2)
    assert got[4].release_at == got[2].release_at + timedelta(hours=2)
    assert got[4].release_at.date() == got[1].release_at.date() == MONDAY_9.date()


def test_managers_outside_the_audience_and_cycles_start_the_cascade() -> None:
    members = [
        person(1, 99),  # manager not in the audience
        person(2, 1),
        person(3, 4),  # 3 and 4 manage each other
        person(4, 3),
        person(5, 4),
        person(6, 6),  # their own manager
    ]
    timeline = plan_timeline(members, datetime(2026, 3, 13, 12, 0, tzinfo=UTC), MONDAY_9, POLICY)

    got = by_id(timeline)
    assert {pid: r.tier for pid, r in got.items()} == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1, 6: 0}
    assert {pid: r.manager_id for pid, r in got.items()} == {
        1: None,
        2: 1,
        3: None,
        4: None,
        5: 4,
        6: None,
    }
    assert {pid for pid, r in got.items() if r.briefing} == {1, 4}


def test_bad_input_is_refused_naming_each_problem() -> None:
    members = [person(1, None), person(1, None), person(2, None, "Mars/Olympus")]
    with pytest.raises(InputError) as caught:
        plan_timeline(members, MONDAY_9 + timedelta(days=5), MONDAY_9, POLICY)
    assert any("twice" in p for p in caught.value.problems)
    assert any("Mars/Olympus" in p for p in caught.value.problems)
    with pytest.raises(InputError):
        plan_timeline([person(1, None)], datetime(2026, 3, 9), MONDAY_9, POLICY)
    with pytest.raises(InputError):
        plan_timeline([person(1, None)], MONDAY_9, MONDAY_9, TimelinePolicy(rate_per_minute=0))


def test_an_empty_audience_is_trivially_on_time() -> None:
    timeline = plan_timeline([], MONDAY_9 + timedelta(days=2), MONDAY_9, POLICY)
    assert timeline.ok and timeline.releases == [] and timeline.tiers() == []
    assert timeline.fanout == timedelta(0)


ZONES = [
    "UTC",
    LONDON,
    SYDNEY,
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Pacific/Kiritimati",
]


@st.composite
def audiences(draw: st.DrawFn) -> list[Member]:
    """Small forests: each member's manager is an earlier member, someone outside, or none."""
    size = draw(st.integers(min_value=1, max_value=12))
    members = []
    for pid in range(size):
        choices: list[int | None] = [None, 1_000, *range(pid)]
        manager = draw(st.sampled_from(choices))
        members.append(person(pid, manager, draw(st.sampled_from(ZONES))))
    return members


policies = st.builds(
    TimelinePolicy,
    lead=st.integers(min_value=0, max_value=72).map(lambda h: timedelta(hours=h)),
    leader_lead=st.one_of(
        st.none(), st.integers(min_value=0, max_value=60 * 48).map(lambda m: timedelta(minutes=m))
    ),
    margin=st.integers(min_value=0, max_value=180).map(lambda m: timedelta(minutes=m)),
    rate_per_minute=st.sampled_from([0.5, 6.0, 300.0]),
    hours=st.sampled_from([HOURS, WorkingHours.parse("08:00", "20:00", "mon,tue,wed,thu,fri,sat")]),
)
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    members=audiences(),
    now=instants,
    ahead=st.integers(min_value=0, max_value=60 * 24 * 21),
    policy=policies,
)
def test_plans_keep_working_hours_and_leaders_first(
    members: list[Member], now: datetime, ahead: int, policy: TimelinePolicy
) -> None:
    timeline = plan_timeline(members, now + timedelta(minutes=ahead), now, policy)

    got = by_id(timeline)
    assert set(got) == {m.person_id for m in members}
    for r in timeline.releases:
        assert r.release_at >= now
        assert in_hours(r.release_at, r.zone, policy.hours)
        if r.manager_id is not None:
            manager = got[r.manager_id]
            assert r.tier == manager.tier + 1
            assert r.release_at >= manager.release_at
            assert manager.deadline is not None and r.release_at >= manager.deadline
        else:
            assert r.tier == 0
    if timeline.ok:
        assert all(r.release_at + timeline.fanout <= timeline.everyone_by for r in got.values())
        assert problems(timeline) == []
    else:
        assert timeline.earliest_customer_at is not None
        assert problems(timeline)[-1].startswith("earliest customer time that works: ")
        again = plan_timeline(members, timeline.earliest_customer_at, now, policy)
        assert again.ok
