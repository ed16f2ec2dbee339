"""`cadence schedule preview` through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from tests import factories as f
from tests.conftest import CliResult

Cli = Callable[..., CliResult]


def test_preview_prints_only_iso_lines_to_stdout() -> None:
    """Run as a user would: a separate process, stdout compared to the letter."""
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "schedule", "preview", "--rrule",
         "FREQ=WEEKLY;BYDAY=MO", "--start", "2026-03-02T09:00", "--tz", "America/New_York",
         "--count", "2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2026-03-02T09:00:00-05:00\n2026-03-09T09:00:00-04:00\n"


def test_preview_bad_rule_exits_2_with_message(cli: Cli) -> None:
    result = cli("schedule", "preview", "--rrule", "FREQ=NEVER", "--start", "2026-03-02T09:00",
                 "--tz", "UTC")  # fmt: skip
    assert result.code == 2
    assert result.out == ""
    assert "bad RRULE" in result.err
    assert "Traceback" not in result.err


def test_preview_missing_options_are_named(cli: Cli) -> None:
    result = cli("schedule", "preview", "--rrule", "FREQ=DAILY")
    assert result.code == 2
    assert "--start" in result.err and "--tz" in result.err


def test_preview_of_a_message_shows_who_when_and_which_wording(cli: Cli, session: Session) -> None:
    f.person(session, "lon@example.com", timezone="Europe/London")
    f.person(session, "nyc@example.com", timezone="America/New_York")
    msg = f.core_message(
        session,
        rrule="FREQ=WEEKLY;BYDAY=MO",
        start=datetime(2030, 3, 4, 9, 0),
        variants=["Second wording"],
    )
    session.commit()
    result = cli("schedule", "preview", "--message", str(msg.id), "--count", "4",
                 "--format", "json")  # fmt: skip
    assert result.code == 0, result.err
    import json

    rows = json.loads(result.out)
    assert [(r["when"], r["zone"], r["wording"], r["recipients"]) for r in rows] == [
        ("2030-03-04T09:00+00:00", "Europe/London", 0, "lon@example.com"),
        ("2030-03-04T09:00-05:00", "America/New_York", 0, "nyc@example.com"),
        ("2030-03-11T09:00+00:00", "Europe/London", 1, "lon@example.com"),
        ("2030-03-11T09:00-04:00", "America/New_York", 1, "nyc@example.com"),
    ]
    one = cli("schedule", "preview", "--message", str(msg.id), "--person", "NYC@example.com",
              "--count", "1", "--format", "json")  # fmt: skip
    assert json.loads(one.out)[0]["zone"] == "America/New_York"
    stranger = cli("schedule", "preview", "--message", str(msg.id), "--person", "x@example.com")
    assert stranger.code == 2
    assert "no person with email x@example.com" in stranger.err
