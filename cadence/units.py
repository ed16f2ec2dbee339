"""Amounts as people read them, shared by the CLI's tables and the dashboard's pages.

Machine output (JSON, CSV) keeps the exact numbers; only what a person reads goes through here.
"""

from __future__ import annotations

import math

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def duration(seconds: float) -> str:
    """`2.4 s`, `3 min 20 s`, `1 h 5 min`, `2 d 3 h`: the two largest units are plenty.

    Under a minute the tenths are kept (a fan-out of 2.4 s is not "2 s"); from a minute on,
    whole seconds, and each figure is rounded once so 59.96 s reads `1 min`, not `60 s`.
    """
    if seconds < 0:
        return "-" + duration(-seconds)
    tenths = round(seconds * 10)
    if tenths < 10 * MINUTE:
        whole, tenth = divmod(tenths, 10)
        return f"{whole}.{tenth} s" if tenth else f"{whole} s"
    total = round(seconds)
    for big, big_name, small, small_name in (
        (DAY, "d", HOUR, "h"),
        (HOUR, "h", MINUTE, "min"),
        (MINUTE, "min", 1, "s"),
    ):
        if total >= big:
            count, rest = divmod(total, big)
            part = rest // small
            return f"{count} {big_name} {part} {small_name}" if part else f"{count} {big_name}"
    raise AssertionError("unreachable: totals under a minute return above")


def percent(ratio: float) -> str:
    """0.0357 -> `3.6%`, 0.5 -> `50%`, 1 -> `100%`: one decimal, none when it is 0."""
    if not math.isfinite(ratio):
        raise ValueError(f"not a ratio: {ratio!r}")
    return f"{ratio * 100:.1f}".removesuffix(".0") + "%"
