"""Bearer tokens for the HTTP API.

A token is shown once, when it is made, and only its SHA-256 is stored: a copy of the
database is then no use to anyone wanting to call the API. A plain (unsalted) hash is
enough because the token itself is 256 random bits, not a password someone chose.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from cadence.errors import InputError
from cadence.store.models import ApiToken, User

TOKEN_PREFIX = "cad_"
# A personal calendar feed is a token under this name that reads only the feed, so that
# `cadence token list` shows it and revoking it is the same as for any token.
FEED_TOKEN_NAME = "calendar feed"
API_SCOPE = "api"  # the whole API, as the token's user
FEED_SCOPE = "calendar"  # only the user's iCalendar feed
SCOPES = (API_SCOPE, FEED_SCOPE)
MAX_NAME = 100
# Recording every use would turn each API read into a write; a minute is precise enough
# to tell a token in use from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def find_user(session: Session, email: str) -> User:
    """The user with `email`, or an InputError telling how to create one."""
    address = email.strip().lower()
    user = session.scalar(select(User).where(User.email == address))
    if user is None:
        raise InputError(
            f"no user {address}: create it first with `cadence user add` "
            "(a user is who signs in to the dashboard or the API)"
        )
    return user


def create_token(
    session: Session, user: User, name: str, now: datetime, scope: str = API_SCOPE
) -> tuple[ApiToken, str]:
    """A new token for `user`. Returns the row and the token itself, which is not stored."""
    label = name.strip()
    problems = []
    if scope not in SCOPES:
        problems.append(f"unknown token scope {scope!r} (known: {', '.join(SCOPES)})")
    if not label:
        problems.append("the token name is empty (name it after where it is used)")
    elif len(label) > MAX_NAME:
        problems.append(f"the token name is longer than {MAX_NAME} characters")
    if not user.active:
        problems.append(f"user {user.email} is disabled")
    if problems:
        raise InputError("token refused:", problems)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=label,
        token_hash=hash_token(token),
        created_at=now,
        revoked=False,
        scope=scope,
    )
    session.add(row)
    session.flush()
    return row, token


def resolve(session: Session, token: str, now: datetime, *, feed: bool = False) -> User | None:
    """The active user a token acts as; None for an unknown, revoked or disabled one, and
    for a feed token anywhere but the calendar feed (`feed=True`)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_hash == hash_token(token))
    )
    if row is None or row.revoked or not row.user.active:
        return None
    if row.scope != API_SCOPE and not (feed and row.scope == FEED_SCOPE):
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row.user


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    """Every token, or only `user`'s (a person managing their own tokens)."""
    stmt = select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id)
    if user is not None:
        stmt = stmt.where(ApiToken.user_id == user.id)
    return list(session.scalars(stmt))


def revoke(session: Session, token_id: int, owner: User | None = None) -> ApiToken:
    """Stop a token working at once. The row is kept so `token list` shows what it was.

    With `owner`, only that user's tokens: another user's token is answered as unknown,
    so nobody learns which ids exist."""
    row = session.get(ApiToken, token_id)
    if row is None or (owner is not None and row.user_id != owner.id):
        raise InputError(f"no API token with id {token_id}")
    if row.revoked:
        raise InputError(f"API token {token_id} is already revoked")
    row.revoked = True
    session.flush()
    return row


def feed_tokens(session: Session, user: User) -> list[ApiToken]:
    """The user's calendar feed tokens still working (normally none or one)."""
    return [t for t in list_tokens(session, user) if t.scope == FEED_SCOPE and not t.revoked]


def replace_feed_token(session: Session, user: User, now: datetime) -> tuple[ApiToken, str]:
    """A new calendar feed token for `user`; any earlier one stops working, so a person
    has one feed link at a time and making a new one is how a leaked link is replaced."""
    for old in feed_tokens(session, user):
        old.revoked = True
    return create_token(session, user, FEED_TOKEN_NAME, now, scope=FEED_SCOPE)
