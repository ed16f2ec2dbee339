"""The one place that asks the system for the time, so everything else can be given `now`."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
