"""A leader's own people: what each was sent and answered, who has not answered what, and
the questions they asked.

Everything is read for one leader's reporting tree (`tree_of`), the leader themselves left
out: it is their team's page. Counts are of messages (occurrences planned from a cadence or
a launch), not of channels or reminders, as in every other figure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session, aliased

from cadence.answers.acks import AnswerKind
from cadence.directory.audience import tree_of
from cadence.figures.message_detail import not_acknowledged
from cadence.figures.slices import Filters
from cadence.figures.summaries import SEND_PURPOSES
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    Occurrence,
    Person,
    Team,
)

#: The messages with people still to answer that the page lists, most recently sent first.
MESSAGES_SHOWN = 12
#: How many of the messages most recently sent to the team are looked at for them.
MESSAGES_LOOKED_AT = 40
QUESTIONS_SHOWN = 100


def _people(leader_id: int) -> Select[tuple[int]]:
    tree = tree_of(leader_id, "team_tree").subquery()
    return select(tree.c.id).where(tree.c.id != leader_id)


def _latest_titles(
    session: Session, rows: Any, person: Any, at: Any
) -> dict[int, tuple[str, datetime]]:
    """Per person, the title and time of the newest of `rows`."""
    numbered = rows.add_columns(
        func.row_number()
        .over(partition_by=person, order_by=(at.desc(), Message.id.desc()))
        .label("n")
    ).subquery()
    found = session.execute(
        select(numbered.c.person_id, numbered.c.title, numbered.c.at).where(numbered.c.n == 1)
    ).all()
    return {pid: (title, when) for pid, title, when in found}


def team_people(session: Session, leader_id: int) -> list[dict[str, Any]]:
    """Each active person below the leader: messages received and answered, the last of
    each, and whom they report to (`direct`: the leader)."""
    people = _people(leader_id)
    manager = aliased(Person)
    directory = session.execute(
        select(Person.id, Person.email, Person.name, Team.path, manager.name, manager.id)
        .outerjoin(Team, Team.id == Person.team_id)
        .outerjoin(manager, manager.id == Person.manager_id)
        .where(Person.id.in_(people), Person.active.is_(True))
        .order_by(Person.name, Person.email)
    ).all()
    sent = and_(
        Delivery.status == DeliveryStatus.SENT.value,
        Delivery.person_id.in_(people),
        Occurrence.purpose.in_(SEND_PURPOSES),
    )
    received = dict(
        session.execute(
            select(Delivery.person_id, func.count(func.distinct(Delivery.occurrence_id)))
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(sent)
            .group_by(Delivery.person_id)
        ).all()
    )
    last_sent = _latest_titles(
        session,
        select(Delivery.person_id.label("person_id"), Message.title, Delivery.sent_at.label("at"))
        .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
        .join(Message, Message.id == Occurrence.message_id)
        .where(sent),
        Delivery.person_id,
        Delivery.sent_at,
    )
    counted = and_(Acknowledgement.counted.is_(True), Acknowledgement.person_id.in_(people))
    answered = dict(
        session.execute(
            select(
                Acknowledgement.person_id, func.count(func.distinct(Acknowledgement.occurrence_id))
            )
            .where(counted)
            .group_by(Acknowledgement.person_id)
        ).all()
    )
    last_answer = _latest_titles(
        session,
        select(
            Acknowledgement.person_id.label("person_id"),
            Message.title,
            Acknowledgement.created_at.label("at"),
        )
        .join(Occurrence, Occurrence.id == Acknowledgement.occurrence_id)
        .join(Message, Message.id == Occurrence.message_id)
        .where(counted),
        Acknowledgement.person_id,
        Acknowledgement.created_at,
    )
    rows = []
    for pid, email, name, team, manager_name, manager_id in directory:
        got, answers = int(received.get(pid, 0)), int(answered.get(pid, 0))
        last, last_ack = last_sent.get(pid), last_answer.get(pid)
        rows.append(
            {
                "person": email,
                "name": name,
                "team": team,
                "reports_to": manager_name,
                "direct": manager_id == leader_id,
                "received": got,
                "acknowledged": answers,
                "ack_rate": answers / got if got else None,
                "last_message": last[0] if last else None,
                "last_sent_at": last[1] if last else None,
                "last_ack_message": last_ack[0] if last_ack else None,
                "last_ack_at": last_ack[1] if last_ack else None,
            }
        )
    return rows


def waiting_by_message(session: Session, leader_id: int) -> list[dict[str, Any]]:
    """The messages most recently sent to the team that someone has not answered, each with
    who (as the message page's "Not acknowledged yet" reads it, for this tree)."""
    people = _people(leader_id)
    recent = session.execute(
        select(Message.id, Message.title, Message.kind, func.max(Delivery.sent_at))
        .join(Occurrence, Occurrence.message_id == Message.id)
        .join(Delivery, Delivery.occurrence_id == Occurrence.id)
        .where(
            Delivery.status == DeliveryStatus.SENT.value,
            Delivery.person_id.in_(people),
            Occurrence.purpose.in_(SEND_PURPOSES),
            Message.status != MessageStatus.CANCELLED.value,
        )
        .group_by(Message.id, Message.title, Message.kind)
        .order_by(func.max(Delivery.sent_at).desc(), Message.id.desc())
        .limit(MESSAGES_LOOKED_AT)
    ).all()
    leader_email = session.scalar(select(Person.email).where(Person.id == leader_id))
    scope = Filters(scope_person_id=leader_id)
    found = []
    for message_id, title, kind, last_sent in recent:
        waiting = [
            row
            for row in not_acknowledged(session, message_id, scope)
            if row["person"] != leader_email
        ]
        if waiting:
            found.append(
                {
                    "message_id": message_id,
                    "title": title,
                    "kind": kind,
                    "last_sent_at": last_sent,
                    "people": waiting,
                }
            )
        if len(found) == MESSAGES_SHOWN:
            break
    return found


def team_questions(session: Session, leader_id: int) -> list[dict[str, Any]]:
    """Questions the team asked, newest first: the same question sent twice counts once
    (it was forwarded once), and each says whom it went to (`direct`: the leader)."""
    people = _people(leader_id)
    manager = aliased(Person)
    rows = session.execute(
        select(
            Acknowledgement.id,
            Acknowledgement.occurrence_id,
            Acknowledgement.question,
            Acknowledgement.clarity,
            Acknowledgement.created_at,
            Acknowledgement.via,
            Person.email,
            Person.name,
            Person.manager_id,
            manager.name,
            Message.id,
            Message.title,
        )
        .join(Person, Person.id == Acknowledgement.person_id)
        .outerjoin(manager, manager.id == Person.manager_id)
        .join(Occurrence, Occurrence.id == Acknowledgement.occurrence_id)
        .join(Message, Message.id == Occurrence.message_id)
        .where(
            Acknowledgement.kind == AnswerKind.QUESTION.value,
            Acknowledgement.person_id.in_(people),
        )
        .order_by(Acknowledgement.id)
    ).all()
    seen: set[tuple[int, str, str | None]] = set()
    found = []
    for (
        ack_id,
        occurrence_id,
        question,
        clarity,
        at,
        via,
        email,
        name,
        manager_id,
        manager_name,
        message_id,
        title,
    ) in rows:
        key = (occurrence_id, email, question)
        if key in seen:
            continue
        seen.add(key)
        found.append(
            {
                "id": ack_id,
                "person": email,
                "name": name,
                "asked_of": manager_name,
                "direct": manager_id == leader_id,
                "message_id": message_id,
                "title": title,
                "question": question,
                "clarity": clarity,
                "at": at,
                "via": via,
            }
        )
    found.reverse()
    return found[:QUESTIONS_SHOWN]


def leaders(session: Session) -> list[tuple[int, str, str]]:
    """(id, name, email) of everyone with an active report: whose team a comms user may
    pick to look at."""
    report = aliased(Person)
    return [
        (pid, name, email)
        for pid, name, email in session.execute(
            select(Person.id, Person.name, Person.email)
            .where(
                Person.active.is_(True),
                select(report.id)
                .where(report.manager_id == Person.id, report.active.is_(True))
                .exists(),
            )
            .order_by(Person.name, Person.email)
        ).all()
    ]


def leads_anyone(session: Session, person_id: int | None) -> bool:
    if person_id is None:
        return False
    return (
        session.scalar(
            select(Person.id)
            .where(Person.manager_id == person_id, Person.active.is_(True))
            .limit(1)
        )
        is not None
    )
