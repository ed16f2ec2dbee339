"""Read-only views of what was sent, for people and for the CLI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.errors import InputError
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence, Person


def list_deliveries(
    session: Session,
    *,
    message_id: int | None = None,
    person_email: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first, filtered; each delivery as plain data."""
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        known = ", ".join(s.value for s in DeliveryStatus)
        raise InputError(f"unknown status {status!r} (one of: {known})")
    if limit < 1:
        raise InputError("--limit must be at least 1")
    stmt = (
        select(Delivery, Occurrence, Message.title, Person.email)
        .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
        .join(Message, Occurrence.message_id == Message.id)
        .join(Person, Delivery.person_id == Person.id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if message_id is not None:
        stmt = stmt.where(Occurrence.message_id == message_id)
    if person_email is not None:
        stmt = stmt.where(Person.email == person_email.strip().lower())
    if status is not None:
        stmt = stmt.where(Delivery.status == status)
    return [
        {
            "id": d.id,
            "message_id": o.message_id,
            "title": title,
            "repetition": o.sequence + 1,
            "wording": d.variant,
            "person": email,
            "zone": o.zone,
            "due_at": o.due_at.isoformat(timespec="seconds"),
            "channel": d.channel,
            "status": d.status,
            "attempts": d.attempts,
            "sent_at": d.sent_at.isoformat(timespec="seconds") if d.sent_at else None,
            "provider_id": d.provider_id,
            "provider_channel": d.provider_channel,
            "last_error": d.last_error,
            "rendered": d.rendered,
        }
        for d, o, title, email in session.execute(stmt)
    ]
