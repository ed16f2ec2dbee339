"""Comms approval of what leaders queue.

Some organisations want the comms team to see every message before it reaches staff. With
`require_approval_for_leaders` on, a message or launch a leader creates is stored as
`awaiting_approval`: the planner and the launch release only look at `active` messages, so
nothing is planned or sent until a comms user approves it. A launch is checked again at
approval, since the time left before customers hear shrinks while it waits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cadence.errors import CadenceError, InputError
from cadence.launches.cascade import LaunchContext, get_launch, launch_occurrence, plan
from cadence.messages.core import cancel, get_message
from cadence.planning.launch_timeline import problems
from cadence.store.models import Message, MessageKind, MessageStatus, OrgSetting, User

log = logging.getLogger("cadence.messages.approvals")

REQUIRE_APPROVAL_FOR_LEADERS = "require_approval_for_leaders"
COMMS = "comms"
LEADER = "leader"
MAX_REASON = 2000
REJECTED = "rejected"
_REJECTED_BY = "rejected by "


class NotAllowed(CadenceError):
    """The user's role does not allow this (only comms users approve and set policy)."""


class NotPending(InputError):
    """The message is not waiting for approval (already approved, rejected or never held)."""


def require_comms(user: User, action: str) -> None:
    if user.role != COMMS or not user.active:
        raise NotAllowed(f"only comms users can {action}")


def requires_approval(session: Session) -> bool:
    """Whether leaders' messages wait for comms approval; off until a comms user turns it on."""
    row = session.get(OrgSetting, REQUIRE_APPROVAL_FOR_LEADERS)
    return bool(row.value) if row is not None else False


def set_requires_approval(session: Session, user: User, value: bool, now: datetime) -> bool:
    """Turn approval of leaders' messages on or off. Messages already waiting keep waiting."""
    require_comms(user, "change whether leaders' messages need approval")
    row = session.get(OrgSetting, REQUIRE_APPROVAL_FOR_LEADERS)
    if row is None:
        session.add(OrgSetting(key=REQUIRE_APPROVAL_FOR_LEADERS, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now
    session.flush()
    log.info("%s set %s to %s", user.email, REQUIRE_APPROVAL_FOR_LEADERS, value)
    return value


def submit(session: Session, message: Message, author: User, now: datetime) -> Message:
    """Record who queued a just-created message, and hold it if it needs approval.

    Called in the same transaction as the creation, so the dispatcher never sees it active.
    """
    message.created_by_id = author.id
    if author.role != COMMS and requires_approval(session):
        message.status = MessageStatus.AWAITING_APPROVAL.value
        message.updated_at = now
    session.flush()
    return message


def pending(session: Session, author_id: int | None = None) -> list[Message]:
    """Messages waiting for approval, oldest first; only `author_id`'s when given."""
    stmt = (
        select(Message)
        .options(selectinload(Message.cadence), selectinload(Message.variants))
        .where(Message.status == MessageStatus.AWAITING_APPROVAL.value)
        .order_by(Message.created_at, Message.id)
    )
    if author_id is not None:
        stmt = stmt.where(Message.created_by_id == author_id)
    return list(session.scalars(stmt))


def _held(session: Session, message_id: int) -> Message:
    message = get_message(session, message_id)
    if message.status != MessageStatus.AWAITING_APPROVAL.value:
        raise NotPending(f"message {message_id} is not awaiting approval: it is {message.status}")
    return message


def approve(
    session: Session, message_id: int, user: User, now: datetime, ctx: LaunchContext
) -> Message:
    """Make a held message active. A core message is planned from now on (repetitions that
    fell due while it waited are not sent); a launch is planned from now and refused if it
    can no longer reach everyone before customers hear."""
    require_comms(user, "approve messages")
    message = _held(session, message_id)
    if message.kind == MessageKind.LAUNCH.value:
        _replan_launch(session, message, now, ctx)
    elif message.cadence is not None:
        message.cadence.planned_until = None
    message.status = MessageStatus.ACTIVE.value
    message.approved_by_id = user.id
    message.updated_at = now
    session.flush()
    log.info("%s approved message %s", user.email, message_id)
    return message


def _replan_launch(session: Session, message: Message, now: datetime, ctx: LaunchContext) -> None:
    _, launch = get_launch(session, message.id)
    if launch.customer_at <= now:
        raise InputError(
            "approval refused: customers have already been told "
            f"(the customer time was {launch.customer_at.isoformat()})"
        )
    earlier = launch.planned_from
    launch.planned_from = now
    timeline = plan(session, message, launch, ctx)
    found = problems(timeline) if timeline.releases else ["nobody is in its audience any more"]
    if found:
        launch.planned_from = earlier
        raise InputError("approval refused: staff would not all have it before customers", found)
    first = timeline.releases[0].release_at
    occurrence = launch_occurrence(session, message.id)
    occurrence.due_at = first
    occurrence.local_time = first.replace(tzinfo=None)


def reject(session: Session, message_id: int, user: User, now: datetime, reason: str) -> Message:
    """Cancel a held message. Nobody has been sent anything, so nobody needs telling."""
    require_comms(user, "reject messages")
    text = reason.strip()
    if not text:
        raise InputError("a reason is required, so the author knows what to change")
    if len(text) > MAX_REASON:
        raise InputError(f"the reason is longer than {MAX_REASON} characters")
    _held(session, message_id)
    message, _, _ = cancel(session, message_id, now)
    message.status_note = f"{_REJECTED_BY}{user.email}: {text}"
    session.flush()
    log.info("%s rejected message %s: %s", user.email, message_id, text)
    return message


@dataclass(frozen=True)
class Decision:
    """What comms decided about a held message: `approved` or `rejected`, by whom, why."""

    kind: str
    by: str
    reason: str | None = None


def decision_of(session: Session, message: Message) -> Decision | None:
    """The decision on a message that waited for approval; None when it never waited or
    still waits. A rejection is a cancellation whose note `reject` wrote."""
    note = message.status_note or ""
    if message.status == MessageStatus.CANCELLED.value and note.startswith(_REJECTED_BY):
        by, _, reason = note.removeprefix(_REJECTED_BY).partition(": ")
        return Decision(REJECTED, by, reason)
    if message.approved_by_id is not None:
        approver = session.get(User, message.approved_by_id)
        return Decision("approved", approver.email if approver else "a comms user")
    return None


def shown_status(message: Message) -> str:
    """The status as people name it: a rejected message is `rejected`, not `cancelled`."""
    note = message.status_note or ""
    if message.status == MessageStatus.CANCELLED.value and note.startswith(_REJECTED_BY):
        return REJECTED
    return message.status
