"""`cadence send-test`: one real delivery of a message, now, to one person.

A leader sees exactly what their people will see. The send is a delivery like any other
(recorded, paced, retried), on an occurrence marked "test" so it never counts in figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cadence.delivery.sending import ChannelFactory, SendPolicy, send_batch
from cadence.errors import InputError
from cadence.messages.channel_choice import channels_for
from cadence.messages.core import get_message
from cadence.store.db import session_scope
from cadence.store.models import (
    Delivery,
    DeliveryStatus,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    Person,
)

TEST_PURPOSE = "test"


@dataclass(frozen=True)
class TestSend:
    delivery_id: int
    channel: str
    status: str
    provider_id: str | None
    error: str | None


def create_test_delivery(
    session: Session,
    message_id: int,
    email: str,
    now: datetime,
    org_zone: str,
    *,
    channel: str | None = None,
    wording: int = 0,
) -> int:
    """Write a queued test delivery; return its id."""
    message = get_message(session, message_id)
    if message.status == MessageStatus.CANCELLED.value:
        raise InputError(f"message {message_id} is cancelled")
    person = session.scalar(select(Person).where(Person.email == email.strip().lower()))
    if person is None:
        raise InputError(f"no person with email {email.strip().lower()} in the directory")
    wordings = len(message.wordings())
    if not 0 <= wording < wordings:
        raise InputError(f"--wording must be from 0 to {wordings - 1}")
    if channel is None:
        channel = channels_for(person.channel, message.channels, "first")[0]
    elif channel not in message.channels:
        allowed = ", ".join(message.channels)
        raise InputError(f"message {message_id} is not sent by {channel} (it allows {allowed})")
    lowest = session.scalar(
        select(func.min(Occurrence.sequence)).where(Occurrence.message_id == message_id)
    )
    occurrence = Occurrence(
        message_id=message_id,
        purpose=TEST_PURPOSE,
        # Test sends count down from -1 so they never collide with real repetitions.
        sequence=min(lowest or 0, 0) - 1,
        zone=person.timezone or org_zone,
        local_time=now.replace(tzinfo=None),
        due_at=now,
        status=OccurrenceStatus.DISPATCHED.value,
        dispatched_at=now,
        note=f"test send to {person.email}",
    )
    session.add(occurrence)
    session.flush()
    delivery = Delivery(
        occurrence_id=occurrence.id,
        person_id=person.id,
        channel=channel,
        variant=wording,
        status=DeliveryStatus.QUEUED.value,
        created_at=now,
        queued_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery.id


def send_now(
    sessions: sessionmaker[Session],
    channels: ChannelFactory,
    delivery_id: int,
    policy: SendPolicy,
    now: datetime,
) -> list[TestSend]:
    """Send the test delivery, and at once any fallback it needed; report each."""
    with session_scope(sessions) as session:
        occurrence_id = session.scalar(
            select(Delivery.occurrence_id).where(Delivery.id == delivery_id)
        )
    ids = [delivery_id]
    while ids:
        send_batch(sessions, channels, ids, policy, now)
        with session_scope(sessions) as session:
            fallbacks = session.scalars(
                update(Delivery)
                .where(Delivery.occurrence_id == occurrence_id)
                .where(Delivery.status == DeliveryStatus.PENDING.value)
                .where(Delivery.fallback_from_id.is_not(None))
                .values(status=DeliveryStatus.QUEUED.value, queued_at=now)
                .returning(Delivery.id)
            ).all()
        ids = list(fallbacks)
    with session_scope(sessions) as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.occurrence_id == occurrence_id).order_by(Delivery.id)
        ).all()
        return [TestSend(d.id, d.channel, d.status, d.provider_id, d.last_error) for d in rows]
