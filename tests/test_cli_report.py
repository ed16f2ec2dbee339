"""`cadence report` through the command line, on the organisation of tests/test_figures.py."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from cadence import units
from cadence.figures.measures import FIGURE_COLUMNS
from tests.conftest import CliResult
from tests.test_figures import seed

Cli = Callable[..., CliResult]


@pytest.fixture
def seeded(session: Session) -> None:
    seed(session)
    session.commit()


def test_overview_as_json(cli: Cli, seeded: None) -> None:
    result = cli("report", "--format", "json")
    assert result.code == 0, result.err
    figures = json.loads(result.out)
    assert (figures["planned"], figures["sent"], figures["acknowledged"]) == (15, 12, 9)
    assert (figures["reach"], figures["ack_rate"], figures["clarity_score"]) == (0.8, 0.75, 14.3)
    assert figures["missed_occurrences"] == 1
    assert figures["launches"] == []


def test_overview_as_a_table_and_csv(cli: Cli, seeded: None) -> None:
    table = cli("report")
    assert table.code == 0, table.err
    # For people: headings in words, shares as percentages, waits as durations.
    assert "Reach" in table.out and "80%" in table.out and "90% acked within" in table.out
    assert "Median time to ack" in table.out and "30 min" in table.out
    assert "On time share" in table.out and "83.3%" in table.out
    assert "ack_p90_s" not in table.out and "0.8" not in table.out and "1800" not in table.out
    rows = list(csv.DictReader(io.StringIO(cli("report", "--format", "csv").out)))
    assert len(rows) == 1
    assert (rows[0]["planned"], rows[0]["sent"], rows[0]["ack_median_s"]) == ("15", "12", "1800.0")


def test_breakdowns(cli: Cli, seeded: None) -> None:
    result = cli("report", "--by", "team", "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    # Support with Support/EMEA, as --team Support counts it.
    assert [(r["team"], r["planned"], r["sent"], r["reach"]) for r in rows] == [
        ("Support", "14", "12", "0.8571"),
        ("Support Partners", "1", "0", "0.0"),
        ("Support/EMEA", "6", "5", "0.8333"),
    ]
    own = list(
        csv.DictReader(io.StringIO(cli("report", "--by", "team", "--own", "--format", "csv").out))
    )
    assert (own[0]["team"], own[0]["planned"]) == ("Support", "8")
    by_day = json.loads(cli("report", "--by", "period", "--period", "day", "--format", "json").out)
    assert [(r["period"], r["planned"]) for r in by_day] == [
        ("2026-03-02", 6),
        ("2026-03-08", 5),
        ("2026-03-09", 4),
    ]
    by_message = json.loads(
        cli("report", "--by", "message", "--manager", "bob@example.com", "--format", "json").out
    )
    assert [(r["title"], r["planned"], r["acknowledged"]) for r in by_message] == [
        ("Own the outcome", 5, 3),
        ("Say sorry once", 3, 3),
    ]
    table = cli("report", "--by", "channel")
    assert table.code == 0 and "slack" in table.out and "email" in table.out


def test_days_are_inclusive_and_slices_apply(cli: Cli, seeded: None) -> None:
    # --until includes its whole day: O1 and O2 (both on the 2nd).
    until = json.loads(cli("report", "--until", "2026-03-02", "--format", "json").out)
    assert until["planned"] == 6
    window = json.loads(
        cli("report", "--since", "2026-03-05", "--until", "2026-03-08", "--format", "json").out
    )
    assert (window["planned"], window["sent"]) == (5, 4)
    team = json.loads(cli("report", "--team", "Support/EMEA", "--format", "json").out)
    assert (team["planned"], team["sent"], team["acknowledged"]) == (6, 5, 4)
    email = json.loads(cli("report", "--channel", "email", "--format", "json").out)
    assert (email["planned"], email["sent"]) == (4, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "zone"], "error: unknown --by 'zone' (one of: message, team, manager"),
        (["--by", "period", "--period", "year"], "error: unknown --period 'year'"),
        (["--since", "2026-02-30"], "error: --since '2026-02-30' is not a date (YYYY-MM-DD)"),
        (["--until", "last week"], "error: --until 'last week' is not a date (YYYY-MM-DD)"),
        (["--since", "2026-03-09", "--until", "2026-03-01"], "error: the start of the period"),
        (["--team", "Nope"], "error: unknown team 'Nope'"),
        (["--manager", "nobody@example.com"], "error: no person with email nobody@example.com"),
    ],
)
def test_bad_input_exits_2(cli: Cli, seeded: None, args: list[str], message: str) -> None:
    result = cli("report", *args)
    assert result.code == 2
    assert message in result.err
    assert result.out == ""


def test_help(cli: Cli) -> None:
    result = cli("report", "--help")
    assert result.code == 0
    assert "--by" in result.out and "--since" in result.out


def test_repetition_of_a_message(cli: Cli, session: Session) -> None:
    org = seed(session)
    session.commit()
    window = ("--since", "2026-03-01", "--until", "2026-03-19")
    base = ("report", "--message", str(org.m1.id), "--at-least", "2", *window)
    found = json.loads(cli(*base, "--format", "json").out)
    assert (found["repetitions"], found["audience"], found["reached_at_least_k"]) == (2, 6, 3)
    assert found["share_reached_at_least_k"] == 0.5
    assert found["distribution"] == {"0": 1, "1": 2, "2": 3}
    rows = list(csv.DictReader(io.StringIO(cli(*base, "--format", "csv").out)))
    assert [(r["person"], r["received"], r["acknowledged"]) for r in rows][:2] == [
        ("ann@example.com", "2", "2"),
        ("bob@example.com", "1", "1"),
    ]
    table = cli(*base)
    assert table.code == 0, table.err
    assert "By times received" in table.out and "fay@example.com" in table.out
    narrowed = json.loads(cli(*base, "--team", "Support/EMEA", "--format", "json").out)
    assert [p["person"] for p in narrowed["people"]] == ["dan@example.com", "eve@example.com"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--at-least", "2"), "--at-least needs --message"),
        (("--at-least", "2", "--message", "1", "--by", "team"), "cannot be combined"),
        (("--at-least", "0", "--message", "1"), "greater than or equal to 1"),
        (("--at-least", "2", "--message", "999"), "no message with id 999"),
    ],
)
def test_repetition_refuses_bad_input(
    cli: Cli, seeded: None, args: tuple[str, ...], expected: str
) -> None:
    result = cli("report", *args)
    assert result.code == 2
    assert expected in result.err and "Traceback" not in result.err


def test_tables_are_for_people_json_and_csv_keep_keys_and_exact_values(
    cli: Cli, seeded: None
) -> None:
    table = cli("report", "--by", "team")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    heading = "\n".join(lines[: next(i for i, line in enumerate(lines) if "╇" in line)])
    assert "Ack rate" in heading and "Median time" in heading and "Reach" in heading
    assert "ack_rate" not in table.out and "_s" not in heading
    emea = next(line for line in table.out.splitlines() if "Support/EMEA" in line)
    assert "83.3%" in emea and "0.8333" not in emea
    rows = list(csv.DictReader(io.StringIO(cli("report", "--by", "team", "--format", "csv").out)))
    assert list(rows[0]) == ["team", *FIGURE_COLUMNS]
    by_team = {r["team"]: r for r in rows}
    assert by_team["Support/EMEA"]["reach"] == "0.8333"
    found = json.loads(cli("report", "--by", "team", "--format", "json").out)
    assert list(found[0]) == ["team", *FIGURE_COLUMNS]
    emea_json = next(r for r in found if r["team"] == "Support/EMEA")
    assert emea_json["reach"] == 0.8333
    assert emea_json["ack_median_s"] == float(by_team["Support/EMEA"]["ack_median_s"])
    repetition = cli("report", "--message", "1", "--at-least", "2")
    assert repetition.code == 0, repetition.err
    assert "Share reached at least that often" in repetition.out
    assert "share_reached_at_least_k" not in repetition.out


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2.4, "2.4 s"),
        (0, "0 s"),
        (9.96, "10 s"),
        (45, "45 s"),
        (200, "3 min 20 s"),
        (3_900, "1 h 5 min"),
        (3_600, "1 h"),
        (2 * 86_400 + 3 * 3_600 + 59, "2 d 3 h"),
        (-90, "-1 min 30 s"),
    ],
)
def test_durations_for_people(seconds: float, text: str) -> None:
    assert units.duration(seconds) == text


@pytest.mark.parametrize(
    ("ratio", "text"), [(0.0357, "3.6%"), (0.5, "50%"), (1, "100%"), (0.8333, "83.3%"), (0, "0%")]
)
def test_percentages_for_people(ratio: float, text: str) -> None:
    assert units.percent(ratio) == text
