"""Recording acknowledgements honestly, and asking who has answered.

Only the recipient of a delivery can answer it (callers pass who is answering: the person
an email token names, or the Slack user who clicked). The first answer of a person to an
occurrence counts, on every channel and for every reminder of it; later clicks are kept as
repeats. A counted answer cancels that person's reminders not yet sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, joinedload

from cadence.errors import CadenceError, InputError
from cadence.store.bulk import affected
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    Occurrence,
    Person,
)

MAX_QUESTION = 2000
FOLLOW_UPS = ("reminder", "escalation")


class AnswerKind(StrEnum):
    ACK = "ack"
    QUESTION = "question"


class NotRecipient(CadenceError):
    """Someone other than the recipient tried to answer a delivery."""


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    question: str | None = None
    clarity: int | None = None


def make_answer(kind: str, question: str | None = None, clarity: int | str | None = None) -> Answer:
    """Validate an answer from outside (a form, a Slack payload), naming what is wrong."""
    try:
        answer_kind = AnswerKind(kind)
    except ValueError:
        raise InputError(f"unknown answer {kind!r} (ack or question)") from None
    text = (question or "").strip() or None
    if answer_kind is AnswerKind.QUESTION and text is None:
        raise InputError("the question is empty")
    if text is not None and len(text) > MAX_QUESTION:
        raise InputError(f"the question is longer than {MAX_QUESTION} characters")
    score: int | None = None
    if clarity not in (None, ""):
        try:
            score = int(str(clarity))
        except ValueError:
            raise InputError("clarity must be a whole number from 0 to 10") from None
        if not 0 <= score <= 10:
            raise InputError("clarity must be a whole number from 0 to 10")
    return Answer(answer_kind, text, score)


@dataclass(frozen=True)
class Recorded:
    acknowledgement_id: int
    delivery_id: int
    occurrence_id: int  # the occurrence answered (never a reminder of it)
    person_id: int
    kind: str
    counted: bool  # False: a repeat of an earlier answer
    cancelled_reminders: int
    message_id: int
    message_title: str


def root_occurrence(session: Session, occurrence: Occurrence) -> Occurrence:
    """A reminder or escalation answers for the occurrence it follows up."""
    if occurrence.parent_id is None:
        return occurrence
    parent = session.get(Occurrence, occurrence.parent_id)
    return occurrence if parent is None else parent


def load_delivery(session: Session, delivery_id: int) -> Delivery:
    delivery = session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery_id)
        .options(
            joinedload(Delivery.person),
            joinedload(Delivery.occurrence).joinedload(Occurrence.message),
        )
    )
    if delivery is None:
        raise InputError(f"no delivery {delivery_id}")
    return delivery


def record_answer(
    session: Session,
    delivery_id: int,
    answer: Answer,
    *,
    via: str,
    now: datetime,
    person_id: int | None = None,
    slack_user_id: str | None = None,
) -> Recorded:
    """Record `answer` to a delivery by whoever `person_id` / `slack_user_id` say is answering.

    Raises NotRecipient when that is not the delivery's recipient, and InputError when the
    delivery is not one that can be answered (a manager's digest).
    """
    delivery = load_delivery(session, delivery_id)
    person = delivery.person
    if person_id is not None and person_id != person.id:
        raise NotRecipient("this delivery was sent to someone else")
    if slack_user_id is not None and slack_user_id != person.slack_user_id:
        raise NotRecipient("this message was sent to someone else")
    if person_id is None and slack_user_id is None:
        raise NotRecipient("who is answering is not known")
    if delivery.occurrence.purpose == "escalation":
        raise InputError("a digest for managers has nothing to acknowledge")
    root = root_occurrence(session, delivery.occurrence)
    message: Message = delivery.occurrence.message
    fields: dict[str, Any] = {
        "delivery_id": delivery.id,
        "occurrence_id": root.id,
        "person_id": person.id,
        "kind": answer.kind.value,
        "question": answer.question,
        "clarity": answer.clarity,
        "message_version": delivery.content_version or message.version,
        "via": via,
        "created_at": now,
    }
    counted = not _answered(session, root.id, person.id, fields["message_version"])
    row = Acknowledgement(**fields, counted=counted)
    try:
        # Two clicks at once: the unique index lets one count; the other becomes a repeat.
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        row = Acknowledgement(**fields, counted=False)
        session.add(row)
        session.flush()
    cancelled = _settle(session, root, person.id, now) if row.counted else 0
    return Recorded(
        acknowledgement_id=row.id,
        delivery_id=delivery.id,
        occurrence_id=root.id,
        person_id=person.id,
        kind=row.kind,
        counted=row.counted,
        cancelled_reminders=cancelled,
        message_id=message.id,
        message_title=message.title,
    )


def _answered(session: Session, occurrence_id: int, person_id: int, version: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    Acknowledgement.occurrence_id == occurrence_id,
                    Acknowledgement.person_id == person_id,
                    Acknowledgement.message_version == version,
                    Acknowledgement.counted.is_(True),
                )
            )
        )
    )


def _settle(session: Session, root: Occurrence, person_id: int, now: datetime) -> int:
    """Mark every delivery of this occurrence to this person as answered, and cancel their
    reminders that have not gone out yet."""
    follow_ups = list(
        session.scalars(
            select(Occurrence.id).where(
                Occurrence.parent_id == root.id, Occurrence.purpose.in_(("reminder", "reack"))
            )
        )
    )
    session.execute(
        update(Delivery)
        .where(Delivery.person_id == person_id)
        .where(Delivery.occurrence_id.in_([root.id, *follow_ups]))
        .values(acknowledged_at=now)
    )
    if not follow_ups:
        return 0
    return affected(
        session,
        update(Delivery)
        .where(Delivery.person_id == person_id)
        .where(Delivery.occurrence_id.in_(follow_ups))
        .where(Delivery.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.QUEUED.value]))
        .values(status=DeliveryStatus.CANCELLED.value, last_error="acknowledged"),
    )


def answered_condition(occurrence_id: Any, person_id: Any, ack_version: Any) -> Any:
    """SQL: this person has a counted answer to this occurrence for a version that counts."""
    return exists().where(
        Acknowledgement.occurrence_id == occurrence_id,
        Acknowledgement.person_id == person_id,
        Acknowledgement.counted.is_(True),
        Acknowledgement.message_version >= ack_version,
    )


def unanswered_recipients(
    session: Session, root: Occurrence, among: ColumnElement[bool] | None = None
) -> list[int]:
    """People sent this occurrence (on any channel) who have not answered it; only those
    `among` matches (a condition on Person) when given."""
    message = root.message
    sent = aliased(Delivery)
    stmt = (
        select(Person.id)
        .where(Person.active.is_(True))
        .where(
            exists().where(
                and_(
                    sent.person_id == Person.id,
                    sent.occurrence_id == root.id,
                    sent.status == DeliveryStatus.SENT.value,
                )
            )
        )
        .where(~answered_condition(root.id, Person.id, message.ack_version))
        .order_by(Person.id)
    )
    if among is not None:
        stmt = stmt.where(among)
    return list(session.scalars(stmt))


def list_acks(
    session: Session,
    *,
    message_id: int | None = None,
    person_email: str | None = None,
    kind: str | None = None,
    include_repeats: bool = False,
    limit: int = 100,
) -> list[dict[str, Any]]:
    if kind is not None and kind not in {k.value for k in AnswerKind}:
        raise InputError(f"unknown kind {kind!r} (ack or question)")
    if limit < 1:
        raise InputError("--limit must be at least 1")
    stmt = (
        select(Acknowledgement, Occurrence, Message.title, Person.email, Delivery.channel)
        .join(Occurrence, Acknowledgement.occurrence_id == Occurrence.id)
        .join(Message, Occurrence.message_id == Message.id)
        .join(Person, Acknowledgement.person_id == Person.id)
        .join(Delivery, Acknowledgement.delivery_id == Delivery.id)
        .order_by(Acknowledgement.id.desc())
        .limit(limit)
    )
    if message_id is not None:
        stmt = stmt.where(Occurrence.message_id == message_id)
    if person_email is not None:
        stmt = stmt.where(Person.email == person_email.strip().lower())
    if kind is not None:
        stmt = stmt.where(Acknowledgement.kind == kind)
    if not include_repeats:
        stmt = stmt.where(Acknowledgement.counted.is_(True))
    return [
        {
            "id": a.id,
            "message_id": o.message_id,
            "title": title,
            "repetition": o.sequence + 1,
            "person": email,
            "kind": a.kind,
            "question": a.question,
            "clarity": a.clarity,
            "version": a.message_version,
            "via": a.via,
            "channel": channel,
            "repeat": not a.counted,
            "at": a.created_at.isoformat(timespec="seconds"),
            "seconds_to_answer": (
                round((a.created_at - o.due_at).total_seconds()) if o.due_at else None
            ),
        }
        for a, o, title, email, channel in session.execute(stmt)
    ]


def ack_status(session: Session, message_id: int) -> list[dict[str, Any]]:
    """For each person sent the message: their latest repetition and whether they answered
    it (for a version that still counts), with their team."""
    from cadence.store.models import Team

    message = session.get(Message, message_id)
    if message is None:
        raise InputError(f"no message with id {message_id}")
    latest = (
        select(Delivery.person_id, Occurrence.id.label("occ"), Occurrence.sequence)
        .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
        .where(Occurrence.message_id == message_id, Occurrence.purpose == "cadence")
        .where(Delivery.status == DeliveryStatus.SENT.value)
        .order_by(Delivery.person_id, Occurrence.sequence.desc())
    )
    newest: dict[int, tuple[int, int]] = {}
    for person_id, occ, sequence in session.execute(latest):
        newest.setdefault(person_id, (occ, sequence))
    rows = []
    for person_id, (occ, sequence) in newest.items():
        person = session.get(Person, person_id)
        assert person is not None
        team = session.get(Team, person.team_id) if person.team_id else None
        answer = session.scalar(
            select(Acknowledgement)
            .where(
                Acknowledgement.occurrence_id == occ,
                Acknowledgement.person_id == person_id,
                Acknowledgement.counted.is_(True),
                Acknowledgement.message_version >= message.ack_version,
            )
            .order_by(Acknowledgement.id)
        )
        rows.append(
            {
                "person": person.email,
                "name": person.name,
                "team": team.path if team else None,
                "repetition": sequence + 1,
                "answered": answer is not None,
                "kind": answer.kind if answer else None,
                "at": answer.created_at.isoformat(timespec="seconds") if answer else None,
            }
        )
    return sorted(
        rows, key=lambda r: (r["team"] is None, r["team"] or "", r["answered"], r["person"])
    )
