"""Rules are checked completely and fast: random rules either expand or are refused naming a
part, and the rules users found (BYHOUR=25; a per-minute rule that never occurs) are refused
by the CLI, by the API over a live server, and at tick time without stopping anyone else."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from dateutil.rrule import DAILY, MINUTELY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.errors import InputError
from cadence.messages.planner import plan
from cadence.planning.recurrence import expand, parse_rule, zone
from cadence.planning.rule_checks import PARTS, RuleError, horizon_end
from cadence.planning.rule_search import BoundedRule
from cadence.runtime import Runtime
from cadence.store.models import Message, Occurrence
from tests import factories as f
from tests.conftest import CliResult
from tests.test_api import Api, Org, api, core, org  # noqa: F401  (fixtures)

Cli = Callable[..., CliResult]

OUT_OF_RANGE = "FREQ=HOURLY;BYHOUR=25"
NEVER = "FREQ=MINUTELY;BYHOUR=3;BYMINUTE=30;BYMONTH=2;BYMONTHDAY=30"
START = datetime(2026, 3, 2, 9, 0)
# Only a guard against a hang: real refusals take milliseconds.
HANG_GUARD = 2.0


def refused(rule: str, start: datetime = START) -> RuleError:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule, start)
    return caught.value


# --- Random rules --------------------------------------------------------------------------

WEEKDAY_CODES = st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"])


@st.composite
def byday_item(draw: st.DrawFn) -> str:
    ordinal = draw(st.none() | st.integers(min_value=-5, max_value=5) | st.integers(-60, 60))
    code = draw(WEEKDAY_CODES | st.sampled_from(["XX", "mo", "M"]))
    return ("" if ordinal is None else f"{ordinal:+d}") + code


def numbers(low: int, high: int, beyond: int) -> st.SearchStrategy[str]:
    """Lists mostly in range, and sometimes a little past either end."""
    good = st.integers(min_value=low, max_value=high)
    bad = st.integers(min_value=low - beyond, max_value=high + beyond)
    return st.lists(good | bad, min_size=1, max_size=4).map(lambda xs: ",".join(map(str, xs)))


def signed(high: int) -> st.SearchStrategy[str]:
    return numbers(-high, high, 3)


PART_VALUES: dict[str, st.SearchStrategy[str]] = {
    "FREQ": st.sampled_from(["MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"])
    | st.sampled_from(["SECONDLY", "NEVER", ""]),
    "INTERVAL": st.integers(min_value=1, max_value=30).map(str)
    | st.integers(min_value=-2, max_value=6_000_000).map(str),
    "COUNT": st.integers(min_value=-2, max_value=50).map(str),
    "UNTIL": st.sampled_from(
        ["20260401", "20300401T090000", "20200101", "20261340", "2026", "20260401T090000Z"]
    ),
    "BYSECOND": numbers(0, 0, 60),
    "BYMINUTE": numbers(0, 59, 2),
    "BYHOUR": numbers(0, 23, 2),
    "BYDAY": st.lists(byday_item(), min_size=1, max_size=3).map(",".join),
    "BYMONTHDAY": signed(31),
    "BYYEARDAY": signed(366),
    "BYWEEKNO": signed(53),
    "BYMONTH": numbers(1, 12, 1),
    "BYSETPOS": signed(366) | signed(3),
    "WKST": WEEKDAY_CODES | st.just("XX"),
}
JUNK = st.text(alphabet="AZ09=;,+-:TZ ", max_size=12)


@st.composite
def rules(draw: st.DrawFn) -> str:
    """Real parts, mostly each once and FREQ first; sometimes repeated, or with junk."""
    others = sorted(set(PART_VALUES) - {"FREQ"})
    names = draw(st.lists(st.sampled_from(others), max_size=5, unique=True))
    if draw(st.integers(min_value=0, max_value=9)) > 0:
        names = ["FREQ", *names]
    if draw(st.integers(min_value=0, max_value=19)) == 0 and names:
        names.append(draw(st.sampled_from(names)))
    pieces = [f"{name}={draw(PART_VALUES[name])}" for name in names]
    if draw(st.integers(min_value=0, max_value=9)) == 0 or not pieces:
        pieces.insert(draw(st.integers(0, len(pieces))), draw(JUNK))
    return ";".join(pieces)


STARTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, fold=0)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules(), start=STARTS, zone_name=st.sampled_from(["UTC", "America/New_York"]))
def test_a_random_rule_expands_or_is_refused_naming_a_part(
    rule: str, start: datetime, zone_name: str
) -> None:
    began = time.perf_counter()
    try:
        checked = parse_rule(rule, start, tz=zone(zone_name))
        first = list(expand(checked, zone(zone_name), limit=5))
    except RuleError as exc:
        assert exc.part and exc.why and exc.part in str(exc)
        named = exc.part.split(";")[0].split("=")[0]
        assert named in PARTS or named == "RRULE" or exc.part in rule.upper(), exc
    except InputError as exc:  # the prefix-and-emptiness checks of normalise_rule
        assert "RRULE" in str(exc)
    else:
        assert first, rule  # an accepted rule occurs
        assert first[0].local >= start
        assert first[0].local <= horizon_end(start)
        gaps = [b.local - a.local for a, b in pairwise(first)]
        assert all(gap >= timedelta(minutes=1) for gap in gaps)  # never more than once a minute
    assert time.perf_counter() - began < HANG_GUARD, rule


# --- Explicit refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "part", "why"),
    [
        (OUT_OF_RANGE, "BYHOUR=25", "hours run 0-23"),
        (NEVER, "BYMONTH=2;BYMONTHDAY=30", "no day of any year matches"),
        ("FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31", "BYMONTH=4;BYMONTHDAY=31", "no day"),
        ("FREQ=YEARLY;BYYEARDAY=1;BYMONTH=6", "BYMONTH=6;BYYEARDAY=1", "no day"),
        ("FREQ=YEARLY;BYWEEKNO=20;BYMONTH=1", "BYMONTH=1;BYWEEKNO=20", "no day"),
        ("FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=20", "BYMONTHDAY=20;BYDAY=1MO", "no day"),
        ("FREQ=HOURLY;INTERVAL=6;BYHOUR=10", "INTERVAL=6;BYHOUR=10", "never reaches"),
        ("FREQ=MINUTELY;INTERVAL=120;BYMINUTE=30", "INTERVAL=120;BYMINUTE=30", "never reaches"),
        ("FREQ=MONTHLY;INTERVAL=2;BYMONTH=4", "INTERVAL=2;BYMONTH=4", "never reaches"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=TU", "INTERVAL=7;BYDAY=TU", "never lands"),
        ("FREQ=SECONDLY", "FREQ=SECONDLY", "too often"),
        ("FREQ=MINUTELY;BYSECOND=30", "BYSECOND=30", "to the minute"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0", "from 1 to 3652"),
        ("FREQ=YEARLY;INTERVAL=11", "INTERVAL=11", "from 1 to 10"),
        ("FREQ=DAILY;COUNT=0", "COUNT=0", "from 1"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20260401", "COUNT=2;UNTIL=20260401", "not both"),
        ("FREQ=DAILY;UNTIL=20260230", "UNTIL=20260230", "expected a date"),
        ("FREQ=DAILY;UNTIL=20260101", "UNTIL=20260101", "before the start"),
        ("FREQ=DAILY;BYMONTHDAY=0", "BYMONTHDAY=0", "not 0"),
        ("FREQ=WEEKLY;BYDAY=1MO", "BYDAY=1MO", "MONTHLY or YEARLY"),
        ("FREQ=MONTHLY;BYDAY=6MO", "BYDAY=6MO", "at most 5"),
        ("FREQ=YEARLY;BYDAY=54MO", "BYDAY=54MO", "at most 53"),
        ("FREQ=YEARLY;BYWEEKNO=2;BYDAY=1MO", "BYDAY=1MO;BYWEEKNO=2", "cannot go with"),
        ("FREQ=MONTHLY;BYWEEKNO=2", "FREQ=MONTHLY;BYWEEKNO=2", "needs FREQ=YEARLY"),
        ("FREQ=DAILY;BYSETPOS=2;BYHOUR=9", "BYSETPOS=2", "at most 1"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS=1", "another BYxxx"),
        ("FREQ=WEEKLY;WKST=XX", "WKST=XX", "one of MO"),
        ("FREQ=DAILY;BYEASTER=0", "BYEASTER=0", "unknown part"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ", "more than once"),
        ("BYHOUR=9", "FREQ", "missing"),
        ("FREQ=DAILY;BYHOUR", "BYHOUR", "NAME=VALUE"),
        ("FREQ=DAILY;BYHOUR=nine", "BYHOUR=NINE", "not a whole number"),
        (
            "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=9",
            "BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
            "no day within ten years",
        ),
        (
            "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
            "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
            "no occurrence within ten years of the start",
        ),
    ],
)
def test_a_bad_rule_is_refused_fast_naming_the_part(rule: str, part: str, why: str) -> None:
    began = time.perf_counter()
    error = refused(rule)
    assert time.perf_counter() - began < 0.5
    assert error.part == part and why in error.why, error


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MINUTELY",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;WKST=SU",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYSETPOS=-1;BYDAY=MO,TU,WE,TH,FR",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=YEARLY;BYWEEKNO=53;BYDAY=TH",
        "FREQ=YEARLY;BYYEARDAY=-1",
        "FREQ=HOURLY;INTERVAL=5;BYHOUR=3,4",
        "FREQ=MINUTELY;INTERVAL=15;BYHOUR=9;BYMINUTE=0,30;BYSECOND=0",
        "FREQ=DAILY;UNTIL=20260310T090000",
    ],
)
def test_a_good_rule_is_accepted(rule: str) -> None:
    assert list(expand(parse_rule(rule, START), zone("UTC"), limit=2))


# --- Every path: CLI, API, tick ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "sentence"),
    [
        (OUT_OF_RANGE, "bad RRULE BYHOUR=25: hours run 0-23"),
        (NEVER, "bad RRULE BYMONTH=2;BYMONTHDAY=30: no day of any year matches these"),
    ],
)
def test_the_cli_refuses_the_reported_rules(
    cli: Cli, session: Session, rule: str, sentence: str
) -> None:
    began = time.perf_counter()
    preview = cli("schedule", "preview", "--rrule", rule, "--start", "2026-03-02T09:00",
                  "--tz", "UTC")  # fmt: skip
    assert time.perf_counter() - began < HANG_GUARD
    assert preview.code == 2 and preview.out == "" and sentence in preview.err
    added = cli("message", "add", "--title", "T", "--body", "B", "--everyone", "--rrule", rule,
                "--start", "2026-03-02", "--at", "09:00", "--channel", "log")  # fmt: skip
    assert added.code == 2 and sentence in added.err and "Traceback" not in added.err
    assert session.scalar(select(func.count()).select_from(Message)) == 0


@pytest.mark.parametrize("rule", [OUT_OF_RANGE, NEVER])
def test_the_api_refuses_the_reported_rules_and_stores_nothing(
    api: Api,  # noqa: F811
    org: Org,  # noqa: F811
    rule: str,
) -> None:
    with api.client(org.comms) as client:
        began = time.perf_counter()
        added = client.post("/api/messages", json=core(rrule=rule))
        preview = client.post("/api/messages/preview", json=core(rrule=rule))
        assert time.perf_counter() - began < HANG_GUARD
    for answer in (added, preview):
        assert answer.status_code == 422, answer.text
        assert any("bad RRULE" in line for line in answer.json()["problems"]), answer.text
    assert api.messages() == []


def test_a_stored_bad_rule_is_flagged_at_tick_time_and_others_are_planned(
    runtime: Runtime, session: Session
) -> None:
    good = f.core_message(session, rrule="FREQ=DAILY", timezone="UTC")
    bad = {}
    for rule in (OUT_OF_RANGE, NEVER):
        message = f.core_message(session, rrule="FREQ=DAILY", timezone="UTC", title=rule)
        assert message.cadence is not None
        message.cadence.rrule = rule  # stored before rules were checked completely
        bad[rule] = message.id
    session.commit()
    now = f.T0
    began = time.perf_counter()
    created = plan(runtime.sessions, now, timedelta(days=7), "UTC")
    assert time.perf_counter() - began < HANG_GUARD
    assert created > 0
    session.expire_all()
    counts = dict(
        session.execute(
            select(Occurrence.message_id, func.count()).group_by(Occurrence.message_id)
        ).all()
    )
    assert counts.get(good.id, 0) > 0 and not any(counts.get(i) for i in bad.values())
    flagged = {rule: session.get(Message, i) for rule, i in bad.items()}
    assert flagged[OUT_OF_RANGE].attention == (  # type: ignore[union-attr]
        "planning failed: bad RRULE BYHOUR=25: hours run 0-23"
    )
    assert "BYMONTH=2;BYMONTHDAY=30" in (flagged[NEVER].attention or "")  # type: ignore[union-attr]
    # Flagged, not looped over: the next tick leaves them be.
    assert plan(runtime.sessions, now + timedelta(minutes=1), timedelta(days=7), "UTC") == 0


def test_the_capped_search_ends_where_dateutil_would_search_to_9999() -> None:
    """The cap rests on how dateutil iterates; this fails if a dateutil release changes it."""
    never = BoundedRule(MINUTELY, dtstart=START, bymonth=2, bymonthday=30, byhour=3)
    began = time.perf_counter()
    assert list(never) == []
    assert time.perf_counter() - began < HANG_GUARD
    # Each iterator counts for itself: two at once see the same occurrences.
    daily = BoundedRule(DAILY, dtstart=START, count=3)
    first, second = iter(daily), iter(daily)
    assert [next(first), next(first), next(second)] == [START, START + timedelta(days=1), START]


def test_previewing_a_stored_bad_rule_is_refused(cli: Cli, session: Session) -> None:
    message = f.core_message(session, rrule="FREQ=DAILY", timezone="UTC")
    assert message.cadence is not None
    message.cadence.rrule = NEVER  # stored before rules were checked completely
    session.commit()
    began = time.perf_counter()
    shown = cli("schedule", "preview", "--message", str(message.id))
    assert time.perf_counter() - began < HANG_GUARD
    assert shown.code == 2 and "bad RRULE BYMONTH=2;BYMONTHDAY=30" in shown.err
