"""A notice to one person through the outbox: an occurrence of its own, already
dispatched, with one delivery that the tick sends like every other (recorded first,
paced, retried, never twice). Writing either again writes nothing more, so a worker
that retries after a crash cannot tell anyone twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.messages.markdown import md_escape
from cadence.store.bulk import insert_ignoring_duplicates
from cadence.store.models import Delivery, DeliveryStatus, Occurrence, OccurrenceStatus


def notice_occurrence(
    session: Session, key: dict[str, Any], now: datetime, note: str, **fields: Any
) -> int:
    """The id of the occurrence `key` names (its unique columns), written now if it is not
    there yet, dispatched at once with `note` and any other `fields`."""
    insert_ignoring_duplicates(
        session,
        Occurrence,
        [
            {
                **key,
                **fields,
                "due_at": now,
                "status": OccurrenceStatus.DISPATCHED.value,
                "dispatched_at": now,
                "note": note,
            }
        ],
    )
    found = session.scalar(
        select(Occurrence.id).where(*(getattr(Occurrence, k) == v for k, v in key.items()))
    )
    assert found is not None  # written just now, or already there
    return found


def notice_delivery(
    session: Session,
    occurrence_id: int,
    person_id: int,
    channel: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """The notice's one delivery, pending for the tick (nothing when it is there already)."""
    insert_ignoring_duplicates(
        session,
        Delivery,
        [
            {
                "occurrence_id": occurrence_id,
                "person_id": person_id,
                "channel": channel,
                "variant": 0,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "payload": payload,
            }
        ],
    )


def quoted(text: str) -> str:
    """Someone's own words as a Markdown quote, each line escaped; an empty quote when
    there are none."""
    return "\n".join(f"> {md_escape(line)}" for line in text.splitlines()) or "> "
