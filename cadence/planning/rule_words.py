"""A repeat rule in words, for people reading a page rather than writing an RRULE:
"every weekday", "weekly on Monday and Thursday", "the first Monday of each month",
"every 2 weeks on Friday". A rule with parts these words do not cover is shown as it is,
so the words never claim less than the rule does."""

from __future__ import annotations

from cadence.inputs import is_digits

DAY_NAMES = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR"]
ORDINALS = {"1": "first", "2": "second", "3": "third", "4": "fourth", "-1": "last"}
UNITS = {"MINUTELY": "minute", "HOURLY": "hour", "DAILY": "day", "WEEKLY": "week"}
UNITS |= {"MONTHLY": "month", "YEARLY": "year"}
# Parts of a rule the words below can say; any other part keeps the rule as written.
SAID = {"FREQ", "INTERVAL", "BYDAY", "COUNT", "UNTIL", "WKST"}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _parts(rule: str) -> dict[str, str] | None:
    parts = {}
    for piece in rule.strip().removeprefix("RRULE:").upper().split(";"):
        key, sep, value = piece.partition("=")
        if not sep or not value or key in parts:
            return None
        parts[key] = value
    return parts


def _days(byday: str, frequency: str) -> str | None:
    codes = byday.split(",")
    if frequency == "WEEKLY":
        if codes == WEEKDAYS:
            return "every weekday"
        if all(c in DAY_NAMES for c in codes):
            return _and([DAY_NAMES[c] for c in codes])
        return None
    if frequency == "MONTHLY" and len(codes) == 1:
        code = codes[0]
        ordinal, day = code[:-2], code[-2:]
        if ordinal in ORDINALS and day in DAY_NAMES:
            return f"the {ORDINALS[ordinal]} {DAY_NAMES[day]} of each month"
    return None


def describe(rule: str) -> str:
    """The rule in words, or "by the rule RULE" when it has parts the words cannot say."""
    parts = _parts(rule)
    as_written = f"by the rule {rule.strip().removeprefix('RRULE:')}"
    if parts is None or not set(parts) <= SAID or parts.get("FREQ") not in UNITS:
        return as_written
    frequency = parts["FREQ"]
    interval = parts.get("INTERVAL", "1")
    if not is_digits(interval) or int(interval) < 1:
        return as_written
    unit = UNITS[frequency]
    every = f"every {unit}" if interval == "1" else f"every {int(interval)} {unit}s"
    words = every
    if "BYDAY" in parts:
        days = _days(parts["BYDAY"], frequency)
        if days is None:
            return as_written
        if frequency == "MONTHLY":
            words = days if interval == "1" else f"{days}, {every}"
        elif days == "every weekday":
            words = days if interval == "1" else f"on weekdays, {every}"
        else:
            words = f"weekly on {days}" if interval == "1" else f"{every} on {days}"
    if "COUNT" in parts and is_digits(parts["COUNT"]):
        count = int(parts["COUNT"])
        words += ", once" if count == 1 else f", {count} times"
    elif "COUNT" in parts:
        return as_written
    if "UNTIL" in parts:
        until = parts["UNTIL"]
        if len(until) < 8 or not is_digits(until[:8]):
            return as_written
        words += f", until {until[:4]}-{until[4:6]}-{until[6:8]}"
    return words
