"""Telling the author of a held message what comms decided, through the outbox.

When a comms user approves or rejects a leader's message, its author hears of it on
their own channel (Slack or email, the other as fallback): an occurrence of purpose
"decision" with one delivery to the author, sent by the tick like every other delivery
(recorded first, paced, retried, never twice). A message is decided once, so it has at
most one such occurrence and one delivery; telling again writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.errors import CadenceError
from cadence.messages.approvals import REJECTED, decision_of
from cadence.messages.channel_choice import channels_for
from cadence.messages.markdown import md_escape
from cadence.messages.notices import notice_delivery, notice_occurrence, quoted
from cadence.store.models import (
    Delivery,
    Message,
    Person,
    User,
)

log = logging.getLogger("cadence.messages.decisions")

DECISION_PURPOSE = "decision"
DECISION_CHANNELS = ("slack", "email")
# The worker's task that writes the notice, queued by the web app after a decision.
DECISION_TASK = "cadence.tell_decision"


@dataclass(frozen=True)
class Told:
    """Where the decision went: `via` is slack, email or nobody; `to` the author's address."""

    message_id: int
    via: str
    to: str | None = None
    reason: str | None = None


def _author_person(session: Session, message: Message) -> tuple[User | None, Person | None]:
    author = session.get(User, message.created_by_id) if message.created_by_id else None
    if author is None:
        return None, None
    person = author.person or session.scalar(select(Person).where(Person.email == author.email))
    return author, person


def tell_author(session: Session, message_id: int, now: datetime) -> Told:
    """Put the decision on `message_id` in the outbox for the user who queued it. Nobody is
    told when it is undecided, was queued without a user (the CLI), or the author is not
    an active person in the directory; the decision still shows on their dashboard."""
    message = session.get(Message, message_id)
    if message is None:
        return Told(message_id, "nobody", reason="no such message")
    decision = decision_of(session, message)
    if decision is None:
        return Told(message_id, "nobody", reason="not decided")
    author, person = _author_person(session, message)
    if author is None:
        return Told(message_id, "nobody", reason="queued without a user")
    if person is None or not person.active:
        log.info("decision on message %d not sent: %s has no active person", message_id,
                 author.email)  # fmt: skip
        return Told(message_id, "nobody", author.email, reason="the author is not in the directory")
    key = {
        "message_id": message.id,
        "purpose": DECISION_PURPOSE,
        "sequence": 0,
        "zone": "UTC",
        "follow_up": 0,
    }
    occurrence_id = notice_occurrence(
        session,
        key,
        now,
        f"{decision.kind} by {decision.by}, told to {author.email}",
        local_time=now.replace(tzinfo=None),
    )
    already = session.scalar(
        select(Delivery.channel).where(Delivery.occurrence_id == occurrence_id).limit(1)
    )
    if already is not None:
        return Told(message_id, already, person.email, reason="already told")
    channel = channels_for(person.channel, list(DECISION_CHANNELS), "first")[0]
    payload = {"decision": decision.kind, "by": decision.by, "reason": decision.reason}
    notice_delivery(session, occurrence_id, person.id, channel, payload, now)
    return Told(message_id, channel, person.email)


def decision_content(delivery: Delivery, base_url: str) -> tuple[str, str]:
    """Title and Markdown body of a decision notice."""
    payload = delivery.payload or {}
    kind = payload.get("decision")
    if kind not in ("approved", REJECTED):
        raise CadenceError(f"delivery {delivery.id} names no decision")
    message = delivery.occurrence.message
    title = md_escape(message.title)
    by = md_escape(str(payload.get("by") or "comms"))
    link = f"{base_url.rstrip('/')}/dashboard/messages/{message.id}"
    if kind == "approved":
        lines = [
            f"**{by}** approved your message **{title}**.",
            "",
            "It is active now and goes out on its schedule.",
        ]
        heading = f"Approved: {message.title}"
    else:
        reason = str(payload.get("reason") or "")
        lines = [
            f"**{by}** did not approve your message **{title}**. Their reason:",
            "",
            quoted(reason),
            "",
            "Nothing was sent. Change it and queue it again when it is ready.",
        ]
        heading = f"Not approved: {message.title}"
    lines += ["", f"[Open it in Cadence]({link})"]
    return heading, "\n".join(lines)
