"""Changing a launch after it was queued: a leader's note, edits with corrections to those
already told, and cancelling with a withdrawal notice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.launches.cascade import (
    LAUNCH_PURPOSE,
    LaunchContext,
    LaunchSpec,
    follow_up_now,
    get_launch,
    launch_occurrence,
    launch_problems,
    plan,
    refusal,
)
from cadence.store.bulk import insert_ignoring_duplicates
from cadence.store.models import (
    Delivery,
    DeliveryStatus,
    LeaderNote,
    Message,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    Person,
)

# Notes, changes, figures

#: The longest note a leader may add (the web form and the Slack modal say so too).
NOTE_MAX_LENGTH = 2000


def set_note(
    session: Session, message_id: int, leader_email: str, text: str, now: datetime
) -> None:
    """A leader's note for their team; it goes with messages not yet sent."""
    message, _ = get_launch(session, message_id)
    leader = session.scalar(select(Person).where(Person.email == leader_email.strip().lower()))
    if leader is None:
        raise InputError(f"no person with email {leader_email.strip().lower()}")
    reports = session.scalar(
        select(Person.id).where(Person.manager_id == leader.id, Person.active.is_(True)).limit(1)
    )
    if reports is None:
        raise InputError(f"{leader.email} leads no one, so has no team to write to")
    note = text.strip()
    if not note:
        raise InputError("the note is empty")
    if len(note) > NOTE_MAX_LENGTH:
        raise InputError(f"the note is longer than {NOTE_MAX_LENGTH} characters")
    existing = session.scalar(
        select(LeaderNote).where(
            LeaderNote.message_id == message.id, LeaderNote.leader_id == leader.id
        )
    )
    if existing is None:
        session.add(LeaderNote(message_id=message.id, leader_id=leader.id, note=note,
                               created_at=now))  # fmt: skip
    else:
        existing.note, existing.created_at = note, now
    session.flush()


@dataclass
class LaunchEdit:
    title: str | None = None
    body: str | None = None
    customer_copy: str | None = None
    talking_points: str | None = None
    faq: str | None = None
    customer_at: datetime | None = None


class EditRefused(InputError):
    """An edit refused, each problem line with the field it is about (`title`, `body`,
    `customer_copy`, `customer_at`), so a form can show it there; it reads as before."""

    def __init__(self, summary: str, keyed: list[tuple[str, str]]) -> None:
        self.keyed = keyed
        super().__init__(summary, [line for _, line in keyed])


def edit_launch(
    session: Session, message_id: int, edit: LaunchEdit, now: datetime, ctx: LaunchContext
) -> tuple[Message, int]:
    """Change a launch before its customer time. Messages not yet sent go out as edited;
    everyone who already had it gets a correction. Returns (message, corrections)."""
    message, launch = get_launch(session, message_id)
    if message.status == MessageStatus.CANCELLED.value:
        raise InputError(f"launch {message_id} is cancelled")
    if now >= launch.customer_at:
        raise InputError("customers have already been told: a launch cannot change after that")
    spec = LaunchSpec(
        title=edit.title if edit.title is not None else message.title,
        body=edit.body if edit.body is not None else message.body,
        customer_copy=(
            edit.customer_copy if edit.customer_copy is not None else launch.customer_copy
        ),
        customer_at=edit.customer_at or launch.customer_at,
        customer_zone=launch.customer_zone,
        audience=Audience.from_json(message.audience),
    )
    found = [(key, line) for key, line in launch_problems(spec, now) if key != "channels"]
    if found:
        raise EditRefused("edit refused:", found)
    material = (spec.title.strip(), spec.body, spec.customer_copy) != (
        message.title,
        message.body,
        launch.customer_copy,
    )
    if edit.customer_at is not None and edit.customer_at != launch.customer_at:
        launch.customer_at = edit.customer_at
        launch.planned_from = now
        if (late := refusal(plan(session, message, launch, ctx))) is not None:
            # Every line is about the new customer time: the timeline it no longer fits.
            raise EditRefused(late.summary, [("customer_at", line) for line in late.problems])
    message.title, message.body, launch.customer_copy = (
        spec.title.strip(),
        spec.body,
        spec.customer_copy,
    )
    if edit.talking_points is not None:
        launch.talking_points = edit.talking_points
    if edit.faq is not None:
        launch.faq = edit.faq
    message.updated_at = now
    corrections = 0
    if material:
        message.version += 1
        # Answers to what was first sent are kept, marked with their version; they no
        # longer count as acknowledging what customers will now be told.
        message.ack_version = message.version
        corrections = _send_to_recipients(session, message, now, {"correction": message.version})
    session.flush()
    return message, corrections


def cancel_launch(session: Session, message_id: int, now: datetime) -> tuple[int, int]:
    """Withdraw a launch: nothing more is sent, and whoever had it is told it is off."""
    from cadence.messages.core import cancel

    message, launch = get_launch(session, message_id)
    if now >= launch.customer_at:
        raise InputError("customers have already been told: cancel is no longer possible")
    withdrawn_notices = _send_to_recipients(session, message, now, {"withdrawn": True})
    _, _, withdrawn = cancel(session, message_id, now)
    # The notices themselves must still go out.
    notices = select(Occurrence.id).where(
        Occurrence.message_id == message_id, Occurrence.purpose == "correction"
    )
    session.execute(
        update(Delivery)
        .where(Delivery.occurrence_id.in_(notices))
        .where(Delivery.last_error == "message cancelled")
        .values(status=DeliveryStatus.PENDING.value, last_error=None)
    )
    session.execute(
        update(Occurrence)
        .where(Occurrence.message_id == message_id, Occurrence.purpose == LAUNCH_PURPOSE)
        .values(status=OccurrenceStatus.CANCELLED.value)
    )
    return withdrawn, withdrawn_notices


def already_told(session: Session, message_id: int) -> list[tuple[int, str]]:
    """(person, channel) of every launch send already made: who a correction or a
    withdrawal notice goes to."""
    root = launch_occurrence(session, message_id)
    rows = session.execute(
        select(Delivery.person_id, Delivery.channel).where(
            Delivery.occurrence_id == root.id, Delivery.status == DeliveryStatus.SENT.value
        )
    ).all()
    return [(person_id, channel) for person_id, channel in rows]


def _send_to_recipients(
    session: Session, message: Message, now: datetime, payload: dict[str, Any]
) -> int:
    """A follow-up to everyone the launch already reached (a correction or a withdrawal)."""
    root = launch_occurrence(session, message.id)
    reached = already_told(session, message.id)
    if not reached:
        return 0
    number = message.version if "correction" in payload else 10_000 + message.version
    correction = follow_up_now(session, message.id, root.id, "correction", number, now)
    rows = [
        {
            "occurrence_id": correction,
            "person_id": person_id,
            "channel": channel,
            "variant": 0,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "payload": payload,
        }
        for person_id, channel in reached
    ]
    return insert_ignoring_duplicates(session, Delivery, rows)
