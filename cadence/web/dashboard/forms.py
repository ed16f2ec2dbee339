"""What the dashboard's form pages share when they answer: the signed-in user's own row,
and a domain problem ("the password must ...") written as a sentence next to its field."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cadence.access.users import Viewer
from cadence.store.models import User


def sentence(text: str) -> str:
    """A domain problem as a sentence on a page: capitalised, one full stop."""
    text = text.rstrip(".")
    return text[:1].upper() + text[1:] + "." if text else text


def sentences(problems: list[str]) -> str:
    """Several problems as one line of sentences."""
    return " ".join(sentence(p) for p in problems)


def account(session: Session, viewer: Viewer) -> User:
    """The signed-in viewer's own user row."""
    user = session.get(User, viewer.user_id)
    assert user is not None  # the viewer was read from this user's session
    return user
