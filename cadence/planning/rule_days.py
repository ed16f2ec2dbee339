"""Which days of the year a rule's day parts allow, to refuse combinations no day meets.

Whether some day passes BYMONTH, BYMONTHDAY, BYYEARDAY, BYWEEKNO and BYDAY together depends
only on the kind of year (its first weekday, and whether it is a leap year). One year of
each of the fourteen kinds is enough, so each part becomes a bit mask over their days and a
combination that no day meets is an AND of masks that comes out empty: found in
microseconds, before any search. Interval and start are left to the other checks.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Hashable, Iterable, Iterator
from datetime import date, timedelta
from functools import lru_cache
from itertools import combinations

DAY_PARTS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY")


def _kinds() -> list[int]:
    """One year of each kind (first weekday, leap or not)."""
    seen: dict[tuple[int, bool], int] = {}
    for year in range(2000, 2028):
        seen.setdefault((date(year, 1, 1).weekday(), calendar.isleap(year)), year)
    return sorted(seen.values())


@lru_cache(maxsize=1)
def _days() -> tuple[date, ...]:
    return tuple(
        date(year, 1, 1) + timedelta(n)
        for year in _kinds()
        for n in range(366 if calendar.isleap(year) else 365)
    )


def _masks(facts: Callable[[date], Iterable[Hashable]]) -> dict[Hashable, int]:
    """For each fact some day has, the bit mask of the days that have it (one pass)."""
    where: dict[Hashable, list[int]] = {}
    for i, day in enumerate(_days()):
        for fact in facts(day):
            where.setdefault(fact, []).append(i)
    size = len(_days()) // 8 + 1
    masks = {}
    for fact, indexes in where.items():
        bits = bytearray(size)
        for i in indexes:
            bits[i >> 3] |= 1 << (i & 7)
        masks[fact] = int.from_bytes(bits, "little")
    return masks


def _day_facts(day: date) -> Iterator[Hashable]:
    month_length = calendar.monthrange(day.year, day.month)[1]
    year_length = 366 if calendar.isleap(day.year) else 365
    yday = day.timetuple().tm_yday
    wd = day.weekday()
    yield ("BYMONTH", day.month)
    yield ("BYMONTHDAY", day.day)
    yield ("BYMONTHDAY", day.day - month_length - 1)
    yield ("BYYEARDAY", yday)
    yield ("BYYEARDAY", yday - year_length - 1)
    yield ("BYDAY", wd, None, True)
    yield ("BYDAY", wd, None, False)
    # The n-th (and n-th from last) of its weekday in its month, and in its year.
    yield ("BYDAY", wd, (day.day - 1) // 7 + 1, True)
    yield ("BYDAY", wd, -((month_length - day.day) // 7 + 1), True)
    yield ("BYDAY", wd, (yday - 1) // 7 + 1, False)
    yield ("BYDAY", wd, -((year_length - yday) // 7 + 1), False)


@lru_cache(maxsize=1)
def _calendar() -> dict[Hashable, int]:
    return _masks(_day_facts)


def _week_number(day: date, wkst: int) -> tuple[int, int]:
    """RFC 5545 week numbers: week 1 is the first with four days in the year, weeks start
    on `wkst`. Returns the number counted from the start and (negative) from the end."""

    def week_one(year: int) -> date:
        jan4 = date(year, 1, 4)
        return jan4 - timedelta((jan4.weekday() - wkst) % 7)

    start = day - timedelta((day.weekday() - wkst) % 7)
    year = (start + timedelta(3)).year
    number = (start - week_one(year)).days // 7 + 1
    weeks = (week_one(year + 1) - week_one(year)).days // 7
    return number, number - weeks - 1


@lru_cache(maxsize=7)
def _weeks(wkst: int) -> dict[Hashable, int]:
    return _masks(lambda d: _week_number(d, wkst))


def _or(masks: list[int]) -> int:
    bits = 0
    for mask in masks:
        bits |= mask
    return bits


def no_common_day(
    numbers: dict[str, list[int]],
    days: list[tuple[int | None, int]],
    wkst: int | None,
    ordinals_in_month: bool = True,
) -> tuple[str, ...] | None:
    """The fewest day parts that no day meets together, or None when some day meets all."""
    known = _calendar()
    masks: dict[str, int] = {}
    for name in ("BYMONTH", "BYMONTHDAY", "BYYEARDAY"):
        if name in numbers:
            masks[name] = _or([known.get((name, v), 0) for v in numbers[name]])
    if "BYWEEKNO" in numbers:
        weeks = _weeks(0 if wkst is None else wkst)
        masks["BYWEEKNO"] = _or([weeks.get(v, 0) for v in numbers["BYWEEKNO"]])
    if days:
        masks["BYDAY"] = _or([known.get(("BYDAY", d, o, ordinals_in_month), 0) for o, d in days])
    for name, mask in masks.items():
        if not mask:
            return (name,)
    names = list(masks)
    for size in range(2, len(names) + 1):
        for group in combinations(names, size):
            common = -1
            for name in group:
                common &= masks[name]
            if not common:
                return group
    return None
