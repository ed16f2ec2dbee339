"""RRULE expansion in wall-clock time, across daylight-saving changes in several zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadence.errors import InputError
from cadence.planning.recurrence import expand, parse_rule, place, preview_lines


def test_weekly_keeps_0900_across_spring_forward_in_new_york() -> None:
    assert preview_lines(
        "RRULE:FREQ=WEEKLY;BYDAY=MO", "2026-03-02T09:00", "America/New_York", 3
    ) == [
        "2026-03-02T09:00:00-05:00",
        "2026-03-09T09:00:00-04:00",
        "2026-03-16T09:00:00-04:00",
    ]


def test_same_rule_in_london_and_sydney_changes_offset_on_their_own_dates() -> None:
    london = preview_lines("FREQ=WEEKLY", "2026-03-23T09:00", "Europe/London", 2)
    assert london == ["2026-03-23T09:00:00+00:00", "2026-03-30T09:00:00+01:00"]
    sydney = preview_lines("FREQ=WEEKLY", "2026-03-30T09:00", "Australia/Sydney", 2)
    assert sydney == ["2026-03-30T09:00:00+11:00", "2026-04-06T09:00:00+10:00"]


def test_nonexistent_local_time_moves_forward_by_the_gap() -> None:
    # 8 March 2026, New York jumps from 02:00 to 03:00: 02:30 does not exist.
    lines = preview_lines("FREQ=DAILY", "2026-03-07T02:30", "America/New_York", 3)
    assert lines == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]


def test_repeated_local_time_is_the_first_of_the_two() -> None:
    # 1 November 2026, New York falls back from 02:00 to 01:00: 01:30 happens twice.
    lines = preview_lines("FREQ=DAILY", "2026-10-31T01:30", "America/New_York", 3)
    assert lines[1] == "2026-11-01T01:30:00-04:00"
    first = datetime.fromisoformat(lines[1]).astimezone(UTC)
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_sydney_gap_in_october() -> None:
    lines = preview_lines("FREQ=DAILY", "2026-10-03T02:30", "Australia/Sydney", 2)
    assert lines == ["2026-10-03T02:30:00+10:00", "2026-10-04T03:30:00+11:00"]


def test_count_and_until_inside_the_rule_are_respected() -> None:
    assert len(preview_lines("FREQ=DAILY;COUNT=2", "2026-01-01T09:00", "UTC", 10)) == 2
    lines = preview_lines("FREQ=DAILY;UNTIL=20260103T090000", "2026-01-01T09:00", "UTC", 10)
    assert lines[-1] == "2026-01-03T09:00:00+00:00"


@pytest.mark.parametrize(
    ("rule", "start", "zone", "message"),
    [
        ("FREQ=SOMETIMES", "2026-01-01T09:00", "UTC", "bad RRULE"),
        ("", "2026-01-01T09:00", "UTC", "empty RRULE"),
        ("FREQ=DAILY", "tomorrow", "UTC", "bad start"),
        ("FREQ=DAILY", "2026-01-01T09:00+01:00", "UTC", "without an offset"),
        ("FREQ=DAILY", "2026-01-01T09:00", "Mars/Olympus", "unknown time zone"),
        ("FREQ=SECONDLY", "2026-01-01T09:00", "UTC", "too often"),
        ("DTSTART:20260101T090000\nRRULE:FREQ=DAILY", "2026-01-01T09:00", "UTC", "single RRULE"),
    ],
)
def test_bad_input_is_named(rule: str, start: str, zone: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        preview_lines(rule, start, zone, 3)


def test_sequence_numbers_count_from_the_start_whatever_the_window() -> None:
    rule = parse_rule("FREQ=DAILY", datetime(2026, 1, 1, 9))
    later = list(
        expand(rule, ZoneInfo("UTC"), not_before=datetime(2026, 1, 10, tzinfo=UTC), limit=2)
    )
    assert [r.sequence for r in later] == [9, 10]


ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "Pacific/Chatham"]


@settings(max_examples=200, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    local=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)),
)
def test_placing_a_wall_clock_time(zone_name: str, local: datetime) -> None:
    """Existing times keep their wall clock; gap times move forward by less than 2 hours;
    every placed time is the earliest instant that shows it."""
    tz = ZoneInfo(zone_name)
    placed = place(local, tz)
    wall = placed.replace(tzinfo=None)
    assert timedelta(0) <= wall - local < timedelta(hours=2)
    if wall == local:
        other = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
        assert placed.astimezone(UTC) <= other
