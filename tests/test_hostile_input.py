"""Hostile input on the command line: each is exit 2 with a sentence on stderr, never a
traceback, and nothing stored or half-changed."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.errors import InputError
from cadence.inputs import (
    MAX_DEPTH,
    MAX_ID,
    MAX_PEOPLE,
    MAX_TEAMS,
    MAX_TREES,
    check_zone_name,
    load_json,
    parse_day,
    parse_id,
)
from cadence.store.models import Message, Person
from tests.conftest import CliResult
from tests.test_cli_messages import add_args, seed_people

Cli = Callable[..., CliResult]


def refused(result: CliResult, sentence: str) -> None:
    assert result.code == 2, result
    # Rich draws usage errors in a box: read the sentence without its borders.
    text = " ".join(re.sub("[\u2500-\u257f]", " ", result.err).split())
    assert sentence in text, result.err
    assert "Traceback" not in result.err + result.out


def count(session: Session, model: type[Message] | type[Person]) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    "args",
    [
        ["message", "show", "99999999999999999999"],
        ["message", "show", "\u00b2"],
        ["message", "show", "0"],
        ["message", "pause", "\u0661\u0662"],
        ["launch", "cancel", "2147483648"],
        ["acks", "--message", "99999999999999999999"],
        ["report", "--message", "99999999999999999999"],
        ["token", "revoke", "99999999999999999999"],
    ],
)
def test_ids_outside_the_database_range_are_refused(cli: Cli, args: list[str]) -> None:
    refused(cli(*args), "is not an id (a whole number from 1 to 2147483647)")


def test_far_dates_and_long_zones_are_refused(cli: Cli, session: Session) -> None:
    seed_people(session)
    refused(cli("report", "--until", "9999-12-31"), "--until 9999-12-31 is outside 2000-01-01")
    refused(cli("report", "--since", "\u0662026-01-01"), "is not a date (YYYY-MM-DD)")

    def preview(start: str, zone: str) -> CliResult:
        rule = ["--rrule", "FREQ=DAILY", "--count", "2"]
        return cli("schedule", "preview", *rule, "--start", start, "--tz", zone)

    refused(preview("2026-01-01T09:00", "A" * 5000), "is too long (at most 64 characters)")
    refused(preview("2026-01-01T09:00", "Europe/../UTC"), "an IANA name has only")
    refused(preview("9999-12-31T09:00", "America/New_York"), "start 9999-12-31 is outside")
    refused(cli(*add_args("--team", "Support", "--tz", "../../etc/passwd")), "an IANA name")
    refused(cli(*add_args("--team", "Support", "--end", "9999-12-31")), "--end 9999-12-31")
    assert count(session, Message) == 0


def test_a_long_zone_setting_is_refused(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENCE_TIMEZONE", "Europe/" + "x" * 5000)
    refused(cli("directory", "list"), "CADENCE_TIMEZONE")


def test_long_audiences_are_refused_naming_the_limit(cli: Cli, session: Session) -> None:
    seed_people(session)
    teams = [arg for i in range(500) for arg in ("--team", f"T{i}")]
    refused(cli(*add_args(*teams)), f"too many teams: 500 given, at most {MAX_TEAMS}")
    trees = [arg for i in range(101) for arg in ("--tree", f"m{i}@example.com")]
    refused(cli(*add_args(*trees)), f"too many trees: 101 given, at most {MAX_TREES}")
    people = [arg for i in range(1001) for arg in ("--person", f"p{i}@example.com")]
    refused(cli(*add_args(*people)), f"too many people: 1,001 given, at most {MAX_PEOPLE:,}")
    assert count(session, Message) == 0


def test_control_characters_and_nul_are_refused(cli: Cli, session: Session, tmp_path: Path) -> None:
    seed_people(session)
    for title in ["Own\r\nthe outcome", "Own\tit", "Own\x7fit", "Own\x1bit"]:
        args = add_args("--team", "Support")
        args[args.index("--title") + 1] = title
        refused(cli(*args), "title contains a control character")
    body = tmp_path / "body.md"
    body.write_text("Fix the\x00 problem.\n", encoding="utf-8")
    args = [a for a in add_args("--team", "Support") if a not in ("--body", "Fix the problem.")]
    refused(cli(*args, "--body-file", str(body)), "body contains a NUL character")
    launch = ["launch", "add", "--title", "New plan", "--body", "Tell them.", "--customer-copy",
              "It is here.", "--customer-at", "2026-06-01T09:00", "--tz", "UTC", "--team",
              "Support"]  # fmt: skip
    refused(cli(*launch, "--lead", "nan"), "must be finite numbers")
    refused(cli(*launch, "--talking-points", "one\x00two"), "talking points contains a NUL")
    assert count(session, Message) == 0


GOOD = """\
people:
  - email: boss@example.com
    name: Boss
    team: Support
  - email: agent@example.com
    name: Agent
    manager_email: boss@example.com
"""


def people(session: Session) -> list[tuple[str, str, bool]]:
    session.expire_all()
    rows = session.execute(select(Person.email, Person.name, Person.active).order_by(Person.id))
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_deep_or_broken_directory_files_leave_the_good_import_intact(
    cli: Cli, session: Session, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    assert cli("directory", "import", str(good)).code == 0
    before = people(session)
    assert len(before) == 2

    deep = tmp_path / "deep.yaml"
    deep.write_text(GOOD + "  - email: " + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(cli("directory", "import", "--full", str(deep)), f"nested more than {MAX_DEPTH}")
    nested = tmp_path / "nested.yml"
    nested.write_text("people:\n" + "".join("  " * i + "- \n" for i in range(1, 5000)))
    refused(cli("directory", "import", "--full", str(nested)), "levels deep")
    as_json = tmp_path / "deep-json.yaml"
    as_json.write_text('{"people": ' + "{" * 50 + "}" * 50 + "}")
    refused(cli("directory", "import", str(as_json)), "levels deep")
    nul_yaml = tmp_path / "nul.yaml"
    nul_yaml.write_text(GOOD.replace("Agent", "Ag\x00ent"))
    refused(cli("directory", "import", "--full", str(nul_yaml)), "not valid YAML")
    nul_csv = tmp_path / "nul.csv"
    nul_csv.write_text("email,name\nboss@example.com,Bo\x00ss\n")
    assert cli("directory", "import", "--full", str(nul_csv)).code == 2
    crlf = tmp_path / "crlf.yaml"
    crlf.write_text(GOOD.replace("name: Agent", 'name: "Ag\\r\\nent"'))
    refused(cli("directory", "import", str(crlf)), "name contains a control character")

    assert people(session) == before


def test_long_in_lists_are_sent_in_slices(session: Session) -> None:
    """More names than SQLite takes parameters in one statement (32,766 by default, 250,000
    in Debian's build) still work."""
    from cadence.access.policy import tree_emails
    from cadence.access.users import Role, Viewer
    from cadence.store.bulk import IN_CHUNK, chunks

    seed_people(session)
    lead = session.scalars(select(Person.id).where(Person.email == "lead@example.com")).one()
    asked = [f"p{i}@example.com" for i in range(250_001)] + ["agent@example.com"]
    leader = Viewer(
        user_id=1, email="lead@example.com", role=Role.LEADER, person_id=lead, person_name=None
    )
    assert tree_emails(session, leader, asked) == {"agent@example.com"}
    assert [len(c) for c in chunks(range(2 * IN_CHUNK + 1))] == [IN_CHUNK, IN_CHUNK, 1]


@given(st.text(max_size=30))
def test_the_readers_raise_only_input_errors(text: str) -> None:
    """Whatever text comes in, the readers answer with a value or an InputError."""
    for read in (parse_id, parse_day, check_zone_name, load_json):
        with contextlib.suppress(InputError):
            read(text)


@given(st.integers())
def test_parse_id_takes_exactly_the_database_range(number: int) -> None:
    if 1 <= number <= MAX_ID:
        assert parse_id(str(number)) == number
    else:
        with pytest.raises(InputError, match="is not an id"):
            parse_id(str(number))


@pytest.mark.parametrize("text", ["\u00b2", "\u0661", "+1", " 1", "1_000", "0x10", "1.0"])
def test_parse_id_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(InputError):
        parse_id(text)
