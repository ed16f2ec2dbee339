"""Start-up checks and settings: what is wrong is said plainly, with exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

Cli = Callable[..., CliResult]


def test_unreachable_redis_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENCE_REDIS_URL", "redis://127.0.0.1:1/0")
    result = cli("worker")
    assert result.code == 2
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in result.err


def test_worker_refuses_an_unmigrated_database(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CADENCE_DATABASE_URL", f"sqlite:///{tmp_path / 'blank.db'}")
    result = cli("beat")
    assert result.code == 2
    assert "not initialised: run `cadence init`" in result.err


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CADENCE_TICK_SECONDS", "-1", "CADENCE_TICK_SECONDS"),
        ("CADENCE_TIMEZONE", "Atlantis/Capital", "unknown time zone"),
        ("CADENCE_DATABASE_URL", "mysql://x", "only sqlite"),
        ("CADENCE_REDIS_URL", "http://redis", "must start with redis://"),
        ("CADENCE_ENV", "staging", "CADENCE_ENV"),
    ],
)
def test_bad_settings_are_named(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    result = cli("message", "list")
    assert result.code == 2
    assert "bad setting" in result.err and expected in result.err
    assert "Traceback" not in result.err


def test_init_is_repeatable(cli: Cli) -> None:
    result = cli("init")
    assert result.code == 0
    assert "up to date" in result.out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CADENCE_WORK_START", "nine"),
        ("CADENCE_WORK_END", "08:00"),
        ("CADENCE_WORK_DAYS", "funday"),
    ],
)
def test_bad_working_hours_are_named(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    result = cli("message", "list")
    assert result.code == 2
    assert "working" in result.err and "Traceback" not in result.err
