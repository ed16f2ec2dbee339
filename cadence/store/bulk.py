"""Portable bulk writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cadence.store.models import Base


def insert_ignoring_duplicates(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]]
) -> int:
    """INSERT rows, silently skipping any that would break a unique constraint.

    Unique keys are what make a second tick, a retried task or a re-plan harmless; this is
    the write they all go through. Returns how many rows were new.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(model).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).on_conflict_do_nothing()
    else:  # pragma: no cover - other databases are refused by the settings check
        raise RuntimeError(f"unsupported database {dialect}")
    # RETURNING lists only the rows really inserted, on both databases, even when the
    # rows go out as one multi-row statement.
    inserted = session.execute(stmt.returning(model.__table__.c.id), list(rows)).all()
    return len(inserted)


def affected(session: Session, stmt: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed."""
    result = cast(CursorResult[Any], session.execute(stmt))
    return int(result.rowcount or 0)


# Each value of an IN list is a bound parameter, and SQLite takes at most 32,766 of them in
# one statement (250,000 in some builds): lists that grow with the directory are sent in
# slices of this size.
IN_CHUNK = 1000


def chunks(values: Iterable[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    """`values` in lists of at most `size`, for IN lists of any length."""
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
