"""Which channel a person gets a message on, and which to try next."""

from __future__ import annotations

from collections.abc import Sequence


def channels_for(preferred: str | None, allowed: Sequence[str], mode: str) -> list[str]:
    """Where a person gets a message: every allowed channel ("all"), or one: their own
    when the message allows it, else the message's first. The rest are fallbacks."""
    if mode == "all":
        return list(allowed)
    if preferred and preferred in allowed:
        return [preferred]
    return [allowed[0]]


def fallback_channel(allowed: Sequence[str], tried: Sequence[str]) -> str | None:
    """The next allowed channel not yet tried for this person and occurrence."""
    return next((c for c in allowed if c not in tried), None)
