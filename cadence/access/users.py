"""Dashboard users: who may sign in, with which password, and what each may see.

A comms user sees the whole organisation; a leader sees their own reporting tree (the
directory person they are linked to, and everyone below). Staff without a user see nothing.

Passwords are hashed with Argon2id (argon2-cffi) and rehashed on sign-in when the hashing
parameters have been raised since. A signed-in browser holds a signed, expiring cookie
naming the user and a fingerprint of their current password hash: changing a password
therefore signs out every other browser, and deactivating a user refuses their cookie on the
next request, without a sessions table.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.errors import CadenceError, InputError
from cadence.store.models import Person, User

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
    """Change a user; a new password signs out every browser signed in with the old one."""
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
    if active is not None:
        user.active = active
    session.flush()
    return user


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


class _ClockedSigner(TimestampSigner):
    """itsdangerous's timestamp signer, reading the time from Cadence's clock so expiry can
    be tested (and follows the same `now` as everything else)."""

    def __init__(self, *args: Any, now: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return int(self._now().timestamp())


def _serializer(secret: str, now: datetime) -> URLSafeTimedSerializer:
    if not secret:
        raise CadenceError("no secret key set for signing sign-in cookies")
    return URLSafeTimedSerializer(
        secret, salt=SESSION_SALT, signer=_ClockedSigner, signer_kwargs={"now": lambda: now}
    )


def _fingerprint(secret: str, password_hash: str | None) -> str:
    """Changes whenever the password does (every hash has a fresh salt); reveals nothing."""
    message = f"cadence-session:{password_hash or ''}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:24]


def issue_session(secret: str, user: User, now: datetime) -> str:
    """The value of a sign-in cookie for `user`, good for SESSION_LIFETIME from `now`."""
    return _serializer(secret, now).dumps([user.id, _fingerprint(secret, user.password_hash)])


class SessionInvalid(CadenceError):
    """A sign-in cookie that no longer signs anyone in: expired, altered, or outdated."""


def read_session(session: Session, secret: str, cookie: str, now: datetime) -> User:
    """The user a sign-in cookie names, if it is genuine, unexpired and still current."""
    try:
        payload = _serializer(secret, now).loads(
            cookie, max_age=int(SESSION_LIFETIME.total_seconds())
        )
    except SignatureExpired:
        raise SessionInvalid("your session has expired: please sign in again") from None
    except BadSignature:
        raise SessionInvalid("please sign in") from None
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or type(payload[0]) is not int
        or not isinstance(payload[1], str)
    ):
        raise SessionInvalid("please sign in")
    user = session.get(User, payload[0])
    if (
        user is None
        or not user.active
        or not hmac.compare_digest(payload[1], _fingerprint(secret, user.password_hash))
    ):
        raise SessionInvalid("please sign in")
    return user


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
    "get_user",
    "hash_password",
    "issue_session",
    "list_users",
    "read_session",
    "scope_for",
    "update_user",
    "viewer_of",
]
