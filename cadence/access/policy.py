"""The one access policy: what a viewer may see. Comms users see everything; a leader sees
what reached (or was meant for) someone in their own reporting tree, and no one outside it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cadence.access.users import Viewer
from cadence.directory.audience import Audience, audience_filter, tree_of
from cadence.store.bulk import chunks
from cadence.store.models import (
    Delivery,
    Message,
    Occurrence,
    Person,
    Team,
)

# ---------------------------------------------------------------------------------------
# What a viewer may see


def _delivered_to_tree(message_id: Any, scope: int) -> Any:
    """SQL: someone in the tree was sent (or planned) something of this message. Asked
    occurrence by occurrence, so it stops at the first delivery it finds."""
    return exists().where(
        Occurrence.message_id == message_id,
        Delivery.occurrence_id == Occurrence.id,
        Delivery.person_id.in_(tree_of(scope)),
    )


def _audience_reaches(session: Session, message: Message, scope: int) -> bool:
    audience = audience_filter(Audience.from_json(message.audience or {}))
    return bool(session.scalar(select(exists().where(audience, Person.id.in_(tree_of(scope))))))


def visible_messages(session: Session, viewer: Viewer) -> list[tuple[int, str]]:
    """(id, title) of the messages a viewer may look at, newest first: all of them for
    comms, and for a leader those whose audience or deliveries include their tree."""
    messages = session.scalars(select(Message).order_by(Message.id.desc())).all()
    scope = viewer.scope
    if scope is None:
        return [(m.id, m.title) for m in messages]
    reached = set(session.scalars(select(Message.id).where(_delivered_to_tree(Message.id, scope))))
    return [
        (m.id, m.title) for m in messages if m.id in reached or _audience_reaches(session, m, scope)
    ]


def _needing_attention(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
    """Messages the viewer may see that are flagged (see cadence.messages.attention)."""
    flagged = {
        m.id: m
        for m in session.scalars(select(Message).where(Message.attention.is_not(None))).all()
    }
    if not flagged:
        return []
    return [
        {"id": mid, "title": title, "problem": flagged[mid].attention}
        for mid, title in visible_messages(session, viewer)
        if mid in flagged
    ]


def can_see_message(session: Session, viewer: Viewer, message: Message) -> bool:
    scope = viewer.scope
    if scope is None:
        return True
    delivered = session.scalar(select(_delivered_to_tree(message.id, scope)))
    return bool(delivered) or _audience_reaches(session, message, scope)


def visible_teams(session: Session, viewer: Viewer) -> list[str]:
    if viewer.scope is None:
        return list(session.scalars(select(Team.path).order_by(Team.path)))
    return list(
        session.scalars(
            select(Team.path)
            .join(Person, Person.team_id == Team.id)
            .where(Person.id.in_(tree_of(viewer.scope)))
            .distinct()
            .order_by(Team.path)
        )
    )


def _tree_emails(session: Session, scope: int | None, emails: Iterable[str]) -> set[str]:
    wanted = set(emails)
    if scope is None or not wanted:
        return wanted
    found: set[str] = set()
    for batch in chunks(sorted(wanted)):
        found.update(
            session.scalars(
                select(Person.email).where(Person.email.in_(batch), Person.id.in_(tree_of(scope)))
            )
        )
    return found
