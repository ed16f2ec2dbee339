"""Drafts: core messages saved from the compose page to be finished later.

A draft is stored like any message (so it can be opened and previewed again) but with the
status `draft`, which the planner, the calendar and the dispatcher never act on. Only its
author opens or changes it; submitting it goes through the same approval step as a new
message, so a leader's draft waits for comms when approval is required.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cadence.errors import InputError
from cadence.messages import approvals
from cadence.messages.core import (
    CoreMessageSpec,
    _replace_wordings,
    add_core_message,
    get_message,
    validate_spec,
)
from cadence.store.models import Cadence, Message, MessageKind, MessageStatus, User


class NoDraft(InputError):
    """No draft of this author's has that id (someone else's, or no longer a draft)."""


def get_draft(session: Session, message_id: int, author_id: int) -> Message:
    """The author's own draft; anyone else's, or a message that is no longer a draft, is
    answered as if it did not exist."""
    try:
        message = get_message(session, message_id)
    except InputError:
        raise NoDraft(f"no draft with id {message_id}") from None
    if (
        message.status != MessageStatus.DRAFT.value
        or message.kind != MessageKind.CORE.value
        or message.created_by_id != author_id
    ):
        raise NoDraft(f"no draft with id {message_id}")
    return message


def save_draft(
    session: Session, spec: CoreMessageSpec, author: User, now: datetime, draft_id: int | None
) -> Message:
    """Store the definition as a draft: a new one, or over the author's draft `draft_id`.
    Checked exactly like a message to be sent, so a draft can always be submitted as is."""
    problems = validate_spec(spec)
    if problems:
        raise InputError("draft refused:", problems)
    if draft_id is None:
        message = add_core_message(session, spec, now, status=MessageStatus.DRAFT)
        message.created_by_id = author.id
    else:
        message = get_draft(session, draft_id, author.id)
        _overwrite(message, spec, now)
    session.flush()
    return message


def submit_message(
    session: Session, spec: CoreMessageSpec, author: User, now: datetime, draft_id: int | None
) -> Message:
    """Store the message (or turn the author's draft into it) and submit it: active at
    once, or held for comms approval when the author is a leader and approval is required."""
    problems = validate_spec(spec)
    if problems:
        raise InputError("message refused:", problems)
    if draft_id is None:
        message = add_core_message(session, spec, now)
    else:
        message = get_draft(session, draft_id, author.id)
        _overwrite(message, spec, now)
        message.status = MessageStatus.ACTIVE.value
        message.created_at = now  # it is queued now, which is what approvals list by
    return approvals.submit(session, message, author, now)


def _overwrite(message: Message, spec: CoreMessageSpec, now: datetime) -> None:
    message.title = spec.title.strip()
    message.body = spec.body
    message.audience = spec.audience.to_json()
    message.channels = list(dict.fromkeys(spec.channels))
    message.channel_mode = spec.channel_mode
    message.remind_after_hours = spec.remind_after_hours
    message.max_reminders = spec.max_reminders
    message.escalate = spec.escalate
    message.updated_at = now
    _replace_wordings(message, spec.variants)
    rule = spec.cadence.rrule.strip().removeprefix("RRULE:").upper()
    if message.cadence is None:
        message.cadence = Cadence(rrule=rule, start_local=spec.cadence.start)
    cad = message.cadence
    cad.rrule, cad.start_local = rule, spec.cadence.start
    cad.end_date, cad.timezone = spec.cadence.end_date, spec.cadence.timezone
    cad.planned_until = None
