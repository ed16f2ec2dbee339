"""`cadence directory import` and `cadence directory list`, driven as a user would."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cadence.store.db import make_engine
from cadence.store.models import Cadence, Person
from tests.conftest import CliResult
from tests.factories import T0, core_message

SAMPLE = Path(__file__).resolve().parents[1] / "cadence" / "samples" / "directory.csv"
HEADER = "email,name,team,manager_email,slack_user_id,timezone,channel\n"


class Cli:
    """Runs `cadence` in-process against one test database, as the console script would."""

    def __init__(self, invoke: Callable[..., CliResult], database_url: str) -> None:
        self.invoke = invoke
        self.database_url = database_url

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = self.invoke(*args)
        return result.code, result.out, result.err

    def people(self) -> list[tuple[Any, ...]]:
        """Every stored column of every person, straight from the database."""
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                columns = list(Person.__table__.columns)
                return [tuple(r) for r in conn.execute(select(*columns).order_by(Person.id))]
        finally:
            engine.dispose()

    def listed(self, *extra: str) -> list[dict[str, Any]]:
        code, out, err = self("directory", "list", "--format", "json", *extra)
        assert code == 0, err
        people = json.loads(out)
        assert isinstance(people, list)
        return people


@pytest.fixture
def run(cli: Callable[..., CliResult], database_url: str) -> Cli:
    return Cli(cli, database_url)


def test_sample_directory_imports_and_lists(run: Cli) -> None:
    code, out, err = run("directory", "import", str(SAMPLE))
    assert (code, err) == (0, "")
    assert out == "imported 12 people: 12 created, 0 updated, 0 unchanged, 0 deactivated\n"

    people = {p["email"]: p for p in run.listed()}
    assert len(people) == 12
    assert set(next(iter(people.values()))) == {
        "email",
        "name",
        "team",
        "manager_email",
        "slack_user_id",
        "timezone",
        "channel",
        "active",
        "is_leader",
        "reports",
    }
    heads = [p for p in people.values() if p["manager_email"] is None]
    assert len(heads) == 1
    leads = [p for p in people.values() if p["manager_email"] == heads[0]["email"]]
    assert len(leads) == 3 and all(p["is_leader"] for p in leads)
    assert heads[0]["is_leader"] and heads[0]["reports"] == 3
    staff = [p for p in people.values() if p not in heads and p not in leads]
    assert staff and not any(p["is_leader"] for p in staff)
    assert {p["team"] for p in people.values()} == {
        "Support",
        "Support/EMEA",
        "Support/Americas",
        "Support/APAC",
    }
    zones = {p["timezone"] for p in people.values()}
    assert {"Europe/London", "America/New_York", "Australia/Sydney", None} <= zones

    code, out, _ = run("directory", "import", str(SAMPLE))
    assert out == "imported 12 people: 0 created, 0 updated, 12 unchanged, 0 deactivated\n"


def test_bad_file_exits_2_names_every_bad_row_and_changes_nothing(run: Cli, tmp_path: Path) -> None:
    assert run("directory", "import", str(SAMPLE))[0] == 0
    before = run.people()

    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER
        + "grace.hopper@example.com,Grace Renamed,Support,,,,\n"  # a good row: not applied
        + "dup@example.com,First,,,,,\n"
        + "dup@example.com,Second,,,,,\n"  # row 4: duplicate email
        + "nope,No Email,,,,,\n"  # row 5: invalid email
        + "x@example.com,X,,ghost@example.com,,,\n"  # row 6: unknown manager
        + "c1@example.com,C1,,c2@example.com,,,\n"  # row 7: cycle with row 8
        + "c2@example.com,C2,,c1@example.com,,,\n"
        + "z@example.com,Z,,,,Moon/Base,\n"  # row 9: unknown zone
        + "p@example.com,P,,,,,pigeon\n",  # row 10: unknown channel
        encoding="utf-8",
    )
    code, out, err = run("directory", "import", str(bad), "--full")

    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "error: directory import refused: 6 problems, nothing was changed"
    expected = {
        "row 4 (dup@example.com)": "duplicate email, already on row 3",
        "row 5 (nope)": "invalid email",
        "row 6 (x@example.com)": "unknown manager ghost@example.com",
        "row 7 (c1@example.com)": "manager cycle: c1@example.com (row 7) -> c2@example.com (row 8)",
        "row 9 (z@example.com)": "unknown time zone 'Moon/Base'",
        "row 10 (p@example.com)": "unknown channel 'pigeon'",
    }
    assert len(lines) == 1 + len(expected)
    for line, (where, what) in zip(lines[1:], expected.items(), strict=True):
        assert line.strip().startswith(f"{where}: ")
        assert what in line
    assert run.people() == before


def test_reimport_updates_by_email_and_full_deactivates(run: Cli, tmp_path: Path) -> None:
    assert run("directory", "import", str(SAMPLE))[0] == 0
    before = {p["email"]: p for p in run.listed()}

    # Ethan leaves; Liam changes name, and his email is written in another case.
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("ethan.clarke@")]
    smaller = tmp_path / "smaller.csv"
    smaller.write_text(
        "".join(kept).replace(
            "liam.walsh@example.com,Liam Walsh,", "Liam.Walsh@Example.com,Liam Walsh-Byrne,"
        ),
        encoding="utf-8",
    )

    code, out, _ = run("directory", "import", str(smaller), "--full")
    assert code == 0
    assert out == "imported 11 people: 0 created, 1 updated, 10 unchanged, 1 deactivated\n"

    active = {p["email"]: p for p in run.listed()}
    assert "ethan.clarke@example.com" not in active
    assert active["liam.walsh@example.com"]["name"] == "Liam Walsh-Byrne"
    everyone = {p["email"]: p for p in run.listed("--all")}
    assert set(everyone) == set(before)
    assert everyone["ethan.clarke@example.com"]["active"] is False
    assert everyone["ethan.clarke@example.com"]["manager_email"] == "priya.nair@example.com"


def test_yaml_import_with_manager_after_report_and_nested_teams(
    run: Cli, tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(
        "people:\n"
        "  - email: kai@example.com\n"
        "    name: Kai\n"
        "    team: Ops/Night/Weekend\n"
        "    manager_email: mo@example.com\n"
        "    timezone: Asia/Tokyo\n"
        "  - email: mo@example.com\n"
        "    name: Mo\n"
        "    team: Ops/Night\n"
        "    channel: email\n",
        encoding="utf-8",
    )
    code, out, err = run("directory", "import", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("imported 2 people: 2 created")

    people = {p["email"]: p for p in run.listed()}
    assert people["kai@example.com"]["manager_email"] == "mo@example.com"
    assert people["kai@example.com"]["team"] == "Ops/Night/Weekend"
    assert people["mo@example.com"]["is_leader"] is True
    assert people["mo@example.com"]["channel"] == "email"

    engine = make_engine(database_url)
    with engine.connect() as conn:
        teams = conn.execute(text("SELECT path FROM teams ORDER BY path")).scalars().all()
    engine.dispose()
    assert teams == ["Ops", "Ops/Night", "Ops/Night/Weekend"]


def test_list_formats(run: Cli) -> None:
    assert run("directory", "import", str(SAMPLE))[0] == 0

    code, out, _ = run("directory", "list", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0] == (
        "email,name,team,manager_email,slack_user_id,timezone,channel,active,is_leader,reports"
    )
    assert len(rows) == 12
    assert {r["email"] for r in rows} == {p["email"] for p in run.listed()}

    code, out, _ = run("directory", "list")
    assert code == 0
    assert "grace.hopper@example.com" in out and "is_leader" in out


def test_cycle_through_stored_people_is_refused(run: Cli, tmp_path: Path) -> None:
    assert run("directory", "import", str(SAMPLE))[0] == 0
    before = run.people()
    path = tmp_path / "loop.csv"
    path.write_text(
        HEADER + "grace.hopper@example.com,Grace Hopper,Support,kenji.tanaka@example.com,,,\n",
        encoding="utf-8",
    )
    code, _, err = run("directory", "import", str(path))
    assert code == 2
    assert (
        "row 2 (grace.hopper@example.com): manager cycle: grace.hopper@example.com (row 2) -> "
        "kenji.tanaka@example.com (stored) -> priya.nair@example.com (stored) -> "
        "grace.hopper@example.com (row 2)"
    ) in err
    assert run.people() == before


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("people.json", "[]", "unsupported file type '.json'"),
        ("people.csv", "email,fullname\n", "unknown columns: fullname"),
    ],
)
def test_unreadable_file_exits_2(
    run: Cli, tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = run("directory", "import", str(path))
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and message in err


def test_uninitialised_database_is_a_clean_error(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    code, _, err = run("directory", "list")
    assert code == 2
    assert "cadence init" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["directory", "--help"], ["import", "list"]),
        (["directory", "import", "--help"], ["FILE", "--full", "manager_email", "deactivate"]),
        (["directory", "list", "--help"], ["--format", "--all", "json"]),
    ],
)
def test_every_verb_has_help(run: Cli, args: list[str], words: list[str]) -> None:
    code, out, _ = run(*args)
    assert code == 0
    for word in words:
        assert word in out


def test_import_that_changes_people_makes_planning_start_again(run: Cli, session: Session) -> None:
    message = core_message(session)
    assert message.cadence is not None
    message.cadence.planned_until = T0
    session.commit()

    def planned_until() -> datetime | None:
        session.expire_all()
        return session.scalars(select(Cadence.planned_until)).one()

    assert run("directory", "import", str(SAMPLE))[0] == 0
    assert planned_until() is None

    message.cadence.planned_until = T0
    session.commit()
    assert run("directory", "import", str(SAMPLE))[0] == 0  # nothing changed
    assert planned_until() == T0
