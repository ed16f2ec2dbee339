"""Messages that need attention: one message's fault is recorded on it, never shared.

A rule that raises while planning, an occurrence that cannot be written or a template that
fails while rendering must not stop anyone else's messages. The work for that one message
runs in a transaction of its own and is rolled back, the exception is logged with the
message id, and the message is marked with what went wrong, so its owner sees why it is not
being sent (`message list`, `message show`, the dashboard, the
`cadence_messages_needing_attention` metric).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from cadence.errors import CadenceError
from cadence.store.db import session_scope
from cadence.store.models import Message

log = logging.getLogger("cadence.messages.attention")
T = TypeVar("T")

# Enough to name the problem; a traceback belongs in the log, not on the message.
MAX_NOTE = 500


def describe(exc: BaseException) -> str:
    # A refusal of stored input (a rule that fails today's checks) already says what is
    # wrong; anything else is named by its type.
    text = str(exc) if isinstance(exc, CadenceError) else f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 1] + "…"


# What `isolated(..., "planning", ...)` writes first.
PLANNING_FAILED = "planning failed"


def flag(session: Session, message_id: int, problem: str, now: datetime) -> None:
    """Record `problem` on the message (the latest problem wins)."""
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(attention=problem[:MAX_NOTE], attention_at=now)
    )


def clear(message: Message) -> None:
    """An edit is the owner's answer to the problem: the next tick tries again."""
    message.attention = None
    message.attention_at = None


def isolated(
    sessions: sessionmaker[Session],
    message_id: int,
    doing: str,
    now: datetime,
    work: Callable[[Session], T],
    on_failure: Callable[[Session, str], None] | None = None,
) -> T | None:
    """Run `work` in a transaction of its own; if it raises, log it and flag the message.

    Returns what `work` returned, or None when it failed: the caller goes on with the next
    message. `on_failure` runs beside the flag (to set an occurrence aside, say). A database
    that is unreachable, locked, timed out or deadlocked is nobody's fault in particular:
    the work is only rolled back and logged, and the next tick tries it again.
    """
    try:
        with session_scope(sessions) as session:
            return work(session)
    except (OperationalError, InterfaceError, PoolTimeout, PendingRollbackError):
        log.warning("message %d: %s met a database problem; tried again later", message_id, doing)
        return None
    except Exception as exc:
        log.exception("message %d: %s failed", message_id, doing)
        problem = f"{doing} failed: {describe(exc)}"
    with session_scope(sessions) as session:
        flag(session, message_id, problem, now)
        if on_failure is not None:
            on_failure(session, problem)
    return None


def planning_failed_recently(since: datetime) -> ColumnElement[bool]:
    """Messages whose planning failed after `since`: not planned again until an edit or a
    later try (planning them every tick would only log the same exception)."""
    return and_(
        Message.attention.is_not(None),
        Message.attention_at.is_not(None),
        Message.attention.startswith(PLANNING_FAILED),
        Message.attention_at > since,
    )


def needing_attention(session: Session) -> int:
    """How many messages carry a problem (for the metric)."""
    return int(
        session.scalar(
            select(func.count()).select_from(Message).where(Message.attention.is_not(None))
        )
        or 0
    )
