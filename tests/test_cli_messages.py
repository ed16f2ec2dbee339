"""`cadence message ...` and `cadence deliveries` through the CLI, against a real database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.delivery.dispatch import tick
from cadence.runtime import Runtime
from cadence.store.models import Delivery, Message, Occurrence, OccurrenceStatus
from cadence.worker import policy_from
from tests import factories as f
from tests.conftest import CliResult

Cli = Callable[..., CliResult]


def seed_people(session: Session) -> None:
    support = f.team(session, "Support")
    emea = f.team(session, "Support/EMEA", parent=support)
    boss = f.person(session, "boss@example.com", team=support)
    lead = f.person(session, "lead@example.com", team=emea, manager=boss)
    f.person(session, "agent@example.com", team=emea, manager=lead)
    f.person(session, "other@example.com")
    session.commit()


def add_args(*extra: str) -> list[str]:
    return [
        "message", "add", "--title", "Own the outcome", "--body", "Fix the problem.",
        "--rrule", "FREQ=WEEKLY;BYDAY=MO", "--start", "2026-03-02", "--at", "09:00", *extra,
    ]  # fmt: skip


def message_count(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def test_add_list_show(cli: Cli, session: Session, tmp_path: Path) -> None:
    seed_people(session)
    body = tmp_path / "body.md"
    body.write_text("# Own it\n\nFrom a **file**.", encoding="utf-8")
    result = cli(
        "message", "add", "--title", "Own the outcome", "--body-file", str(body),
        "--variant", "Second wording", "--team", "Support", "--rrule", "RRULE:FREQ=DAILY",
        "--start", "2026-03-02T09:00", "--tz", "Europe/London", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    added = json.loads(result.out)[0]
    assert added["rrule"] == "FREQ=DAILY"
    assert added["timezone"] == "Europe/London"
    assert added["variants"] == 2
    listed = json.loads(cli("message", "list", "--format", "json").out)
    assert [m["title"] for m in listed] == ["Own the outcome"]
    shown = json.loads(cli("message", "show", str(added["id"]), "--format", "json").out)
    assert shown["wordings"] == ["# Own it\n\nFrom a **file**.", "Second wording"]
    assert shown["audience"] == "team Support"


def test_bad_message_input_exits_2_and_stores_nothing(cli: Cli, session: Session) -> None:
    seed_people(session)
    cases = [
        (add_args("--team", "Nowhere"), "unknown team 'Nowhere'"),
        (add_args("--person", "ghost@example.com"), "unknown person 'ghost@example.com'"),
        (add_args("--tree", "ghost@example.com"), "unknown manager"),
        (add_args(), "give --everyone, --team, --person or --tree"),
        (add_args("--everyone", "--team", "Support"), "cannot be combined"),
        (add_args("--everyone", "--tz", "Moon/Base"), "unknown time zone"),
        (add_args("--everyone", "--channel", "pigeon"), "unknown channel 'pigeon'"),
        (add_args("--everyone", "--end", "2020-01-01"), "before the start"),
        (add_args("--everyone", "--end", "soon"), "--end 'soon' is not a date"),
        (
            [
                "message",
                "add",
                "--title",
                "x",
                "--body",
                "y",
                "--everyone",
                "--rrule",
                "FREQ=DAILY",
                "--start",
                "2026-03-02",
            ],
            "--at HH:MM is required",
        ),
        (
            [
                "message",
                "add",
                "--title",
                "x",
                "--body-file",
                "/nonexistent.md",
                "--everyone",
                "--rrule",
                "FREQ=DAILY",
                "--start",
                "2026-03-02T09:00",
            ],
            "does not exist",
        ),
        (
            [
                "message",
                "add",
                "--title",
                " ",
                "--body",
                "",
                "--everyone",
                "--rrule",
                "FREQ=HOURLY",
                "--start",
                "2026-03-02T09:00",
            ],
            "title is empty",
        ),
    ]
    for args, expected in cases:
        result = cli(*args)
        assert result.code == 2, (args, result)
        assert expected in result.err, (expected, result.err)
        assert "Traceback" not in result.err
    assert message_count(session) == 0


def test_bad_message_reports_every_problem_at_once(cli: Cli, session: Session) -> None:
    seed_people(session)
    result = cli(*add_args("--everyone", "--tz", "Moon/Base", "--channel", "pigeon"))
    assert result.code == 2
    assert "unknown time zone" in result.err and "unknown channel" in result.err


def test_pause_resume_cancel(cli: Cli, runtime: Runtime, session: Session) -> None:
    seed_people(session)
    added = cli(*add_args("--tree", "lead@example.com", "--format", "json"))
    message_id = json.loads(added.out)[0]["id"]
    assert cli("message", "pause", str(message_id)).code == 0
    again = cli("message", "pause", str(message_id))
    assert again.code == 2 and "it is paused" in again.err
    assert cli("message", "resume", str(message_id)).code == 0
    tick(runtime.sessions, policy_from(runtime.settings), lambda ids: None, f.T0)
    cancelled = cli("message", "cancel", str(message_id))
    assert cancelled.code == 0, cancelled.err
    session.expire_all()
    statuses = set(session.scalars(select(Occurrence.status)))
    assert statuses == {OccurrenceStatus.CANCELLED.value}
    assert cli("message", "cancel", str(message_id)).code == 2
    missing = cli("message", "show", "999")
    assert missing.code == 2 and "no message with id 999" in missing.err


def test_tree_audience_gets_manager_and_everyone_below(
    cli: Cli, runtime: Runtime, session: Session
) -> None:
    seed_people(session)
    added = cli(*add_args("--tree", "lead@example.com", "--tz", "UTC", "--format", "json"))
    assert added.code == 0, added.err
    tick(
        runtime.sessions,
        policy_from(runtime.settings),
        lambda ids: None,
        datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    rows = json.loads(cli("deliveries", "--format", "json").out)
    assert sorted(r["person"] for r in rows) == ["agent@example.com", "lead@example.com"]
    assert {r["status"] for r in rows} == {"queued"}
    only = json.loads(cli("deliveries", "--person", "agent@example.com", "--format", "json").out)
    assert [r["person"] for r in only] == ["agent@example.com"]
    none = json.loads(cli("deliveries", "--status", "sent", "--format", "json").out)
    assert none == []
    bad = cli("deliveries", "--status", "lost")
    assert bad.code == 2 and "unknown status 'lost'" in bad.err
    table = cli("deliveries")
    assert "agent@example.com" in table.out
    assert session.scalar(select(func.count()).select_from(Delivery)) == 2


def test_commands_refuse_an_uninitialised_database(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENCE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = cli("message", "list")
    assert result.code == 2
    assert "not initialised: run `cadence init`" in result.err


def test_edit_makes_a_new_version_only_when_the_wording_changes(cli: Cli, session: Session) -> None:
    seed_people(session)
    message_id = json.loads(cli(*add_args("--everyone", "--format", "json")).out)[0]["id"]
    same = cli("message", "edit", str(message_id), "--max-reminders", "1", "--no-escalate")
    assert same.code == 0 and "still version 1" in same.out
    changed = cli("message", "edit", str(message_id), "--title", "Own every outcome")
    assert changed.code == 0 and "now version 2" in changed.out
    shown = json.loads(cli("message", "show", str(message_id), "--format", "json").out)
    assert (shown["title"], shown["version"], shown["max_reminders"], shown["escalate"]) == (
        "Own every outcome", 2, 1, False,
    )  # fmt: skip
    for args, expected in [
        (("--remind-after", "-1"), "--remind-after must be"),
        (("--body", "{{ person.__class__ }}"), "body"),
        (("--body", "x", "--body-file", "y.md"), "not both"),
    ]:
        bad = cli("message", "edit", str(message_id), *args)
        assert bad.code == 2 and expected in bad.err, (args, bad)
    session.expire_all()
    assert session.scalar(select(Message.version).where(Message.id == message_id)) == 2
