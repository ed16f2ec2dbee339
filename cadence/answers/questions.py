"""Questions forwarded to the asker's team leader, through the outbox like every send."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.answers.acks import AnswerKind
from cadence.errors import CadenceError
from cadence.messages.channel_choice import channels_for
from cadence.messages.markdown import md_escape
from cadence.messages.notices import notice_delivery, notice_occurrence, quoted
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    Occurrence,
    Person,
)

log = logging.getLogger("cadence.answers.questions")

# A forwarded question's occurrence, and the channels a team leader is asked on.
QUESTION_PURPOSE = "question"
QUESTION_CHANNELS = ("slack", "email")
# The worker's task that writes them, queued by the web app after an answer is recorded.
FORWARD_QUESTION_TASK = "cadence.forward_question"


@dataclass(frozen=True)
class Forwarded:
    """Where a question went: `via` is slack, email or nobody; `to` the leader's address."""

    acknowledgement_id: int
    via: str
    to: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Question:
    ack: Acknowledgement
    person: Person
    manager: Person | None
    title: str


def _load_question(session: Session, acknowledgement_id: int) -> _Question | Forwarded:
    ack = session.get(Acknowledgement, acknowledgement_id)
    if ack is None:
        return Forwarded(acknowledgement_id, "nobody", reason="no such acknowledgement")
    if ack.kind != AnswerKind.QUESTION.value or not ack.question:
        return Forwarded(acknowledgement_id, "nobody", reason="not a question")
    earlier = session.scalar(
        select(Acknowledgement.id)
        .where(
            Acknowledgement.id < ack.id,
            Acknowledgement.occurrence_id == ack.occurrence_id,
            Acknowledgement.person_id == ack.person_id,
            Acknowledgement.kind == AnswerKind.QUESTION.value,
            Acknowledgement.question == ack.question,
        )
        .limit(1)
    )
    if earlier is not None:
        return Forwarded(acknowledgement_id, "nobody", reason=f"the same as question {earlier}")
    person = session.get(Person, ack.person_id)
    occurrence = session.get(Occurrence, ack.occurrence_id)
    if person is None or occurrence is None:
        return Forwarded(acknowledgement_id, "nobody", reason="person or occurrence is gone")
    return _Question(ack, person, person.manager, occurrence.message.title)


def forward_question(session: Session, acknowledgement_id: int, now: datetime) -> Forwarded:
    """Put a question in the outbox for the asker's team leader: an occurrence of its own
    (purpose "question", numbered by the acknowledgement) with one delivery to the leader, on
    their own channel or the first of Slack and email, the other as fallback. The tick sends
    it like everything else: recorded first, paced, retried, looked for in the DM history
    after a crash, never twice. Doing this twice writes nothing more.

    Nobody is asked when there is no (active) leader; the question stays in `cadence acks`.
    """
    found = _load_question(session, acknowledgement_id)
    if isinstance(found, Forwarded):
        log.info("question %d not forwarded: %s", acknowledgement_id, found.reason)
        return found
    manager = found.manager
    if manager is None or not manager.active:
        reason = "no team leader" if manager is None else f"team leader {manager.email} inactive"
        log.info(
            "question %d from %s not forwarded: %s (it stays in `cadence acks`)",
            acknowledgement_id,
            found.person.email,
            reason,
        )
        return Forwarded(acknowledgement_id, "nobody", reason=reason)
    root = session.get(Occurrence, found.ack.occurrence_id)
    assert root is not None  # _load_question checked
    key = {
        "message_id": root.message_id,
        "purpose": QUESTION_PURPOSE,
        "sequence": root.sequence,
        "zone": root.zone,
        # One occurrence per question: the acknowledgement that asked it.
        "follow_up": found.ack.id,
    }
    occurrence_id = notice_occurrence(
        session,
        key,
        now,
        f"question from {found.person.email}",
        parent_id=root.id,
        local_time=root.local_time,
    )
    channel = channels_for(manager.channel, list(QUESTION_CHANNELS), "first")[0]
    payload = {"acknowledgement_id": found.ack.id}
    notice_delivery(session, occurrence_id, manager.id, channel, payload, now)
    return Forwarded(acknowledgement_id, channel, manager.email)


def question_content(session: Session, delivery: Delivery) -> tuple[str, str, Person | None]:
    """Title, Markdown body and asker of a forwarded question's delivery."""
    ack_id = (delivery.payload or {}).get("acknowledgement_id")
    ack = session.get(Acknowledgement, ack_id) if ack_id is not None else None
    if ack is None:
        raise CadenceError(f"delivery {delivery.id} names no question")
    asker = session.get(Person, ack.person_id)
    title = delivery.occurrence.message.title
    name = asker.name if asker else "Someone"
    email = asker.email if asker else ""
    lines = [
        f"**{md_escape(name)}** ({md_escape(email)}) has a question about **{md_escape(title)}**:",
        "",
        quoted(ack.question or ""),
        "",
    ]
    if ack.clarity is not None:
        lines += [f"Clarity: {ack.clarity}/10", ""]
    lines.append(f"Reply to {md_escape(name)} directly.")
    return f"Question from {name}: {title}", "\n".join(lines), asker
