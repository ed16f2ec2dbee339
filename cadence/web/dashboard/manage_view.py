"""What the messages list and the managing pages show: statuses in words, who queued a
message, its next send, the actions a viewer may take, and the decision on a held one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.errors import InputError
from cadence.messages.approvals import REJECTED, Decision, decision_of, shown_status
from cadence.messages.preview import upcoming_sends
from cadence.store.models import (
    Message,
    MessageKind,
    MessageStatus,
    Occurrence,
    OccurrenceStatus,
    User,
)
from cadence.web.dashboard.tables import Present

# The statuses offered in the filter, in the order a message usually goes through them;
# any other status found in the database is offered after these, as it is named there.
KNOWN_STATUSES = (
    "draft",
    MessageStatus.AWAITING_APPROVAL.value,
    MessageStatus.ACTIVE.value,
    MessageStatus.PAUSED.value,
    REJECTED,
    MessageStatus.CANCELLED.value,
)
LABELS = {
    "draft": "Draft",
    MessageStatus.AWAITING_APPROVAL.value: "Awaiting approval",
    MessageStatus.ACTIVE.value: "Active",
    MessageStatus.PAUSED.value: "Paused",
    REJECTED: "Rejected",
    MessageStatus.CANCELLED.value: "Cancelled",
}
ACTIONS = ("pause", "resume", "cancel")


def status_label(status: str) -> str:
    """A status in words; one this page does not know yet is shown as it is spelled."""
    return LABELS.get(status) or status.replace("_", " ").capitalize()


def css_status(status: str) -> str:
    """A class name for the status pill: letters and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in status.lower())


def allowed_actions(message: Message) -> list[str]:
    """What may be done to a message in its status, in the order buttons are shown."""
    found = []
    if message.status != MessageStatus.CANCELLED.value and message.kind != MessageKind.LAUNCH.value:
        found.append("edit")
    if message.status == MessageStatus.ACTIVE.value:
        found.append("pause")
    if message.status == MessageStatus.PAUSED.value:
        found.append("resume")
    if message.status != MessageStatus.CANCELLED.value:
        found.append("cancel")
    return found


@dataclass(frozen=True)
class Row:
    id: int
    title: str
    kind: str
    status: str
    label: str
    pill: str
    author: str
    next_send: str
    actions: list[str]
    decision: Decision | None


def authors(session: Session, messages: list[Message]) -> dict[int, str]:
    ids = {m.created_by_id for m in messages if m.created_by_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())


def author_of(names: dict[int, str], message: Message) -> str:
    if message.created_by_id is None:
        return "the command line"
    return names.get(message.created_by_id, "a removed user")


def next_sends(
    session: Session, messages: list[Message], org_zone: str, now: datetime
) -> dict[int, datetime]:
    """The next planned send of each message; for one not planned yet (it waits for the
    next tick, or for approval), the first its cadence would make from now."""
    ids = [m.id for m in messages]
    found: dict[int, datetime] = {}
    if ids:
        found = dict(
            session.execute(
                select(Occurrence.message_id, func.min(Occurrence.due_at))
                .where(
                    Occurrence.message_id.in_(ids),
                    Occurrence.status == OccurrenceStatus.PLANNED.value,
                )
                .group_by(Occurrence.message_id)
            ).all()
        )
    waiting = (
        MessageStatus.ACTIVE.value,
        MessageStatus.AWAITING_APPROVAL.value,
        "draft",
    )
    for message in messages:
        if message.id in found or message.status not in waiting or message.cadence is None:
            continue
        try:
            upcoming = upcoming_sends(session, message, org_zone, now, 1)
        except InputError:
            continue  # nobody in its audience, or a rule that no longer parses
        if upcoming:
            found[message.id] = upcoming[0].at
    return found


def next_send_text(message: Message, at: datetime | None, present: Present, now: datetime) -> str:
    if message.status == MessageStatus.PAUSED.value:
        return "paused"
    if message.status == MessageStatus.CANCELLED.value or at is None:
        return "\u2013"
    if at <= now:
        # Its time has come: the next tick sends it (a launch releases tier by tier).
        return "under way" if message.kind == MessageKind.LAUNCH.value else "due now"
    text = present.brief(at)
    if message.status != MessageStatus.ACTIVE.value:
        text += " if approved" if message.status == MessageStatus.AWAITING_APPROVAL.value else ""
    return text


def rows_for(
    session: Session,
    viewer: Viewer,
    messages: list[Message],
    org_zone: str,
    now: datetime,
    present: Present,
) -> list[Row]:
    names = authors(session, messages)
    sends = next_sends(session, messages, org_zone, now)
    rows = []
    for message in messages:
        status = shown_status(message)
        rows.append(
            Row(
                id=message.id,
                title=message.title,
                kind=message.kind,
                status=status,
                label=status_label(status),
                pill=css_status(status),
                author=author_of(names, message),
                next_send=next_send_text(message, sends.get(message.id), present, now),
                actions=(
                    allowed_actions(message) if policy.can_change_message(viewer, message) else []
                ),
                decision=decision_of(session, message),
            )
        )
    return rows


@dataclass(frozen=True)
class MessageManagement:
    """What the message page adds about managing it: the decision and the actions."""

    status: str
    label: str
    pill: str
    decision: Decision | None
    actions: list[str]


def management_of(session: Session, viewer: Viewer, message: Message) -> MessageManagement:
    status = shown_status(message)
    return MessageManagement(
        status,
        status_label(status),
        css_status(status),
        decision_of(session, message),
        allowed_actions(message) if policy.can_change_message(viewer, message) else [],
    )
