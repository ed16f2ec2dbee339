"""A leader's briefings still waiting for their team, and the note they add for it.

A note goes with the team's launch messages that are not sent yet (`changes.set_note`), so
it is worth offering only while some of the leader's people in the launch's audience have
not been sent it, and before customers are told. The dashboard, the Slack modal and the
email acknowledgement page all add a note here, through the same checks: the briefing must
be the leader's own, and still waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.directory.audience import Audience, audience_filter
from cadence.errors import InputError
from cadence.launches.cascade import LAUNCH_PURPOSE
from cadence.launches.changes import set_note
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    Launch,
    LeaderNote,
    Message,
    MessageStatus,
    Occurrence,
    Person,
)


class NoSuchBriefing(InputError):
    """Not a briefing sent to this leader: for them it does not exist."""


class NotTheLeader(InputError):
    """The briefing was sent to someone else."""


#: What a briefing whose team has all been sent it says when a note is offered anyway.
TEAM_ALREADY_TOLD = "your team has already been sent this launch, so a note would reach no one"
CUSTOMERS_TOLD = "customers have already been told, so a note would reach no one"


@dataclass(frozen=True)
class Briefing:
    """One briefing delivery of a leader, with what their note would still reach."""

    delivery_id: int
    message_id: int
    title: str
    customer_at: datetime
    sent_at: datetime | None
    acknowledged_at: datetime | None
    note: str | None
    team: int  # the leader's people in the launch's audience
    waiting: int  # of them, not sent it yet

    @property
    def pending(self) -> bool:
        return self.waiting > 0


def is_briefing(delivery: Delivery) -> bool:
    """A launch delivery sent to a leader before their people."""
    return delivery.occurrence.purpose == LAUNCH_PURPOSE and bool(
        (delivery.payload or {}).get("briefing")
    )


def _briefing(session: Session, delivery: Delivery, now: datetime) -> Briefing:
    occurrence = delivery.occurrence
    message = occurrence.message
    launch = session.scalars(select(Launch).where(Launch.message_id == message.id)).one()
    team = select(Person.id).where(
        Person.manager_id == delivery.person_id,
        audience_filter(Audience.from_json(message.audience or {})),
    )
    size = int(session.scalar(select(func.count()).select_from(team.subquery())) or 0)
    sent = int(
        session.scalar(
            select(func.count(func.distinct(Delivery.person_id))).where(
                Delivery.occurrence_id == occurrence.id, Delivery.person_id.in_(team)
            )
        )
        or 0
    )
    open_launch = message.status == MessageStatus.ACTIVE.value and now < launch.customer_at
    acknowledged = session.scalar(
        select(func.min(Acknowledgement.created_at)).where(
            Acknowledgement.occurrence_id == occurrence.id,
            Acknowledgement.person_id == delivery.person_id,
            Acknowledgement.counted.is_(True),
        )
    )
    note = session.scalar(
        select(LeaderNote.note).where(
            LeaderNote.message_id == message.id, LeaderNote.leader_id == delivery.person_id
        )
    )
    return Briefing(
        delivery_id=delivery.id,
        message_id=message.id,
        title=message.title,
        customer_at=launch.customer_at,
        sent_at=delivery.sent_at,
        acknowledged_at=acknowledged,
        note=note,
        team=size,
        waiting=max(0, size - sent) if open_launch else 0,
    )


def pending_briefings(session: Session, leader_id: int, now: datetime) -> list[Briefing]:
    """The leader's briefings whose team is still waiting, soonest customer time first.

    One per launch: a briefing sent on two channels is one briefing (the first delivery).
    """
    deliveries = session.scalars(
        select(Delivery)
        .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
        .join(Message, Message.id == Occurrence.message_id)
        .where(
            Delivery.person_id == leader_id,
            Occurrence.purpose == LAUNCH_PURPOSE,
            Message.status == MessageStatus.ACTIVE.value,
        )
        .order_by(Delivery.id)
    ).all()
    found: dict[int, Briefing] = {}
    for delivery in deliveries:
        if delivery.occurrence.message_id in found or not is_briefing(delivery):
            continue
        briefing = _briefing(session, delivery, now)
        if briefing.pending:
            found[briefing.message_id] = briefing
    return sorted(found.values(), key=lambda b: (b.customer_at, b.message_id))


def _checked(
    session: Session, delivery_id: int, person_id: int | None, slack_user_id: str | None
) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or not is_briefing(delivery):
        raise NoSuchBriefing(f"no briefing {delivery_id}")
    if person_id is None and slack_user_id is None:
        raise NotTheLeader("who is asking is not known")
    if person_id is not None and delivery.person_id != person_id:
        raise NoSuchBriefing(f"no briefing {delivery_id}")
    if slack_user_id is not None and delivery.person.slack_user_id != slack_user_id:
        raise NotTheLeader("this briefing was sent to someone else")
    return delivery


def briefing_of(
    session: Session,
    delivery_id: int,
    now: datetime,
    *,
    person_id: int | None = None,
    slack_user_id: str | None = None,
) -> Briefing:
    """The briefing `delivery_id`, checked to be the one of the leader asking.

    `person_id` (a signed-in leader, an email link) names the leader; a delivery that is not
    their briefing raises NoSuchBriefing. `slack_user_id` (a Slack click) raises NotTheLeader
    for a briefing of someone else, so Slack can say so to the one who clicked.
    """
    return _briefing(session, _checked(session, delivery_id, person_id, slack_user_id), now)


def add_team_note(
    session: Session,
    delivery_id: int,
    text: str,
    now: datetime,
    *,
    person_id: int | None = None,
    slack_user_id: str | None = None,
) -> Briefing:
    """Save the leader's note for their team from one of their briefings, exactly as
    `cadence launch note` does; refused (InputError) once it would reach no one."""
    delivery = _checked(session, delivery_id, person_id, slack_user_id)
    briefing = _briefing(session, delivery, now)
    if now >= briefing.customer_at:
        raise InputError(CUSTOMERS_TOLD)
    if not briefing.pending:
        raise InputError(TEAM_ALREADY_TOLD)
    set_note(session, briefing.message_id, delivery.person.email, text, now)
    return _briefing(session, delivery, now)
