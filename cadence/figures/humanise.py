"""Figures as people read them: durations in their two largest units and ratios as
percentages. Machine output (JSON, CSV) keeps the exact values; these are for tables."""

from __future__ import annotations

import math

_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60))


def duration(seconds: float) -> str:
    """`2.4 s`, `45 s`, `3 min 20 s`, `1 h 5 min`, `2 d 3 h`: seconds keep one decimal
    below ten, longer spans show their two largest units (the smaller one left off at 0)."""
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {seconds!r}")
    if seconds < 0:
        return f"-{duration(-seconds)}"
    if seconds < 10:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    parts: list[str] = []
    rest = whole
    for name, size in _UNITS:
        count, rest = divmod(rest, size)
        if count or parts:
            parts.append(f"{count} {name}")
    parts.append(f"{rest} s")
    big, small = parts[0], parts[1]
    return big if small.startswith("0 ") else f"{big} {small}"


def percent(ratio: float) -> str:
    """0.0357 -> `3.6%`, 0.5 -> `50%`, 1 -> `100%`: one decimal, none when it is 0."""
    if not math.isfinite(ratio):
        raise ValueError(f"not a ratio: {ratio!r}")
    return f"{ratio * 100:.1f}".removesuffix(".0") + "%"


__all__ = ["duration", "percent"]
