"""Strict readers for values that arrive from outside: ids, days, zone names, list sizes,
text, and the nesting of JSON and YAML documents.

Each raises an InputError naming the value and the rule it broke, so the CLI, the API, the
dashboard and the directory import refuse the same things with the same sentences, before a
database, the zone database or a recursive parser ever sees them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from cadence.errors import InputError

# Ids are 32-bit integers in every database Cadence supports; a larger one names nothing.
MAX_ID = 2**31 - 1
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")
_DIGITS = re.compile(r"[0-9]+")

# Days outside this range are never meant, and near date.max a day's end cannot be computed.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
_DAY_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# IANA names are short ASCII paths such as America/Argentina/Buenos_Aires or Etc/GMT+5.
MAX_ZONE_LENGTH = 64
_ZONE_SHAPE = re.compile(r"[A-Za-z0-9_+\-/]{1,64}")

# How many of each an audience may name; more is a mistake, and would make queries huge.
MAX_TEAMS = 100
MAX_TREES = 100
MAX_PEOPLE = 1000

# Nesting of JSON bodies and directory files: real ones are a handful of levels deep.
MAX_DEPTH = 20

# Control characters (C0, DEL, C1): they end lines, hide text or (NUL) cannot be stored in
# PostgreSQL; single-line text such as a title has no use for any of them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(text: str, limit: int = 40) -> str:
    """Text as an error message quotes it: cut short, so a 5,000-character value does not
    fill the page or terminal it is refused on."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_id(text: str | int, what: str = "id") -> int:
    """A database id from text: 1 to 2147483647, ASCII digits only (no sign, no spaces,
    no superscripts or other scripts' digits)."""
    raw = str(text)
    if not _ASCII_DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        raise InputError(f"{what} {shown(raw)} is not an id (a whole number from 1 to {MAX_ID})")
    return int(raw)


def is_digits(text: str) -> bool:
    """Whether `text` is ASCII digits only, so `int(text)` reads it. `str.isdigit` is also
    true of superscripts ("²") and other scripts' digits, which `int` refuses."""
    return _DIGITS.fullmatch(text) is not None


def is_id(text: str) -> bool:
    try:
        parse_id(text)
    except InputError:
        return False
    return True


def parse_day(text: str, what: str = "date") -> date:
    """A YYYY-MM-DD day between 2000-01-01 and 2100-12-31."""
    raw = text.strip()
    try:
        if not _DAY_SHAPE.fullmatch(raw):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{what} {shown(raw)} is not a date (YYYY-MM-DD)") from None
    check_day(day, what)
    return day


def day_problem(day: date, what: str = "date") -> str | None:
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"{what} {day.isoformat()} is outside {FIRST_DAY} to {LAST_DAY}"


def check_day(day: date, what: str = "date") -> date:
    if why := day_problem(day, what):
        raise InputError(why)
    return day


def zone_shape_problem(name: str) -> str | None:
    """Why `name` cannot be an IANA zone name, judged by its shape alone; None if it could be.

    Checked before the zone database is asked, which would otherwise try to open a file
    named by the input (an OSError for a long name, a path for `..`)."""
    if len(name) > MAX_ZONE_LENGTH:
        return f"time zone {shown(name)} is too long (at most {MAX_ZONE_LENGTH} characters)"
    if not _ZONE_SHAPE.fullmatch(name) or ".." in name or name.startswith("/"):
        return (
            f"unknown time zone {shown(name)} (an IANA name has only letters, digits and _ + - /, "
            "such as Europe/London)"
        )
    return None


def check_zone_name(name: str) -> str:
    problem = zone_shape_problem(name)
    if problem:
        raise InputError(problem)
    return name


def count_problem(items: Sequence[object], limit: int, what: str) -> str | None:
    if len(items) <= limit:
        return None
    return f"too many {what}: {len(items):,} given, at most {limit:,}"


def control_problem(text: str, what: str) -> str | None:
    """A sentence when single-line text (a title) holds a control character."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    return (
        f"{what} contains a control character (U+{ord(found.group()):04X}) at position "
        f"{found.start() + 1}; give it on one line without them"
    )


def nul_problem(text: str, what: str) -> str | None:
    """A sentence when text holds NUL, which PostgreSQL cannot store in text."""
    at = text.find("\x00")
    if at < 0:
        return None
    return f"{what} contains a NUL character (at position {at + 1}); remove it"


def refuse_nul(values: Iterable[tuple[str, str | None]]) -> None:
    problems = [p for what, text in values if text and (p := nul_problem(text, what))]
    if problems:
        raise InputError("refused:", problems)


# ---------------------------------------------------------------------------------------
# JSON: parsed strictly, its nesting counted without recursion


def depth_of(document: Any) -> int:
    """The deepest nesting of lists and mappings in a parsed document, walked with a stack
    rather than recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _no_constant(name: str) -> Any:
    raise InputError(f"{name} is not a number JSON allows; give a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"the number {text[:40]} is too large; give a finite number")
    return value


def _bounded_int(text: str) -> int:
    # Python refuses to read integers past 4,300 digits with a ValueError of its own;
    # nothing Cadence stores needs more than a 64-bit integer.
    if len(text.lstrip("-")) > 19:
        raise InputError(f"the number {text[:40]}... is too large")
    return int(text)


def load_json(data: bytes | str, what: str = "the JSON body") -> Any:
    """Parse JSON strictly: at most MAX_DEPTH levels, no NaN or Infinity (nor numbers so
    large they become infinite), no NUL in any string."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8") from None
    too_deep = InputError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    try:
        document = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int
        )
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        # The C parser gives up cleanly at the interpreter's recursion limit.
        raise too_deep from None
    if depth_of(document) > MAX_DEPTH:
        raise too_deep
    if "\x00" in text or "\\u0000" in text:
        refuse_nul(_strings(document, what))
    return document


def _strings(document: Any, what: str) -> Iterable[tuple[str, str]]:
    """Every string (keys too) in a parsed document, walked with a stack, not recursion."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield what, item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
