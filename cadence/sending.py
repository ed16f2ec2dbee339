"""Sending a batch of deliveries through their channels and recording what happened.

Deliveries are taken with a conditional UPDATE (`queued` -> `sending`), so a task that runs
twice, or a stale task racing its replacement, sends each delivery at most once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload, sessionmaker

from cadence.channels.base import Channel, Outcome, OutcomeKind, Outgoing, Recipient
from cadence.rendering import render
from cadence.store.db import session_scope
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence

log = logging.getLogger("cadence.sending")

ChannelFactory = Callable[[str], Channel]


@dataclass
class SendReport:
    taken: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def take(session: Session, delivery_ids: Sequence[int], now: datetime) -> list[int]:
    """Mark the still-queued deliveries among `delivery_ids` as ours; return them."""
    return sorted(
        session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids))
            .where(Delivery.status == DeliveryStatus.QUEUED.value)
            .values(
                status=DeliveryStatus.SENDING.value,
                attempts=Delivery.attempts + 1,
                attempted_at=now,
            )
            .returning(Delivery.id)
        ).all()
    )


def prepare(delivery: Delivery, org_zone: str) -> Outgoing:
    """Render one delivery into what its channel sends."""
    message: Message = delivery.occurrence.message
    wordings = message.wordings()
    body = wordings[delivery.variant % len(wordings)]
    person = delivery.person
    recipient = Recipient(
        email=person.email,
        name=person.name,
        slack_user_id=person.slack_user_id,
        timezone=person.timezone or org_zone,
    )
    text = render(
        f"{delivery.channel}/message.txt", person=recipient, title=message.title, body=body
    )
    return Outgoing(delivery.id, recipient, message.title, text)


def send_batch(
    sessions: sessionmaker[Session],
    channels: ChannelFactory,
    delivery_ids: Sequence[int],
    org_zone: str,
    now: datetime,
) -> SendReport:
    report = SendReport()
    with session_scope(sessions) as session:
        mine = take(session, delivery_ids, now)
    report.taken = len(mine)
    if not mine:
        return report
    with session_scope(sessions) as session:
        deliveries = session.scalars(
            select(Delivery)
            .where(Delivery.id.in_(mine))
            .options(
                joinedload(Delivery.person),
                joinedload(Delivery.occurrence)
                .joinedload(Occurrence.message)
                .selectinload(Message.variants),
            )
        ).all()
        by_channel: dict[str, list[Outgoing]] = defaultdict(list)
        rendered: dict[int, str] = {}
        for delivery in deliveries:
            outgoing = prepare(delivery, org_zone)
            by_channel[delivery.channel].append(outgoing)
            rendered[delivery.id] = outgoing.text
    outcomes: list[Outcome] = []
    for channel_name, batch in by_channel.items():
        outcomes += channels(channel_name).send(batch)
    with session_scope(sessions) as session:
        for outcome in outcomes:
            record(session, outcome, rendered.get(outcome.delivery_id), now)
            match outcome.kind:
                case OutcomeKind.SENT:
                    report.sent += 1
                case OutcomeKind.RETRY:
                    report.retrying += 1
                case OutcomeKind.FAILED:
                    report.failed += 1
    return report


def record(session: Session, outcome: Outcome, rendered: str | None, now: datetime) -> None:
    """Write a channel's answer on the delivery (only if it is still ours: `sending`)."""
    values: dict[str, object]
    if outcome.kind is OutcomeKind.SENT:
        values = {
            "status": DeliveryStatus.SENT.value,
            "sent_at": now,
            "provider_id": outcome.provider_id,
            "rendered": rendered,
            "last_error": None,
        }
    elif outcome.kind is OutcomeKind.RETRY:
        values = {
            "status": DeliveryStatus.PENDING.value,
            "retry_at": now + timedelta(seconds=outcome.retry_after or 0),
            "last_error": outcome.reason,
        }
    else:
        values = {"status": DeliveryStatus.FAILED.value, "last_error": outcome.reason}
    session.execute(
        update(Delivery)
        .where(Delivery.id == outcome.delivery_id)
        .where(Delivery.status == DeliveryStatus.SENDING.value)
        .values(**values)
    )
