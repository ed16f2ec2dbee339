"""RFC 5545 recurrence in wall-clock time.

A cadence says "09:00 every Monday" in some zone. Rules are expanded on naive wall-clock
datetimes (so daylight-saving changes never shift them) and each result is then placed in the
zone by the rule RFC 5545 section 3.3.5 gives for local times:

* a local time that does not exist (the spring-forward gap) is read with the UTC offset in
  force before the gap, which moves it forward by the gap's length: 02:30 on a night that
  jumps from 02:00 to 03:00 becomes 03:30;
* a local time that occurs twice (the fall-back overlap) is the first of the two, the one
  with the earlier UTC instant.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule

from cadence.errors import InputError
from cadence.inputs import check_day, check_zone_name
from cadence.planning.rule_checks import RuleError, checked_rule, read_parts
from cadence.planning.rule_search import BoundedRule

# Iterating a rule from its start must end even for a rule with no end; a per-minute rule
# over ten years stays below this.
MAX_EXPANSION = 6_000_000
FIRST_YEAR, LAST_YEAR = 1900, 2999
ZONE_SPREAD = timedelta(hours=16)


def zone(name: str) -> ZoneInfo:
    """A ZoneInfo for an IANA name, or an InputError naming the bad value. The name's shape
    is checked first: the zone database would otherwise open a file named by the input."""
    check_zone_name(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/London)"
        ) from None


def place(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive wall-clock time names in `tz`, by the RFC 5545 rule above."""
    # fold=0 reads a gap time with the offset before the gap and picks the first of two
    # repeated times; the UTC round trip turns a gap time into the wall clock that exists.
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)


def normalise_rule(text: str) -> str:
    """Accept a rule with or without the `RRULE:` prefix; return it without."""
    rule = text.strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[len("RRULE:") :].strip()
    if not rule:
        raise InputError("empty RRULE")
    if "\n" in rule or "DTSTART" in rule.upper():
        raise InputError("give a single RRULE line; the start comes from --start")
    return rule.upper()


def parse_rule(
    text: str, start: datetime, *, allow_minutely: bool = True, tz: ZoneInfo | None = None
) -> rrule:
    """Parse and check a rule against a naive local start (its DTSTART): every part, and an
    occurrence within ten years (see cadence.planning.rule_checks). Every path that reads a
    rule (adding, previewing, planning at tick time) comes through here. With `tz` (a fixed
    zone) a UTC `UNTIL` must also leave an occurrence in that zone."""
    rule = normalise_rule(text)
    if not FIRST_YEAR <= start.year <= LAST_YEAR:
        raise InputError(
            f"bad start {start.isoformat()}: the year must be from {FIRST_YEAR} to {LAST_YEAR}"
        )
    if not allow_minutely and read_parts(rule).freq == "MINUTELY":
        raise RuleError("FREQ=MINUTELY", "repeats too often here")
    checked = checked_rule(rule, start)
    instant = checked.until_instant
    if tz is not None and instant is not None and next(expand(checked, tz, limit=1), None) is None:
        local = instant.astimezone(tz).replace(tzinfo=None).isoformat()
        raise RuleError(
            f"UNTIL={instant:%Y%m%dT%H%M%SZ}",
            f"before the first occurrence in {tz.key} (it is {local} there)",
        )
    return checked


def parse_start(text: str) -> datetime:
    """`YYYY-MM-DDTHH:MM` (seconds allowed) as a naive wall-clock datetime."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"bad start {text!r}: expected YYYY-MM-DDTHH:MM") from None
    if value.tzinfo is not None:
        raise InputError(f"bad start {text!r}: give wall-clock time without an offset")
    check_day(value.date(), "start")
    return value


def parse_wall_time(text: str) -> time:
    try:
        value = time.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"bad time {text!r}: expected HH:MM") from None
    return value.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Recurrence:
    """One occurrence of a rule: its repetition number, wall-clock time, and instant.

    The repetition number is the index of the rule's turn counted from DTSTART in wall-clock
    time, so a turn has the same number (and so the same wording) in every zone."""

    sequence: int
    local: datetime
    at: datetime


def expand(
    rule: rrule,
    tz: ZoneInfo,
    *,
    not_before: datetime | None = None,
    until: datetime | None = None,
    end_date: date | None = None,
    limit: int | None = None,
) -> Iterator[Recurrence]:
    """Occurrences of `rule` in `tz`, numbered from the rule's start.

    `not_before` and `until` are UTC instants bounding what is yielded (numbering still
    counts from the start, so variants rotate the same way however far ahead one plans);
    `end_date` is the last local day included. A rule's UTC `UNTIL` is the same instant
    in every zone: the last send anywhere is at or before it.
    """
    found = expand_zones(rule, [tz], not_before=not_before, until=until, end_date=end_date)
    for yielded, (_, rec) in enumerate(found, start=1):
        yield rec
        if limit is not None and yielded >= limit:
            break


def expand_zones(
    rule: rrule,
    zones: Sequence[ZoneInfo],
    *,
    not_before: datetime | None = None,
    until: datetime | None = None,
    end_date: date | None = None,
) -> Iterator[tuple[ZoneInfo, Recurrence]]:
    """Each turn of `rule`, numbered once from its start, placed in each of `zones` (turn
    by turn, zones in the order given), within the bounds `expand` takes. Iterating the
    rule once for all zones is what makes a turn one repetition everywhere."""
    instant = rule.until_instant if isinstance(rule, BoundedRule) else None
    if instant is not None:
        until = instant if until is None else min(until, instant)
    open_zones = list(zones)
    # A wall-clock time this far before `not_before` is before it in every zone (offsets
    # run from -12 to +14 hours, and a gap moves a time on by at most two): not placed.
    skip_before = (
        None
        if not_before is None
        else not_before.astimezone(UTC).replace(tzinfo=None) - ZONE_SPREAD
    )
    for sequence, local in enumerate(rule):
        if sequence >= MAX_EXPANSION or not open_zones:
            break
        if end_date is not None and local.date() > end_date:
            break
        if skip_before is not None and local < skip_before:
            continue
        for tz in list(open_zones):
            at = place(local, tz)
            if until is not None and at > until:
                open_zones.remove(tz)  # this zone's later turns are later still
                continue
            if not_before is not None and at < not_before:
                continue
            yield tz, Recurrence(sequence, local, at)


def preview_lines(rule_text: str, start_text: str, zone_name: str, count: int) -> list[str]:
    """What `cadence schedule preview` prints: ISO 8601 with the UTC offset, one per line."""
    if count < 1:
        raise InputError("--count must be at least 1")
    tz = zone(zone_name)
    rule = parse_rule(rule_text, parse_start(start_text), tz=tz)
    return [r.at.isoformat() for r in expand(rule, tz, limit=count)]
