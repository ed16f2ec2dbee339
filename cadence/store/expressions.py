"""SQL expressions that SQLite and PostgreSQL spell differently, kept to this module."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, case, cast, extract, func


def seconds_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[float]:
    """Seconds from `earlier` to `later`. SQLite's julianday is rounded to milliseconds so
    that exact boundaries (sent exactly at a tolerance) compare the same on both."""
    if dialect == "postgresql":
        return cast(extract("epoch", later - earlier), Float)
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def floor_int(dialect: str, value: Any) -> ColumnElement[int]:
    """The whole number at or below a value that is zero or more."""
    if dialect == "postgresql":
        return cast(func.floor(value), Integer)
    return cast(value, Integer)  # SQLite truncates, which is the floor for values >= 0


def ceil_int(dialect: str, value: Any) -> ColumnElement[int]:
    """The whole number at or above a value that is zero or more."""
    if dialect == "postgresql":
        return cast(func.ceil(value), Integer)
    whole = cast(value, Integer)
    return whole + case((value > whole, 1), else_=0)


def period_start(dialect: str, column: Any, period: str) -> ColumnElement[str]:
    """The UTC day, ISO week (from Monday) or month a time falls in, as YYYY-MM-DD."""
    if dialect == "postgresql":
        return func.to_char(func.date_trunc(period, column), "YYYY-MM-DD")
    if period == "day":
        return func.date(column)
    if period == "week":
        return func.date(column, "weekday 0", "-6 days")
    return func.strftime("%Y-%m-01", column)
