"""one repetition number per turn of a rule, whatever the zone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

A repetition is one turn of a message's rule: every zone's send of that turn has one number.
Occurrences whose zones numbered their turns apart are renumbered here. A cadence
occurrence's wall-clock time (`local_time`) is the turn it sends, so the occurrences of one
message with the same wall-clock time get one number: the index of that turn counted from
the rule's start, which is the number the planner gives the turns it plans next (so a
re-plan finds the turns already planned and never plans them twice). A message whose
turns each have one number already is left as it is. Where the rule no
longer reads, or a wall-clock time is not one of its turns, the message's turns are
numbered by rank of their wall-clock time from 0 instead. Reminders, escalations and
re-acknowledgement sends take the number of the occurrence they follow up. Figure
summaries are keyed by occurrence id and hold no repetition number, so they stay as they
are; the wording each delivery was sent with is history, and is kept.
"""

import logging
from collections.abc import Sequence
from datetime import datetime
from itertools import islice

import sqlalchemy as sa
from alembic import op
from dateutil.rrule import rrulestr

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# How many of a rule's turns are read looking for the stored ones (a per-minute rule over
# ten years stays below this).
MAX_TURNS = 6_000_000


def upgrade() -> None:
    conn = op.get_bind()
    messages = conn.execute(
        sa.text(
            "SELECT DISTINCT o.message_id, c.rrule, c.start_local FROM occurrences o "
            "LEFT JOIN cadences c ON c.message_id = o.message_id "
            "WHERE o.purpose = 'cadence' ORDER BY o.message_id"
        )
    ).all()
    for message_id, rule, start in messages:
        _renumber(conn, message_id, rule, None if start is None else _naive(start))


def downgrade() -> None:
    """Numbers are not un-merged: the shared numbers are valid at 0009 too."""


def _renumber(
    conn: sa.Connection, message_id: int, rule: str | None, start: datetime | None
) -> None:
    rows = conn.execute(
        sa.text(
            "SELECT id, zone, local_time, sequence FROM occurrences "
            "WHERE message_id = :m AND purpose = 'cadence' ORDER BY local_time, id"
        ),
        {"m": message_id},
    ).all()
    turns = sorted({_naive(local) for _, _, local, _ in rows})
    pairs = {(_naive(local), seq) for _, _, local, seq in rows}
    if len(pairs) == len(turns) == len({seq for _, seq in pairs}):
        return  # one number per turn and one turn per number: the planner's, left as it is
    number = _rule_indices(rule, start, turns) or {t: i for i, t in enumerate(turns)}
    wanted = {oid: number[_naive(local)] for oid, _, local, _ in rows}
    if len({(zone, wanted[oid]) for oid, zone, _, _ in rows}) < len(rows):
        # Two sends of one turn in one zone: no numbering keeps them apart under the
        # unique key, so the message keeps its numbers.
        log.warning(
            "message %s: two occurrences of one turn in one zone; not renumbered", message_id
        )
        return
    follow_ups = conn.execute(
        sa.text(
            "SELECT f.id, f.parent_id FROM occurrences f "
            "WHERE f.message_id = :m AND f.parent_id IS NOT NULL "
            "AND f.purpose IN ('reminder', 'escalation', 'reack')"
        ),
        {"m": message_id},
    ).all()
    for fid, parent in follow_ups:
        if parent in wanted:
            wanted[fid] = wanted[parent]
    # Every row moves out of the way first (to its own negative id), so no unique key is
    # broken half-way through, row by row, on either database.
    moved = [{"id": oid, "n": -oid} for oid in wanted]
    update = sa.text("UPDATE occurrences SET sequence = :n WHERE id = :id")
    conn.execute(update, moved)
    conn.execute(update, [{"id": oid, "n": n} for oid, n in wanted.items()])


def _rule_indices(
    rule: str | None, start: datetime | None, turns: list[datetime]
) -> dict[datetime, int] | None:
    """Each stored wall-clock time's index among the rule's turns from its start, or None
    when the rule does not read or does not give every one of them."""
    if rule is None or start is None or not turns:
        return None
    try:
        expanded = rrulestr(f"RRULE:{_without_end(rule)}", dtstart=start)
        found: dict[datetime, int] = {}
        wanted, last = set(turns), turns[-1]
        for index, local in enumerate(islice(expanded, MAX_TURNS)):
            if local > last:
                break
            if local in wanted:
                found[local] = index
    except (ValueError, TypeError, OverflowError):
        return None
    return found if len(found) == len(turns) else None


def _naive(value: datetime | str) -> datetime:
    """SQLite hands datetimes back as text; both databases store them without a zone."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _without_end(rule: str) -> str:
    """The rule without UNTIL and COUNT: they end it, and change no turn's index."""
    parts = [
        p for p in rule.split(";") if p.split("=")[0].strip().upper() not in ("UNTIL", "COUNT")
    ]
    return ";".join(parts)
