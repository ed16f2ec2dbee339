"""Dashboard users: passwords, sign-in cookies on a controlled clock, scopes, and the CLI."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access.users import (
    HASHER,
    SESSION_LIFETIME,
    Role,
    SessionInvalid,
    authenticate,
    create_user,
    deactivate,
    issue_session,
    read_session,
    scope_for,
    update_user,
    viewer_of,
)
from cadence.errors import CadenceError, InputError
from cadence.store.models import User
from tests import factories as f
from tests.conftest import CliResult

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "test-secret-for-sign-in-cookies"
PASSWORD = "a long enough passphrase"


@pytest.fixture
def people(session: Session) -> dict[str, int]:
    boss = f.person(session, "boss@example.com")
    ann = f.person(session, "ann@example.com", manager=boss)
    session.commit()
    return {"boss": boss.id, "ann": ann.id}


def test_passwords_are_stored_as_argon2id_hashes(session: Session) -> None:
    user = create_user(session, " Comms@Example.com ", "comms", PASSWORD, NOW)
    assert user.email == "comms@example.com"
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert authenticate(session, "COMMS@example.com", PASSWORD) is user
    assert authenticate(session, "comms@example.com", PASSWORD + "!") is None
    assert authenticate(session, "nobody@example.com", PASSWORD) is None


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 12 characters"),
        ("eleven char", "at least 12 characters"),
        (" padded password ", "spaces"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_weak_passwords_are_refused(session: Session, password: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        create_user(session, "comms@example.com", "comms", password, NOW)


def test_a_hash_made_with_weaker_parameters_is_upgraded_at_sign_in(session: Session) -> None:
    user = create_user(session, "comms@example.com", "comms", PASSWORD, NOW)
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    session.flush()
    assert HASHER.check_needs_rehash(user.password_hash)
    assert authenticate(session, "comms@example.com", PASSWORD) is user
    assert not HASHER.check_needs_rehash(user.password_hash)
    assert authenticate(session, "comms@example.com", PASSWORD) is user


def test_leaders_are_linked_to_a_directory_person(session: Session, people: dict[str, int]) -> None:
    leader = create_user(session, "boss@example.com", "leader", PASSWORD, NOW)
    assert leader.person_id == people["boss"]
    other = create_user(
        session, "b@example.com", "leader", PASSWORD, NOW, person_email="Ann@example.com"
    )
    assert other.person_id == people["ann"]
    comms = create_user(session, "comms@example.com", "comms", PASSWORD, NOW)
    assert scope_for(leader) == people["boss"] and scope_for(comms) is None
    assert viewer_of(leader).scope == people["boss"] and viewer_of(comms).scope is None
    assert viewer_of(leader).role is Role.LEADER and viewer_of(leader).person_name == "Boss"

    with pytest.raises(InputError, match=re.escape("no person 'stranger@example.com'")):
        create_user(session, "stranger@example.com", "leader", PASSWORD, NOW)
    with pytest.raises(InputError, match="--person is for leaders"):
        create_user(
            session, "c2@example.com", "comms", PASSWORD, NOW, person_email="ann@example.com"
        )
    with pytest.raises(InputError, match="unknown role"):
        create_user(session, "c3@example.com", "admin", PASSWORD, NOW)
    with pytest.raises(InputError, match="already exists"):
        create_user(session, "COMMS@example.com", "comms", PASSWORD, NOW)
    with pytest.raises(InputError, match="invalid email"):
        create_user(session, "not-an-email", "comms", PASSWORD, NOW)

    demoted = update_user(session, "b@example.com", role="comms")
    assert demoted.person_id is None and scope_for(demoted) is None
    leader.person_id = None
    with pytest.raises(CadenceError, match="no tree"):
        scope_for(leader)


def test_sign_in_cookies_expire_after_eight_hours(session: Session) -> None:
    user = create_user(session, "comms@example.com", "comms", PASSWORD, NOW)
    cookie = issue_session(session, SECRET, user, NOW)
    assert read_session(session, SECRET, cookie, NOW) is user
    last = NOW + SESSION_LIFETIME
    assert read_session(session, SECRET, cookie, last) is user
    with pytest.raises(SessionInvalid, match="expired"):
        read_session(session, SECRET, cookie, last + timedelta(seconds=1))
    assert timedelta(hours=8) == SESSION_LIFETIME


def test_altered_or_foreign_cookies_are_refused(session: Session) -> None:
    user = create_user(session, "comms@example.com", "comms", PASSWORD, NOW)
    cookie = issue_session(session, SECRET, user, NOW)
    for bad in (cookie[:-2] + "xx", "", "garbage", cookie + "."):
        with pytest.raises(SessionInvalid):
            read_session(session, SECRET, bad, NOW)
    with pytest.raises(SessionInvalid):
        read_session(session, "another secret entirely", cookie, NOW)


def test_a_new_password_or_deactivation_signs_every_browser_out(session: Session) -> None:
    user = create_user(session, "comms@example.com", "comms", PASSWORD, NOW)
    old = issue_session(session, SECRET, user, NOW)
    update_user(session, "comms@example.com", password="a different passphrase")
    with pytest.raises(SessionInvalid):
        read_session(session, SECRET, old, NOW)
    fresh = issue_session(session, SECRET, user, NOW)
    assert read_session(session, SECRET, fresh, NOW) is user
    deactivate(session, "comms@example.com")
    with pytest.raises(SessionInvalid):
        read_session(session, SECRET, fresh, NOW)
    assert authenticate(session, "comms@example.com", "a different passphrase") is None


# ---------------------------------------------------------------------------------------
# The CLI


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return feed


def test_cli_add_list_disable(
    cli: Callable[..., CliResult],
    stdin: Callable[[str], None],
    session: Session,
    people: dict[str, int],
) -> None:
    stdin(PASSWORD + "\n")
    added = cli("user", "add", "comms@example.com", "--role", "comms", "--password-stdin")
    assert added.code == 0, added
    assert "added comms user comms@example.com" in added.out

    stdin(PASSWORD + "\n")  # not a terminal: read from stdin without the flag
    leader = cli(
        "user", "add", "lead@example.com", "--role", "leader", "--person", "boss@example.com"
    )
    assert leader.code == 0, leader
    assert "sees the tree of boss@example.com" in leader.out

    listed = cli("user", "list", "--format", "csv")
    assert listed.code == 0, listed
    assert listed.out.splitlines()[0] == "email,role,person,active,created_at"
    assert "comms@example.com,comms,,True," in listed.out
    assert "lead@example.com,leader,boss@example.com,True," in listed.out

    disabled = cli("user", "disable", "lead@example.com")
    assert disabled.code == 0 and "disabled lead@example.com" in disabled.out
    session.expire_all()
    user = session.scalars(select(User).where(User.email == "lead@example.com")).one()
    assert user.active is False
    assert authenticate(session, "lead@example.com", PASSWORD) is None

    stdin("another passphrase\n")
    changed = cli("user", "password", "comms@example.com", "--password-stdin")
    assert changed.code == 0, changed
    session.expire_all()
    assert authenticate(session, "comms@example.com", "another passphrase") is not None


@pytest.mark.parametrize(
    ("args", "given", "problem"),
    [
        (("add", "c@example.com", "--role", "comms"), "too short\n", "at least 12 characters"),
        (("add", "c@example.com", "--role", "comms"), "\n", "no password on standard input"),
        (("add", "l@example.com", "--role", "leader"), PASSWORD + "\n", "no person"),
        (
            ("add", "c@example.com", "--role", "comms", "--person", "boss@example.com"),
            PASSWORD + "\n",
            "--person is for leaders",
        ),
        (("disable", "nobody@example.com"), "", "no user 'nobody@example.com'"),
        (("add", "bad email", "--role", "comms"), PASSWORD + "\n", "invalid email"),
    ],
)
def test_cli_errors_exit_2_with_a_message(
    cli: Callable[..., CliResult],
    stdin: Callable[[str], None],
    people: dict[str, int],
    args: tuple[str, ...],
    given: str,
    problem: str,
) -> None:
    stdin(given)
    result = cli("user", *args)
    assert result.code == 2, result
    assert result.err.startswith("error: ") and problem in result.err
    assert "Traceback" not in result.err


def test_cli_unknown_role_is_a_usage_error(cli: Callable[..., CliResult]) -> None:
    result = cli("user", "add", "c@example.com", "--role", "admin")
    assert result.code == 2
    assert "admin" in result.err


def test_cli_duplicate_user(cli: Callable[..., CliResult], stdin: Callable[[str], None]) -> None:
    stdin(PASSWORD + "\n")
    assert cli("user", "add", "c@example.com", "--role", "comms").code == 0
    stdin(PASSWORD + "\n")
    again = cli("user", "add", "C@example.com", "--role", "comms")
    assert again.code == 2 and "already exists" in again.err


def test_cli_prompts_twice_at_a_terminal(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal(""))
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    mismatch = cli("user", "add", "c@example.com", "--role", "comms")
    assert mismatch.code == 2 and "do not match" in mismatch.err

    answers = iter([PASSWORD, PASSWORD])
    ok = cli("user", "add", "c@example.com", "--role", "comms")
    assert ok.code == 0, ok
    assert authenticate(session, "c@example.com", PASSWORD) is not None
