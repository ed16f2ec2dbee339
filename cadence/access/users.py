"""Dashboard users: who may sign in, with which password, and what each may see.

A comms user sees the whole organisation; a leader sees their own reporting tree (the
directory person they are linked to, and everyone below). Staff without a user see nothing.

Passwords are hashed with Argon2id (argon2-cffi) and rehashed on sign-in when the hashing
parameters have been raised since. A signed-in browser holds a signed cookie carrying a
random token; the server keeps the token's sha256 in `user_sessions` with an expiry.
Signing out deletes that row, and changing a password or deactivating a user deletes all of
the user's rows, so a copied cookie stops working everywhere at once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadSignature, Signer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cadence.errors import CadenceError, InputError
from cadence.store.models import Person, User, UserSession

MIN_PASSWORD_LENGTH = 12
# Long enough to hold a sentence-long passphrase, short enough that hashing stays cheap.
MAX_PASSWORD_LENGTH = 1024
SESSION_LIFETIME = timedelta(hours=8)
SESSION_SALT = "cadence-dashboard-session"

HASHER = PasswordHasher()


class Role(StrEnum):
    COMMS = "comms"
    LEADER = "leader"


@dataclass(frozen=True)
class Viewer:
    """A signed-in user as the web pages need them, detached from any database session."""

    user_id: int
    email: str
    role: Role
    person_id: int | None
    person_name: str | None

    @property
    def scope(self) -> int | None:
        """The person whose tree this viewer may see; None means everything, and a leader
        without a linked person gets 0, whose tree is empty (see cadence.access.policy)."""
        if self.role is Role.COMMS:
            return None
        return self.person_id if self.person_id is not None else 0


@cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs as long as a
    wrong password and sign-in timing does not reveal who has an account."""
    return HASHER.hash("cadence-no-such-user-placeholder")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _checked_email(email: str) -> str:
    email = normalise_email(email)
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InputError(f"invalid email {email!r}: {exc}") from None
    return email


def _role(role: str) -> Role:
    try:
        return Role(role.strip().lower())
    except ValueError:
        raise InputError(f"unknown role {role!r} (one of: comms, leader)") from None


def check_password(password: str) -> None:
    """Refuse passwords too short to resist guessing (length beats composition rules)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters long")
    if password != password.strip():
        raise InputError("the password must not start or end with spaces")


def hash_password(password: str) -> str:
    check_password(password)
    return HASHER.hash(password)


def _leader_person(session: Session, person_email: str | None) -> Person:
    if not person_email:
        raise InputError("a leader must be linked to their directory entry: give --person EMAIL")
    email = normalise_email(person_email)
    person = session.scalars(select(Person).where(Person.email == email)).one_or_none()
    if person is None:
        raise InputError(f"no person {email!r} in the directory")
    if not person.active:
        raise InputError(f"{email!r} is no longer active in the directory")
    return person


def get_user(session: Session, email: str) -> User:
    email = normalise_email(email)
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is None:
        raise InputError(f"no user {email!r}")
    return user


def create_user(
    session: Session,
    email: str,
    role: str,
    password: str,
    now: datetime,
    *,
    person_email: str | None = None,
) -> User:
    """Add a user. A leader is linked to a directory person, whose tree is what they see."""
    email = _checked_email(email)
    chosen = _role(role)
    if session.scalars(select(User.id).where(User.email == email)).first() is not None:
        raise InputError(f"a user {email!r} already exists")
    person: Person | None = None
    if chosen is Role.LEADER:
        person = _leader_person(session, person_email or email)
    elif person_email:
        raise InputError("--person is for leaders: a comms user sees everyone")
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=chosen.value,
        person_id=person.id if person else None,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session,
    email: str,
    *,
    role: str | None = None,
    person_email: str | None = None,
    password: str | None = None,
    active: bool | None = None,
) -> User:
    """Change a user; a new password, or deactivating, signs out every browser."""
    user = get_user(session, email)
    chosen = _role(role) if role is not None else Role(user.role)
    if chosen is Role.LEADER:
        if person_email is not None or user.person_id is None:
            user.person_id = _leader_person(session, person_email or user.email).id
    else:
        if person_email:
            raise InputError("--person is for leaders: a comms user sees everyone")
        user.person_id = None
    user.role = chosen.value
    if password is not None:
        user.password_hash = hash_password(password)
        end_sessions_of(session, user)
    if active is not None:
        user.active = active
        if not active:
            end_sessions_of(session, user)
    session.flush()
    return user


def new_user_problems(
    session: Session, email: str, role: str, password: str, person_email: str | None = None
) -> dict[str, str]:
    """Every problem `create_user` would refuse, keyed by what was wrong ("email", "role",
    "person", "password"), so a form can show each next to its field at once."""
    problems: dict[str, str] = {}

    def check(key: str, step: Callable[[], object]) -> None:
        try:
            step()
        except InputError as exc:
            problems[key] = exc.summary

    check("email", lambda: _checked_email(email))
    if (
        "email" not in problems
        and session.scalars(select(User.id).where(User.email == normalise_email(email))).first()
    ):
        problems["email"] = f"a user {normalise_email(email)!r} already exists"
    check("role", lambda: _role(role))
    if "role" not in problems:
        if _role(role) is Role.LEADER and (person_email or "email" not in problems):
            check("person", lambda: _leader_person(session, person_email or email))
            if "person" in problems and not person_email:
                problems["person"] += ": give the leader's email in the staff directory"
        elif person_email:
            problems["person"] = "only a leader is linked to a person: a comms user sees everyone"
    check("password", lambda: check_password(password))
    return problems


def temporary_password() -> str:
    """A random password for someone to sign in with once and pass on: 20 characters of
    URL-safe base64 (120 bits), long past `MIN_PASSWORD_LENGTH`."""
    return secrets.token_urlsafe(15)


def set_active(session: Session, actor: User, email: str, active: bool) -> User:
    """Enable or disable a user on behalf of `actor`, who may not disable themselves, nor
    the last active comms user (no one would be left to enable anyone again)."""
    user = get_user(session, email)
    if not active:
        if user.id == actor.id:
            raise InputError("you cannot disable yourself: ask another comms user")
        if user.role == Role.COMMS.value and user.active:
            others = session.scalars(
                select(User.id).where(
                    User.role == Role.COMMS.value, User.active.is_(True), User.id != user.id
                )
            ).first()
            if others is None:
                raise InputError(f"{user.email} is the last active comms user")
    return update_user(session, email, active=active)


def deactivate(session: Session, email: str) -> User:
    """Stop a user signing in; their cookies stop working on the next request. Never
    deleted, so what they queued or approved still names them."""
    return update_user(session, email, active=False)


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (whichever part was wrong).

    Upgrades the stored hash when the hashing parameters have been raised since it was made.
    """
    user = session.scalars(select(User).where(User.email == normalise_email(email))).one_or_none()
    stored = user.password_hash if user is not None else None
    if len(password) > MAX_PASSWORD_LENGTH:
        return None
    try:
        HASHER.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or stored is None or not user.active:
        return None
    if HASHER.check_needs_rehash(stored):
        user.password_hash = HASHER.hash(password)
        session.flush()
    return user


def scope_for(user: User) -> int | None:
    """Whose tree a user may see: None (everything) for comms, their own person for a leader.

    A leader without a linked person cannot exist through `create_user`; one made some other
    way is refused rather than shown everything.
    """
    if user.role == Role.COMMS.value:
        return None
    if user.role == Role.LEADER.value and user.person_id is not None:
        return user.person_id
    raise CadenceError(f"user {user.email!r} has no tree to see")


def viewer_of(user: User) -> Viewer:
    return Viewer(
        user_id=user.id,
        email=user.email,
        role=Role(user.role),
        person_id=scope_for(user),
        person_name=user.person.name if user.person is not None else None,
    )


def list_users(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(User, Person.email)
        .outerjoin(Person, User.person_id == Person.id)
        .order_by(User.email)
    )
    return [
        {
            "email": user.email,
            "role": user.role,
            "person": person_email,
            "active": user.active,
            "created_at": user.created_at.isoformat(timespec="seconds"),
        }
        for user, person_email in rows
    ]


def _signer(secret: str) -> Signer:
    if not secret:
        raise CadenceError("no secret key set for signing sign-in cookies")
    return Signer(secret, salt=SESSION_SALT)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_session(session: Session, secret: str, user: User, now: datetime) -> str:
    """Start a session for `user`, good for SESSION_LIFETIME from `now`; returns the cookie.

    The cookie is a random token, signed so that a forged one is refused without a query;
    only the token's hash is stored, so a copy of the table signs nobody in. The user's
    expired sessions are removed on the way (through the user_id index).
    """
    session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at < now)
    )
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            user_id=user.id,
            token_hash=_token_hash(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return _signer(secret).sign(token).decode()


class SessionInvalid(CadenceError):
    """A sign-in cookie that no longer signs anyone in: expired, altered, or ended."""


def _token_of(secret: str, cookie: str) -> str:
    try:
        return _signer(secret).unsign(cookie).decode()
    except BadSignature:
        raise SessionInvalid("please sign in") from None


def read_session(session: Session, secret: str, cookie: str, now: datetime) -> User:
    """The user a sign-in cookie names, if its session is stored, unexpired and the user
    still active: one lookup by the token hash's unique index."""
    token = _token_of(secret, cookie)
    found = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == _token_hash(token))
    ).one_or_none()
    if found is None:
        raise SessionInvalid("please sign in")
    stored, user = found
    if stored.expires_at < now:
        raise SessionInvalid("your session has expired: please sign in again")
    if not user.active:
        raise SessionInvalid("please sign in")
    return user


def end_session(session: Session, secret: str, cookie: str) -> None:
    """Sign out: the cookie's session is deleted, so a copy of the cookie stops working."""
    try:
        token = _token_of(secret, cookie)
    except SessionInvalid:
        return
    session.execute(delete(UserSession).where(UserSession.token_hash == _token_hash(token)))


def end_sessions_of(session: Session, user: User) -> None:
    """Sign a user out everywhere (a new password, a deactivated user)."""
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))


__all__ = [
    "MIN_PASSWORD_LENGTH",
    "SESSION_LIFETIME",
    "Role",
    "SessionInvalid",
    "Viewer",
    "authenticate",
    "check_password",
    "create_user",
    "deactivate",
    "end_session",
    "end_sessions_of",
    "get_user",
    "hash_password",
    "issue_session",
    "list_users",
    "new_user_problems",
    "read_session",
    "scope_for",
    "set_active",
    "temporary_password",
    "update_user",
    "viewer_of",
]
