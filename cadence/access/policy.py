"""The one access policy: what a viewer may see and whom they may target.

Every page, CSV export, API endpoint, calendar feed and figure asks here, and so does the
dispatcher when a leader's message falls due. The rules:

- a comms user sees and targets everyone;
- a leader sees and targets their tree: the person linked to their user and everyone below
  them in the reporting tree. A leader user with no linked person has an empty tree and so
  sees nothing (never everything);
- a leader may look at a message's figures when it was meant for, or delivered to, someone
  in their tree (or they queued it); its definition (audience, wordings, calendar entries)
  only when they queued it or its whole audience lies in their tree;
- whatever is shown to a leader (head-counts, audience descriptions, refusals) counts and
  names only people in their tree: "not in your tree" is all a refusal says about others;
- teams are resolved when each occurrence is sent, so a leader's message is checked against
  the sender's tree again then: people outside it are left out (`sender_limit`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, false, func, select
from sqlalchemy.orm import Session

from cadence.access.users import Role, Viewer
from cadence.directory.audience import Audience, audience_filter, build_audience, tree_of
from cadence.errors import InputError
from cadence.store.bulk import chunks
from cadence.store.models import Delivery, Message, Occurrence, Person, Team, User

#: No person has id 0 (ids start at 1), so its tree is empty: the figures' scope for a leader
#: without a linked person.
NOBODY = 0
NOT_IN_TREE = "not in your tree"


class NotInTree(InputError):
    """A leader named someone outside their tree. Says which name, never who or how many
    are behind it."""


# ---------------------------------------------------------------------------------------
# Whose tree


def sees_everything(viewer: Viewer) -> bool:
    return viewer.role is Role.COMMS


def tree_root(viewer: Viewer) -> int | None:
    """The person whose tree bounds this viewer: None for comms (no bound), NOBODY for a
    leader without a linked person."""
    if sees_everything(viewer):
        return None
    return viewer.person_id if viewer.person_id is not None else NOBODY


def figure_scope(viewer: Viewer) -> int | None:
    """`Filters.scope_person_id` for this viewer's figures."""
    return tree_root(viewer)


def _tree(viewer: Viewer) -> Select[tuple[int]] | None:
    root = tree_root(viewer)
    return None if root is None else tree_of(root)


def in_tree(viewer: Viewer, person_id: Any) -> ColumnElement[bool] | None:
    """A WHERE clause keeping people (by an id column) in the viewer's tree; None = all."""
    tree = _tree(viewer)
    return None if tree is None else person_id.in_(tree)


def tree_ids(session: Session, viewer: Viewer) -> set[int] | None:
    """The ids of the viewer's tree, or None for comms (everyone)."""
    tree = _tree(viewer)
    return None if tree is None else set(session.scalars(tree))


def tree_emails(session: Session, viewer: Viewer, emails: Iterable[str]) -> set[str]:
    """Those of `emails` this viewer may see."""
    wanted = set(emails)
    tree = _tree(viewer)
    if tree is None or not wanted:
        return wanted
    found: set[str] = set()
    for batch in chunks(sorted(wanted)):
        found.update(
            session.scalars(
                select(Person.email).where(Person.email.in_(batch), Person.id.in_(tree))
            )
        )
    return found


# ---------------------------------------------------------------------------------------
# What a viewer may see


def _delivered_to_tree(message_id: Any, tree: Select[tuple[int]]) -> Any:
    """SQL: someone in the tree was sent (or planned) something of this message."""
    return exists().where(
        Occurrence.message_id == message_id,
        Delivery.occurrence_id == Occurrence.id,
        Delivery.person_id.in_(tree),
    )


def _audience_reaches(session: Session, message: Message, tree: Select[tuple[int]]) -> bool:
    audience = audience_filter(Audience.from_json(message.audience or {}))
    return bool(session.scalar(select(exists().where(audience, Person.id.in_(tree)))))


def can_see_message(session: Session, viewer: Viewer, message: Message) -> bool:
    """May the viewer see this message's figures (within their tree)?"""
    tree = _tree(viewer)
    if tree is None or message.created_by_id == viewer.user_id:
        return True
    if session.scalar(select(_delivered_to_tree(message.id, tree))):
        return True
    return _audience_reaches(session, message, tree)


def visible_messages(session: Session, viewer: Viewer) -> list[tuple[int, str]]:
    """(id, title) of the messages whose figures the viewer may see, newest first."""
    messages = session.scalars(select(Message).order_by(Message.id.desc())).all()
    tree = _tree(viewer)
    if tree is None:
        return [(m.id, m.title) for m in messages]
    reached = set(session.scalars(select(Message.id).where(_delivered_to_tree(Message.id, tree))))
    return [
        (m.id, m.title)
        for m in messages
        if m.id in reached
        or m.created_by_id == viewer.user_id
        or _audience_reaches(session, m, tree)
    ]


def needing_attention(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
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


def can_read_definition(session: Session, viewer: Viewer, message: Message) -> bool:
    """May the viewer read the message itself (audience, wordings, calendar entries)?"""
    if sees_everything(viewer) or message.created_by_id == viewer.user_id:
        return True
    return not outside(session, viewer, Audience.from_json(message.audience or {}))


def can_change_message(viewer: Viewer, message: Message) -> bool:
    """May the viewer edit, pause, resume or cancel this message? Comms may change any; a
    leader only what they queued (which can only address their own tree)."""
    if sees_everything(viewer):
        return True
    return message.created_by_id is not None and message.created_by_id == viewer.user_id


def visible_teams(session: Session, viewer: Viewer) -> list[str]:
    """Team paths the viewer may see: for a leader, those with someone of their tree."""
    tree = _tree(viewer)
    if tree is None:
        return list(session.scalars(select(Team.path).order_by(Team.path)))
    return list(
        session.scalars(
            select(Team.path)
            .join(Person, Person.team_id == Team.id)
            .where(Person.id.in_(tree))
            .distinct()
            .order_by(Team.path)
        )
    )


def left_out_total(session: Session, message_id: int) -> int:
    """People a leader's message left out at send time, over all its occurrences."""
    total = session.scalar(
        select(func.coalesce(func.sum(Occurrence.outside_tree), 0)).where(
            Occurrence.message_id == message_id
        )
    )
    return int(total or 0)


def left_out(session: Session, viewer: Viewer, message_id: int) -> int | None:
    """`left_out_total` for comms users; None for a leader, to whom the count would say how
    many people outside their tree are in a team."""
    return left_out_total(session, message_id) if sees_everything(viewer) else None


def describe_audience(session: Session, viewer: Viewer, audience: Audience) -> str:
    """The audience in words; for a leader, only the head-count of it in their tree."""
    tree = _tree(viewer)
    if tree is None:
        return audience.describe()
    n = session.scalar(
        select(func.count())
        .select_from(Person)
        .where(audience_filter(audience), Person.id.in_(tree))
    )
    count = int(n or 0)
    return f"{count} {'person' if count == 1 else 'people'} in your tree"


# ---------------------------------------------------------------------------------------
# Whom a viewer may target


def outside(session: Session, viewer: Viewer, audience: Audience) -> list[str]:
    """What of `audience` lies outside the viewer's tree, one line each, naming only what
    the viewer wrote (never how many people, or who, are behind it)."""
    tree = _tree(viewer)
    if tree is None:
        return []
    found: list[str] = []
    if audience.everyone:
        found.append(f"everyone: {NOT_IN_TREE}")
    for path in audience.teams:
        beyond = audience_filter(Audience(teams=(path,))) & Person.id.not_in(tree)
        known = session.scalar(select(Team.id).where(Team.path == path))
        if known is None or session.scalar(select(exists().where(beyond))):
            found.append(f"team {path!r}: {NOT_IN_TREE}")
    named = [*audience.people, *audience.trees]
    inside = set(
        session.scalars(select(Person.email).where(Person.email.in_(named), Person.id.in_(tree)))
    )
    found += [f"person {p}: {NOT_IN_TREE}" for p in audience.people if p not in inside]
    found += [f"tree of {m}: {NOT_IN_TREE}" for m in audience.trees if m not in inside]
    return found


def require_targets(session: Session, viewer: Viewer, audience: Audience) -> None:
    found = outside(session, viewer, audience)
    if found:
        raise NotInTree("the audience reaches outside your reporting tree", found)


def audience_for(
    session: Session,
    viewer: Viewer,
    *,
    everyone: bool,
    teams: list[str],
    people: list[str],
    trees: list[str],
) -> Audience:
    """`build_audience` for this viewer. A leader's names are checked against the tree
    first, so an unknown name and a name in another tree get the same answer."""
    if not sees_everything(viewer):
        require_targets(
            session,
            viewer,
            Audience(
                everyone,
                tuple(t.strip().strip("/") for t in teams),
                tuple(p.strip().lower() for p in people),
                tuple(m.strip().lower() for m in trees),
            ),
        )
    return build_audience(session, everyone=everyone, teams=teams, people=people, trees=trees)


# ---------------------------------------------------------------------------------------
# At send time


def sender_limit(session: Session, message: Message) -> ColumnElement[bool] | None:
    """A WHERE clause over Person keeping those the message's author may reach now, or
    None when nothing limits it (a comms user's message, or one from the CLI)."""
    if message.created_by_id is None:
        return None
    author = session.get(User, message.created_by_id)
    if author is None or author.role == Role.COMMS.value:
        return None
    if author.person_id is None:
        return false()
    return Person.id.in_(tree_of(author.person_id))


def viewer_for(user: User) -> Viewer:
    """A user as the policy sees them; never refuses (a leader without a person sees
    nothing, which the policy already says)."""
    return Viewer(
        user_id=user.id,
        email=user.email,
        role=Role(user.role),
        person_id=user.person_id,
        person_name=user.person.name if user.person is not None else None,
    )
