"""Checking an RRULE completely, part by part, before dateutil iterates it.

dateutil accepts rules it cannot expand (BYHOUR=25 raises TypeError at the first occurrence)
and rules that never occur (BYMONTH=2;BYMONTHDAY=30 makes it search to the year 9999). Here
every part is read and range-checked, combinations that can never match are refused before
any search, and the first occurrence is then looked for within ten years of the start by a
search that is capped (see cadence.planning.rule_search). Every refusal is a `RuleError`
naming the part, so the CLI exits 2 and the API answers 422 with the same sentence.

`UNTIL` comes in the two RFC 5545 forms. Without `Z` it is a wall-clock time, read in
whatever zone the rule is expanded in. With `Z` (the form the RFC requires when DTSTART has
a zone) it is one instant: the rule is built without it and every zone's expansion stops at
that instant (`BoundedRule.until_instant`, applied by `cadence.planning.recurrence.expand`).
Without a zone the checks here allow for the widest UTC offset; given one they are exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import gcd

from dateutil.rrule import DAILY, HOURLY, MINUTELY, MONTHLY, WEEKLY, YEARLY, weekday

from cadence.errors import InputError
from cadence.planning.rule_days import no_common_day
from cadence.planning.rule_search import BoundedRule, first_after

HORIZON_YEARS = 10
MAX_RULE_LENGTH = 2000

FREQS = {"MINUTELY": MINUTELY, "HOURLY": HOURLY, "DAILY": DAILY, "WEEKLY": WEEKLY,
         "MONTHLY": MONTHLY, "YEARLY": YEARLY}  # fmt: skip
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
PARTS = ("FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
         "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST")  # fmt: skip

# The longest INTERVAL whose one step fits in the horizon, per FREQ.
MAX_INTERVAL = {"YEARLY": 10, "MONTHLY": 120, "WEEKLY": 521, "DAILY": 3652,
                "HOURLY": 87_660, "MINUTELY": 5_259_600}  # fmt: skip

# Numeric lists: (lowest, highest, what the numbers are); the SIGNED ones also count from
# the end (-1 the last), and none allows 0 unless its range starts there.
RANGES: dict[str, tuple[int, int, str]] = {
    "BYMINUTE": (0, 59, "minutes run 0-59"),
    "BYHOUR": (0, 23, "hours run 0-23"),
    "BYMONTH": (1, 12, "months run 1-12"),
    "BYMONTHDAY": (1, 31, "days of the month run 1 to 31 or -1 to -31, not 0"),
    "BYYEARDAY": (1, 366, "days of the year run 1 to 366 or -1 to -366, not 0"),
    "BYWEEKNO": (1, 53, "weeks run 1 to 53 or -1 to -53, not 0"),
    "BYSETPOS": (1, 366, "positions run 1 to 366 or -1 to -366, not 0"),
}
SIGNED = {"BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYSETPOS"}
NUMBER = re.compile(r"[+-]?\d{1,9}")
DAY = re.compile(r"([+-]?\d{1,3})?([A-Z]{2})")
UNTIL = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})Z?)?")
# The furthest any zone's wall clock runs ahead of UTC (Kiribati, UTC+14).
MAX_UTC_OFFSET = timedelta(hours=14)


class RuleError(InputError):
    """A rule refused, naming the part (`BYHOUR=25`) and why."""

    def __init__(self, part: str, why: str) -> None:
        self.part = part
        self.why = why
        super().__init__(f"bad RRULE {part}: {why}")


@dataclass
class RuleParts:
    """A rule read part by part: `given` keeps each part's text for naming it."""

    freq: str
    given: dict[str, str]
    interval: int = 1
    count: int | None = None
    until: datetime | None = None
    numbers: dict[str, list[int]] = field(default_factory=dict)
    days: list[tuple[int | None, int]] = field(default_factory=list)  # (ordinal, weekday)
    wkst: int | None = None

    def named(self, *names: str) -> str:
        return ";".join(f"{n}={self.given[n]}" for n in names if n in self.given)

    @property
    def until_is_instant(self) -> bool:
        """`UNTIL=...Z`: an instant in UTC rather than a wall-clock time."""
        return self.given.get("UNTIL", "").endswith("Z")

    def latest_wall_until(self) -> datetime | None:
        """The latest wall-clock time UNTIL can read in any zone: itself without `Z`, and
        the instant as read at the widest offset with it."""
        if self.until is None or not self.until_is_instant:
            return self.until
        return self.until + MAX_UTC_OFFSET


def read_parts(rule: str) -> RuleParts:
    """Each part known, given once and in range; the RFC 5545 combinations respected."""
    if len(rule) > MAX_RULE_LENGTH:
        raise RuleError("RRULE", f"longer than {MAX_RULE_LENGTH} characters")
    given: dict[str, str] = {}
    for piece in rule.split(";"):
        piece = piece.strip()
        if not piece:
            continue
        name, sep, value = (s.strip() for s in piece.partition("="))
        if not sep:
            raise RuleError(piece, "expected NAME=VALUE")
        if name not in PARTS:
            raise RuleError(piece, f"unknown part (known: {', '.join(PARTS)})")
        if name in given:
            raise RuleError(name, "given more than once")
        if not value:
            raise RuleError(piece, "no value")
        given[name] = value
    if "FREQ" not in given:
        raise RuleError("FREQ", "missing (DAILY, WEEKLY, MONTHLY, YEARLY, HOURLY or MINUTELY)")
    freq = given["FREQ"]
    if freq == "SECONDLY":
        raise RuleError("FREQ=SECONDLY", "repeats too often for a message (once a minute at most)")
    if freq not in FREQS:
        raise RuleError(f"FREQ={freq}", f"unknown frequency (use {', '.join(FREQS)})")
    parts = RuleParts(freq, given)
    parts.interval = _whole(parts, "INTERVAL", 1, MAX_INTERVAL[freq])
    if "COUNT" in given:
        parts.count = _whole(parts, "COUNT", 1, 999_999_999)
    if "UNTIL" in given:
        if "COUNT" in given:
            raise RuleError(parts.named("COUNT", "UNTIL"), "give COUNT or UNTIL, not both")
        parts.until = _until(given["UNTIL"])
    if "BYSECOND" in given and set(_numbers(parts, "BYSECOND")) != {0}:
        raise RuleError(
            parts.named("BYSECOND"), "Cadence sends to the minute: leave BYSECOND out or use 0"
        )
    for name in RANGES:
        if name in given:
            parts.numbers[name] = _in_range(parts, name)
    if "BYDAY" in given:
        parts.days = _days(parts)
    if "WKST" in given:
        if given["WKST"] not in WEEKDAYS:
            raise RuleError(parts.named("WKST"), f"expected one of {', '.join(WEEKDAYS)}")
        parts.wkst = WEEKDAYS.index(given["WKST"])
    _rfc_combinations(parts)
    return parts


def _whole(parts: RuleParts, name: str, low: int, high: int) -> int:
    text = parts.given.get(name)
    if text is None:
        return low
    if not NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise RuleError(f"{name}={text}", f"expected a whole number from {low} to {high}")
    return int(text)


def _numbers(parts: RuleParts, name: str) -> list[int]:
    values = []
    for item in parts.given[name].split(","):
        item = item.strip()
        if not NUMBER.fullmatch(item):
            raise RuleError(parts.named(name), f"{item!r} is not a whole number")
        values.append(int(item))
    return sorted(set(values))


def _in_range(parts: RuleParts, name: str) -> list[int]:
    low, high, why = RANGES[name]
    for value in _numbers(parts, name):
        size = -value if value < 0 and name in SIGNED else value
        if not low <= size <= high:
            raise RuleError(f"{name}={value}", why)
    return _numbers(parts, name)


def _until(text: str) -> datetime:
    match = UNTIL.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        fields = [int(g) for g in match.groups() if g is not None]
        hour, minute, second = fields[3:] or [0, 0, 0]
        return datetime(fields[0], fields[1], fields[2], hour, minute, second)
    except ValueError:
        raise RuleError(f"UNTIL={text}", "expected a date YYYYMMDD or YYYYMMDDTHHMMSS") from None


def _days(parts: RuleParts) -> list[tuple[int | None, int]]:
    days: list[tuple[int | None, int]] = []
    for item in parts.given["BYDAY"].split(","):
        item = item.strip()
        match = DAY.fullmatch(item)
        if match is None or match.group(2) not in WEEKDAYS:
            raise RuleError(f"BYDAY={item}", f"expected a weekday ({', '.join(WEEKDAYS)})")
        ordinal = int(match.group(1)) if match.group(1) else None
        if ordinal is not None:
            _check_ordinal(parts, item, ordinal)
        days.append((ordinal, WEEKDAYS.index(match.group(2))))
    return sorted(set(days), key=lambda d: (d[1], d[0] or 0))


def _check_ordinal(parts: RuleParts, item: str, ordinal: int) -> None:
    """RFC 5545: a numbered weekday only in a MONTHLY or YEARLY rule without BYWEEKNO."""
    if parts.freq not in ("MONTHLY", "YEARLY"):
        raise RuleError(f"BYDAY={item}", "a numbered weekday needs FREQ=MONTHLY or YEARLY")
    if "BYWEEKNO" in parts.given:
        raise RuleError(
            parts.named("BYDAY", "BYWEEKNO"), "a numbered weekday cannot go with BYWEEKNO"
        )
    # Counted within each month for MONTHLY, and for YEARLY with BYMONTH (as dateutil does).
    in_month = parts.freq == "MONTHLY" or "BYMONTH" in parts.given
    limit = 5 if in_month else 53
    if not 1 <= abs(ordinal) <= limit:
        where = "a month has at most 5 of a weekday" if in_month else "a year has at most 53"
        raise RuleError(f"BYDAY={item}", f"{where} (use 1 to {limit} or -1 to -{limit})")


def _rfc_combinations(parts: RuleParts) -> None:
    """Parts RFC 5545 forbids with a FREQ (dateutil would quietly read them otherwise)."""
    freq, given = parts.freq, parts.given
    if "BYWEEKNO" in given and freq != "YEARLY":
        raise RuleError(parts.named("FREQ", "BYWEEKNO"), "BYWEEKNO needs FREQ=YEARLY")
    if "BYYEARDAY" in given and freq in ("DAILY", "WEEKLY", "MONTHLY"):
        raise RuleError(
            parts.named("FREQ", "BYYEARDAY"), "BYYEARDAY goes with YEARLY, HOURLY or MINUTELY"
        )
    if "BYMONTHDAY" in given and freq == "WEEKLY":
        raise RuleError(parts.named("FREQ", "BYMONTHDAY"), "BYMONTHDAY cannot go with WEEKLY")
    if "BYSETPOS" in given and not any(n.startswith("BY") and n != "BYSETPOS" for n in given):
        raise RuleError(parts.named("BYSETPOS"), "BYSETPOS needs another BYxxx part to pick from")


def set_size(parts: RuleParts) -> int:
    """The most occurrences one period can hold, which bounds what BYSETPOS can pick."""

    def many(name: str, default: int) -> int:
        return len(parts.numbers[name]) if name in parts.numbers else default

    times = many("BYHOUR", 1) * many("BYMINUTE", 1)
    days = {"YEARLY": 366, "MONTHLY": 31, "WEEKLY": 7}.get(parts.freq, 1)
    if parts.freq == "HOURLY":
        times = many("BYMINUTE", 1)
    elif parts.freq == "MINUTELY":
        times = 1
    return days * times


def check_combinations(parts: RuleParts, start: datetime) -> None:
    """Refuse, before any search, combinations that can never produce an occurrence."""
    latest = parts.latest_wall_until()
    if latest is not None and latest < start:
        raise RuleError(parts.named("UNTIL"), f"before the start {start.isoformat()}")
    in_month = parts.freq == "MONTHLY" or "BYMONTH" in parts.given
    clash = no_common_day(parts.numbers, parts.days, parts.wkst, in_month)
    if clash:
        raise RuleError(parts.named(*clash), "no day of any year matches these together")
    if "BYSETPOS" in parts.numbers:
        size = set_size(parts)
        if all(abs(p) > size for p in parts.numbers["BYSETPOS"]):
            raise RuleError(
                parts.named("BYSETPOS"), f"a {parts.freq} set here holds at most {size}"
            )
    _check_lattice(parts, start)


def _check_lattice(parts: RuleParts, start: datetime) -> None:
    """An INTERVAL steps from the start on a lattice that may miss every allowed value."""
    step, freq, numbers = parts.interval, parts.freq, parts.numbers
    hours, minutes = numbers.get("BYHOUR"), numbers.get("BYMINUTE")
    if freq == "MINUTELY" and (hours or minutes):
        g = gcd(step, 1440)
        first = (start.hour * 60 + start.minute) % g
        if not any(
            (not hours or m // 60 in hours) and (not minutes or m % 60 in minutes)
            for m in range(first, 1440, g)
        ):
            raise RuleError(
                parts.named("INTERVAL", "BYHOUR", "BYMINUTE"), "the interval never reaches them"
            )
    if freq == "HOURLY" and hours:
        g = gcd(step, 24)
        if not any(h % g == start.hour % g for h in hours):
            raise RuleError(parts.named("INTERVAL", "BYHOUR"), "the interval never reaches them")
    weekdays = {d for _, d in parts.days}
    if freq == "DAILY" and weekdays and step % 7 == 0 and start.weekday() not in weekdays:
        raise RuleError(
            parts.named("INTERVAL", "BYDAY"),
            f"every {step} days from a {WEEKDAYS[start.weekday()]} never lands on them",
        )
    months = numbers.get("BYMONTH")
    if freq == "MONTHLY" and months:
        g = gcd(step, 12)
        if not any((m - start.month) % g == 0 for m in months):
            raise RuleError(parts.named("INTERVAL", "BYMONTH"), "the interval never reaches them")


def horizon_end(start: datetime) -> datetime:
    year = min(start.year + HORIZON_YEARS, datetime.max.year)
    day = 28 if (start.month, start.day) == (2, 29) else start.day
    return start.replace(year=year, day=day)


def build(parts: RuleParts, start: datetime) -> BoundedRule:
    """The dateutil rule the parts describe, with its search capped."""
    n = parts.numbers
    byday = [weekday(d, o) for o, d in parts.days] or None
    # dateutil refuses a UTC UNTIL against a wall-clock start; the instant bounds each
    # zone's expansion instead.
    instant = parts.until_is_instant and parts.until is not None
    try:
        built = BoundedRule(
            FREQS[parts.freq],
            dtstart=start,
            interval=parts.interval,
            count=parts.count,
            until=None if instant else parts.until,
            wkst=parts.wkst,
            bysetpos=n.get("BYSETPOS"),
            bymonth=n.get("BYMONTH"),
            bymonthday=n.get("BYMONTHDAY"),
            byyearday=n.get("BYYEARDAY"),
            byweekno=n.get("BYWEEKNO"),
            byweekday=byday,
            byhour=n.get("BYHOUR"),
            byminute=n.get("BYMINUTE"),
            bysecond=[0] if "BYSECOND" in parts.given else None,
        )
    except Exception as exc:  # dateutil's own refusals: ValueError and others
        raise RuleError(_part_in(parts, str(exc)), str(exc)) from None
    if instant and parts.until is not None:
        built.until_instant = parts.until.replace(tzinfo=UTC)
    return built


def _part_in(parts: RuleParts, message: str) -> str:
    """The part a dateutil message is about, as named in the rule, or the whole rule."""
    lowered = message.lower().replace("_", "")
    for name in sorted(parts.given, key=len, reverse=True):
        if name.lower() in lowered or name.lower().removeprefix("by") in lowered:
            return parts.named(name)
    return parts.named(*parts.given)


def _check_days_ahead(parts: RuleParts, start: datetime) -> None:
    """For an hourly or minutely rule, look for a day its day parts allow first: dateutil
    walks such a rule through every allowed hour of every day, a daily one day by day."""
    names = [n for n in ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYDAY") if n in parts.given]
    if parts.freq not in ("HOURLY", "MINUTELY") or not names:
        return
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    until = parts.latest_wall_until()
    days = BoundedRule(
        DAILY,
        dtstart=midnight,
        until=until.replace(hour=23, minute=59) if until else None,
        bymonth=parts.numbers.get("BYMONTH"),
        bymonthday=parts.numbers.get("BYMONTHDAY"),
        byyearday=parts.numbers.get("BYYEARDAY"),
        byweekday=[weekday(d) for _, d in parts.days] or None,
    )
    if first_after(days, midnight, horizon_end(start)) is None:
        raise RuleError(parts.named(*names), "no day within ten years of the start matches")


def checked_rule(rule: str, start: datetime) -> BoundedRule:
    """A rule (already without `RRULE:`, upper case) that has an occurrence within ten
    years of its naive wall-clock start, or a RuleError naming what is wrong."""
    parts = read_parts(rule)
    check_combinations(parts, start)
    _check_days_ahead(parts, start)
    built = build(parts, start)
    try:
        first = first_after(built, start, horizon_end(start))
    except Exception as exc:  # anything dateutil raises while expanding
        raise RuleError(_part_in(parts, str(exc)), str(exc) or type(exc).__name__) from None
    if first is None:
        raise RuleError(parts.named(*parts.given), "no occurrence within ten years of the start")
    latest = parts.latest_wall_until()
    if parts.until_is_instant and latest is not None and first > latest:
        raise RuleError(parts.named("UNTIL"), f"before the first occurrence {first.isoformat()}")
    return built
