"""The staff directory: reading files, validating them, importing them, reading them back."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from cadence.directory.files import parse_directory
from cadence.directory.people import (
    DirectoryRow,
    StoredPerson,
    import_directory,
    list_people,
    validate,
)
from cadence.errors import InputError
from cadence.store.models import Person, Team

HEADER = "email,name,team,manager_email,slack_user_id,timezone,channel\n"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows_from(tmp_path: Path, body: str) -> list[DirectoryRow]:
    return parse_directory(write(tmp_path, HEADER + body))


def people_table(session: Session) -> list[tuple[Any, ...]]:
    """Every stored column of every person, for before/after comparisons."""
    session.expire_all()
    columns = [c for c in Person.__table__.columns]
    return [tuple(r) for r in session.execute(select(*columns).order_by(Person.id))]


def by_email(session: Session) -> dict[str, Person]:
    session.expire_all()
    return {p.email: p for p in session.scalars(select(Person))}


def do_import(
    session: Session, tmp_path: Path, body: str, *, full: bool = False, now: datetime = T0
) -> Any:
    result = import_directory(session, rows_from(tmp_path, body), full=full, now=now)
    session.commit()
    return result


ORG = (
    "head@example.com,Hana Head,Support,,UHEAD,Europe/London,\n"
    "emea@example.com,Emil Lead,Support/EMEA,head@example.com,,Europe/London,\n"
    "amer@example.com,Ana Lead,Support/Americas,head@example.com,,America/New_York,\n"
    "e1@example.com,Eve One,Support/EMEA,emea@example.com,,,slack\n"
    "e2@example.com,Ed Two,Support/EMEA,emea@example.com,,,\n"
    "a1@example.com,Al One,Support/Americas,amer@example.com,,America/New_York,email\n"
)


# --- reading files -------------------------------------------------------------------------


def test_csv_rows_are_cleaned_and_numbered_by_file_line(tmp_path: Path) -> None:
    text = (
        HEADER
        + "  Ann@Example.COM , Ann Example ,Support / EMEA, Boss@Example.com ,U1,"
        + " Europe/London , Slack \n"
        + "\n"
        + 'bob@example.com,"Bob\nWith a two-line name",,,,,\n'
        + "carol@example.com,Carol,,,,,\n"
    )
    rows = parse_directory(write(tmp_path, text))
    assert [r.where for r in rows] == ["row 2", "row 4", "row 6"]
    ann = rows[0]
    assert ann == DirectoryRow(
        where="row 2",
        email="ann@example.com",
        name="Ann Example",
        team="Support/EMEA",
        manager_email="boss@example.com",
        slack_user_id="U1",
        timezone="Europe/London",
        channel="slack",
    )
    assert rows[2].team is rows[2].manager_email is rows[2].timezone is rows[2].channel is None


def test_csv_header_is_case_insensitive_and_optional_columns_may_be_left_out(
    tmp_path: Path,
) -> None:
    rows = parse_directory(write(tmp_path, "\ufeffName,EMAIL\nAnn,ann@example.com\n"))
    assert rows == [DirectoryRow(where="row 2", email="ann@example.com", name="Ann")]


def test_csv_header_problems_name_the_columns(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        parse_directory(write(tmp_path, "email,boss,desk\nann@example.com,x,y\n"))
    text = str(err.value)
    assert "unknown columns: boss, desk" in text
    assert "missing required columns: name" in text


def test_csv_value_under_a_column_without_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        parse_directory(
            write(tmp_path, "email,name,\nann@example.com,Ann,\nbob@example.com,Bob,x\n")
        )
    assert err.value.problems == ["row 3: value 'x' in column 3, which has no header"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.csv", None, "no such file"),
        ("people.txt", "email,name\n", "unsupported file type '.txt'"),
        ("people.csv", "", "empty file"),
        ("people.csv", "email,name\n\n", "no people in the file"),
        ("people.yaml", "", "no people in the file"),
        ("people.yaml", "people: [\n", "not valid YAML: line 2"),
        ("people.yaml", "just text", "expected a list of people"),
        ("people.yaml", "staff: []", "unknown keys: staff"),
    ],
)
def test_unreadable_files_are_refused_with_a_clear_message(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        parse_directory(path)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(HEADER.encode() + "zoë@example.com,Zoë,,,,,\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        parse_directory(path)


def test_yaml_list_and_people_mapping_read_like_csv(tmp_path: Path) -> None:
    listed = write(
        tmp_path,
        "- email: Ann@Example.com\n  name: Ann\n  team: Support/EMEA\n  manager_email: null\n"
        "- {email: bob@example.com, name: Bob, manager_email: ann@example.com, channel: email}\n",
        "a.yaml",
    )
    mapped = write(
        tmp_path,
        "people:\n"
        "  - email: Ann@Example.com\n    name: Ann\n    team: Support/EMEA\n"
        "  - email: bob@example.com\n    name: Bob\n    manager_email: ann@example.com\n"
        "    channel: email\n",
        "b.yml",
    )
    csv_file = write(
        tmp_path,
        HEADER + "Ann@Example.com,Ann,Support/EMEA,,,,\n"
        "bob@example.com,Bob,,ann@example.com,,,email\n",
    )
    strip = [
        (r.email, r.name, r.team, r.manager_email, r.channel) for r in parse_directory(csv_file)
    ]
    for path in (listed, mapped):
        rows = parse_directory(path)
        assert [r.where for r in rows] == ["entry 1", "entry 2"]
        assert [(r.email, r.name, r.team, r.manager_email, r.channel) for r in rows] == strip


def test_yaml_entries_with_unknown_fields_or_non_text_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "- email: ann@example.com\n  name: Ann\n  nickname: A\n"
        "- email: bob@example.com\n  name: [Bob]\n"
        "- just a string\n",
        "people.yaml",
    )
    with pytest.raises(InputError) as err:
        parse_directory(path)
    problems = err.value.problems
    assert any(p.startswith("entry 1: unknown fields: nickname") for p in problems)
    assert "entry 2: name must be text, got a list" in problems
    assert "entry 3: expected a mapping of fields, got str" in problems


_cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"))
    | st.sampled_from([",", '"', "\n", "\r", " "]),
    max_size=20,
)


def _physical_lines(text: str) -> int:
    """Lines as the CSV reader counts them (\n, \r and \r\n all end one)."""
    return len(io.StringIO(text, newline="").readlines())


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_cell.filter(lambda s: s.strip() != ""), min_size=1, max_size=8))
def test_csv_round_trip_keeps_values_and_counts_lines(tmp_path: Path, names: list[str]) -> None:
    """Whatever a spreadsheet quotes, each row keeps its values and the line it starts on."""
    records = [[f"Person{i}@Example.com", name, ""] for i, name in enumerate(names)]
    pieces = []
    for record in [["email", "name", "team"], *records]:
        buffer = io.StringIO(newline="")
        csv.writer(buffer).writerow(record)
        pieces.append(buffer.getvalue())
    path = tmp_path / "round-trip.csv"
    path.write_bytes("".join(pieces).encode("utf-8"))

    rows = parse_directory(path)

    assert [r.email for r in rows] == [f"person{i}@example.com" for i in range(len(names))]
    assert [r.name for r in rows] == [n.strip() for n in names]
    assert all(r.team is None for r in rows)
    starts = [1 + sum(_physical_lines(p) for p in pieces[:i]) for i in range(1, len(pieces))]
    assert [r.where for r in rows] == [f"row {n}" for n in starts]


# --- validation ----------------------------------------------------------------------------


def row(number: int, email: str, manager: str | None = None, **fields: str) -> DirectoryRow:
    values: dict[str, Any] = {"name": email.split("@")[0].title(), **fields}
    return DirectoryRow(where=f"row {number}", email=email, manager_email=manager, **values)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (row(2, "not-an-email"), "row 2 (not-an-email): invalid email 'not-an-email'"),
        (row(2, "", name="Nobody"), "row 2: email is missing"),
        (row(2, "ann@example.com", name=""), "row 2 (ann@example.com): name is missing"),
        (
            row(2, "ann@example.com", "ghost@example.com"),
            "row 2 (ann@example.com): unknown manager ghost@example.com",
        ),
        (row(2, "ann@example.com", "ann@example.com"), "row 2 (ann@example.com): is their own"),
        (
            row(2, "ann@example.com", timezone="Europe/Londn"),
            "row 2 (ann@example.com): unknown time zone 'Europe/Londn'",
        ),
        (
            row(2, "ann@example.com", channel="pigeon"),
            "row 2 (ann@example.com): unknown channel 'pigeon'",
        ),
        (row(2, "ann@example.com", team="Support//EMEA"), "bad team 'Support//EMEA'"),
        (row(2, "ann@example.com", team="/Support"), "bad team '/Support'"),
        (row(2, "ann@example.com", team="x" * 101), "longer than 100 characters"),
        (row(2, "ann@example.com", team="/".join(["abcdefghij"] * 20)), "longer than 200"),
        (row(2, "ann@example.com", slack_user_id="U 1"), "bad Slack user id 'U 1'"),
        (row(2, "ann@example.com", name="Ann\nSmith"), "name contains a control character"),
    ],
)
def test_each_kind_of_bad_row_is_named(bad: DirectoryRow, expected: str) -> None:
    good = row(3, "zed@example.com")
    problems = validate([bad, good], {})
    assert len(problems) == 1, problems
    assert problems[0].startswith("row 2")
    assert expected in problems[0]


def test_duplicate_email_names_both_rows() -> None:
    problems = validate(
        [row(2, "ann@example.com"), row(3, "x@example.com"), row(7, "ann@example.com")]
    )
    assert problems == ["row 7 (ann@example.com): duplicate email, already on row 2"]


def test_every_problem_is_reported_in_file_order() -> None:
    rows = [
        row(2, "a@example.com", "c@example.com", timezone="Nowhere/Town"),
        row(3, "b@example.com", channel="fax"),
        row(4, "c@example.com", "a@example.com"),
        row(5, "d@example.com", "nobody@example.com"),
    ]
    problems = validate(rows)
    assert [p.split(":")[0] for p in problems] == [
        "row 2 (a@example.com)",
        "row 2 (a@example.com)",
        "row 3 (b@example.com)",
        "row 5 (d@example.com)",
    ]
    assert (
        "manager cycle: a@example.com (row 2) -> c@example.com (row 4) -> a@example.com"
        in (problems[1])
    )


def test_a_manager_later_in_the_file_or_already_stored_is_fine() -> None:
    stored = {"boss@example.com": StoredPerson("boss@example.com", None, True)}
    rows = [
        row(2, "ann@example.com", "lead@example.com"),
        row(3, "lead@example.com", "boss@example.com"),
    ]
    assert validate(rows, stored) == []


def test_cycle_through_stored_people_is_found() -> None:
    stored = {
        "top@example.com": StoredPerson("top@example.com", None, True),
        "mid@example.com": StoredPerson("mid@example.com", "top@example.com", True),
        "low@example.com": StoredPerson("low@example.com", "mid@example.com", True),
    }
    problems = validate([row(2, "top@example.com", "low@example.com")], stored)
    assert problems == [
        "row 2 (top@example.com): manager cycle: top@example.com (row 2) -> "
        "low@example.com (stored) -> mid@example.com (stored) -> top@example.com (row 2)"
    ]


def test_full_import_may_not_drop_a_manager_and_partial_may_not_use_an_inactive_one() -> None:
    rows = [row(2, "ann@example.com", "boss@example.com")]
    active = {"boss@example.com": StoredPerson("boss@example.com", None, True)}
    inactive = {"boss@example.com": StoredPerson("boss@example.com", None, False)}
    assert validate(rows, active) == []
    assert "full import would deactivate" in validate(rows, active, full=True)[0]
    assert "is inactive" in validate(rows, inactive)[0]


# --- importing -----------------------------------------------------------------------------


def test_import_creates_people_nested_teams_and_manager_links(
    session: Session, tmp_path: Path
) -> None:
    # Reports come before their managers in this file.
    reordered = "".join(reversed(ORG.splitlines(keepends=True)))
    result = do_import(session, tmp_path, reordered)
    assert (result.created, result.updated, result.unchanged, result.deactivated) == (6, 0, 0, 0)
    assert result.teams_created == 3

    teams = {t.path: t for t in session.scalars(select(Team))}
    assert sorted(teams) == ["Support", "Support/Americas", "Support/EMEA"]
    assert teams["Support"].parent_id is None
    assert teams["Support/EMEA"].parent_id == teams["Support"].id
    assert teams["Support/EMEA"].name == "EMEA"

    people = by_email(session)
    assert people["e1@example.com"].manager_id == people["emea@example.com"].id
    assert people["emea@example.com"].manager_id == people["head@example.com"].id
    assert people["head@example.com"].manager_id is None
    assert people["e2@example.com"].timezone is None  # org default zone
    assert people["e1@example.com"].channel == "slack"
    assert all(p.active and p.created_at == T0 == p.updated_at for p in people.values())


def test_teams_are_created_once(session: Session, tmp_path: Path) -> None:
    do_import(session, tmp_path, ORG)
    again = do_import(session, tmp_path, ORG + "x@example.com,X,Support/EMEA/Nights,,,,\n")
    assert again.teams_created == 1
    paths = list(session.scalars(select(Team.path).order_by(Team.path)))
    assert paths == ["Support", "Support/Americas", "Support/EMEA", "Support/EMEA/Nights"]
    nights = session.scalars(select(Team).where(Team.path == "Support/EMEA/Nights")).one()
    emea = session.scalars(select(Team).where(Team.path == "Support/EMEA")).one()
    assert nights.parent_id == emea.id


def test_reimport_updates_by_email_and_leaves_the_rest_alone(
    session: Session, tmp_path: Path
) -> None:
    do_import(session, tmp_path, ORG)
    before = by_email(session)
    later = T0 + timedelta(days=1)
    # Ed moves to the Americas, under Ana, with a Slack id; emails match whatever their case.
    changed = ORG.replace(
        "e2@example.com,Ed Two,Support/EMEA,emea@example.com,,,",
        "E2@EXAMPLE.COM,Ed Two,Support/Americas,AMER@example.com,U0ED,America/New_York,",
    )
    result = do_import(session, tmp_path, changed, now=later)
    assert (result.created, result.updated, result.unchanged, result.deactivated) == (0, 1, 5, 0)

    after = by_email(session)
    assert set(after) == set(before)
    ed = after["e2@example.com"]
    assert ed.id == before["e2@example.com"].id
    assert ed.manager_id == after["amer@example.com"].id
    assert ed.team is not None and ed.team.path == "Support/Americas"
    assert (ed.slack_user_id, ed.timezone) == ("U0ED", "America/New_York")
    assert (ed.created_at, ed.updated_at) == (T0, later)
    assert after["e1@example.com"].updated_at == T0


def test_empty_cells_clear_optional_fields_on_reimport(session: Session, tmp_path: Path) -> None:
    do_import(session, tmp_path, ORG)
    al_full = "a1@example.com,Al One,Support/Americas,amer@example.com,,America/New_York,email"
    do_import(session, tmp_path, ORG.replace(al_full, "a1@example.com,Al One,,,,,"))
    al = by_email(session)["a1@example.com"]
    assert (al.team_id, al.manager_id, al.timezone, al.channel) == (None, None, None, None)


def test_full_import_deactivates_missing_people_and_keeps_their_rows(
    session: Session, tmp_path: Path
) -> None:
    do_import(session, tmp_path, ORG)
    before = by_email(session)
    leaving = "a1@example.com,Al One,Support/Americas,amer@example.com,,America/New_York,email\n"
    later = T0 + timedelta(hours=1)

    partial = do_import(session, tmp_path, ORG.replace(leaving, ""), now=later)
    assert partial.deactivated == 0
    assert by_email(session)["a1@example.com"].active

    full = do_import(session, tmp_path, ORG.replace(leaving, ""), full=True, now=later)
    assert (full.created, full.updated, full.unchanged, full.deactivated) == (0, 0, 5, 1)
    after = by_email(session)
    assert set(after) == set(before)
    al = after["a1@example.com"]
    assert not al.active
    assert al.id == before["a1@example.com"].id
    assert al.manager_id == after["amer@example.com"].id  # history of the tree is kept
    assert al.updated_at == later

    back = do_import(session, tmp_path, ORG, full=True, now=later)
    assert (back.created, back.updated, back.deactivated) == (0, 1, 0)
    assert by_email(session)["a1@example.com"].active


def test_refused_import_changes_nothing(session: Session, tmp_path: Path) -> None:
    do_import(session, tmp_path, ORG)
    before = people_table(session)
    teams_before = list(session.scalars(select(Team.path)))
    bad = (
        "head@example.com,Renamed Head,Support/New,,,,\n"  # fine on its own
        "new@example.com,New Person,Other/Team,,,,\n"  # fine on its own
        "e1@example.com,Eve One,,ghost@example.com,,,\n"  # unknown manager
        "e2@example.com,Ed Two,,,,Mars/Olympus,\n"  # unknown zone
    )
    rows = rows_from(tmp_path, bad)
    with pytest.raises(InputError) as err:
        import_directory(session, rows, full=True, now=T0 + timedelta(days=1))
    session.rollback()
    assert str(err.value).startswith("directory import refused: 2 problems, nothing was changed")
    assert [p.split(":")[0] for p in err.value.problems] == [
        "row 4 (e1@example.com)",
        "row 5 (e2@example.com)",
    ]
    assert people_table(session) == before
    assert list(session.scalars(select(Team.path))) == teams_before


def test_cycle_through_stored_people_not_in_the_file_is_refused(
    session: Session, tmp_path: Path
) -> None:
    do_import(session, tmp_path, ORG)
    before = people_table(session)
    with pytest.raises(InputError) as err:
        do_import(session, tmp_path, "head@example.com,Hana Head,Support,e1@example.com,,,\n")
    session.rollback()
    assert err.value.problems == [
        "row 2 (head@example.com): manager cycle: head@example.com (row 2) -> "
        "e1@example.com (stored) -> emea@example.com (stored) -> head@example.com (row 2)"
    ]
    assert people_table(session) == before


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _org(size: int) -> str:
    lines = ["head@example.com,Head,Org,,,,\n"]
    lines += [f"lead{i}@example.com,Lead {i},Org/T{i},head@example.com,,,\n" for i in range(4)]
    lines += [
        f"p{i}@example.com,Person {i},Org/T{i % 4},lead{i % 4}@example.com,U{i},Europe/London,\n"
        for i in range(size)
    ]
    return "".join(reversed(lines))


def test_import_does_not_query_per_row(
    session: Session, tmp_path: Path, statements: list[str]
) -> None:
    """Large files must not cost a statement per row (600 people, reports before managers)."""
    do_import(session, tmp_path, _org(600))
    assert len(statements) < 25, statements
    statements.clear()
    changed = _org(600).replace("Person 1,", "Person One,").replace("p599@", "q599@")
    result = do_import(session, tmp_path, changed, full=True, now=T0 + timedelta(days=1))
    assert (result.created, result.updated, result.deactivated) == (1, 1, 1)
    assert len(statements) < 12, statements


# --- reading back ----------------------------------------------------------------------------


def test_list_people_derives_leaders_from_manager_links(session: Session, tmp_path: Path) -> None:
    do_import(session, tmp_path, ORG)
    people = {p["email"]: p for p in list_people(session)}
    assert len(people) == 6
    head = people["head@example.com"]
    assert head == {
        "email": "head@example.com",
        "name": "Hana Head",
        "team": "Support",
        "manager_email": None,
        "slack_user_id": "UHEAD",
        "timezone": "Europe/London",
        "channel": None,
        "active": True,
        "is_leader": True,
        "reports": 2,
    }
    assert people["emea@example.com"]["reports"] == 2
    assert people["e1@example.com"]["is_leader"] is False
    assert people["e1@example.com"]["manager_email"] == "emea@example.com"

    # Once Al leaves, Ana has no active reports and is no longer a leader.
    do_import(session, tmp_path, "\n".join(ORG.splitlines()[:5]) + "\n", full=True)
    active = {p["email"]: p for p in list_people(session)}
    assert "a1@example.com" not in active
    assert active["amer@example.com"]["is_leader"] is False
    everyone = {p["email"]: p for p in list_people(session, include_inactive=True)}
    assert everyone["a1@example.com"]["active"] is False
    assert len(everyone) == 6
