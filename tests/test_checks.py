"""Start-up checks and settings: what is wrong is said plainly, with exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.runtime import Runtime
from cadence.web.deps import WebDeps
from tests.conftest import CliResult
from tests.test_web import free_port, serve

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


# ---------------------------------------------------------------------------------------
# Production refuses what is only fit for trying Cadence

GOOD_SECRET = "Vx3kQ9_pLm2Rt8ZwYc4Hn7Js1Df6Gb0Ae5Ku-XoNqWiEyTrUzSaBvCdMlPhJgFk"


def production(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("CADENCE_ENV", "production")
    monkeypatch.setenv("CADENCE_SECRET_KEY", secret)


def test_production_refuses_the_demo_inbox(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, GOOD_SECRET)
    monkeypatch.setenv("CADENCE_DEMO_INBOX", "true")
    result = cli("web", "--port", "1")
    assert result.code == 2
    assert "CADENCE_DEMO_INBOX=true" in result.err and "CADENCE_ENV=production" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("a" * 32, "has fewer than 16 different characters"),
        ("a" * 48 + "bcdefghijklmnopq", "repeats its characters too much"),
        ("short-but-random-Xy7", "is shorter than 32"),
    ],
)
def test_production_refuses_a_weak_secret(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, secret: str, why: str
) -> None:
    production(monkeypatch, secret)
    result = cli("worker")
    assert result.code == 2
    assert f"CADENCE_SECRET_KEY {why}" in result.err
    assert "secrets.token_urlsafe(48)" in result.err


def test_a_token_urlsafe_secret_is_accepted() -> None:
    import secrets

    from cadence.cli.checks import check_secret, secret_weakness
    from cadence.config import Settings

    for _ in range(20):
        secret = secrets.token_urlsafe(48)
        assert secret_weakness(secret) is None
        check_secret(Settings(env="production", secret_key=secret))  # type: ignore[arg-type]


def test_the_inbox_is_never_served_in_production(settings: Settings, runtime: Runtime) -> None:
    assert settings.redis_url is not None
    for env, expected in (("development", 200), ("production", 404)):
        deps = WebDeps(
            settings=settings.model_copy(
                update={"env": env, "demo_inbox": True, "secret_key": GOOD_SECRET}
            ),
            sessions=runtime.sessions,
            redis=redis_client(settings.redis_url),
            send_task=lambda name, args: None,
        )
        with serve(deps, free_port()) as url, httpx.Client(base_url=url) as client:
            assert client.get("/inbox").status_code == expected
