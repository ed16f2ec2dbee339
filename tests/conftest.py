"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured) and real Redis.

`CADENCE_TEST_DATABASE_URL` switches the database-backed tests to PostgreSQL, each run in a
schema of its own; `CADENCE_REDIS_URL` points them at a Redis server instead of an embedded one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.delivery.broker import EmbeddedRedis, redis_client
from cadence.runtime import Runtime
from cadence.store.db import make_engine, schema_url, upgrade
from cadence.store.models import Base

PG_URL = os.environ.get("CADENCE_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test: migrating per test would be slow."""
    path = tmp_path_factory.mktemp("template") / "cadence.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_schema_url() -> Iterator[str]:
    assert PG_URL
    schema = f"cadence_test_{uuid.uuid4().hex[:10]}"
    url = schema_url(PG_URL, schema)
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    upgrade(admin)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database for one test."""
    if PG_URL:
        url: str = request.getfixturevalue("_pg_schema_url")
        engine = make_engine(url)
        with engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        yield url
    else:
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "cadence.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"


@pytest.fixture(scope="session")
def _redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("CADENCE_REDIS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(_redis_server: str) -> str:
    """A real, flushed Redis."""
    redis_client(_redis_server).flushdb()
    return _redis_server


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        state_dir=tmp_path / "state",
        timezone="UTC",
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def engine(runtime: Runtime) -> Engine:
    return runtime.engine


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.sessions() as s:
        yield s


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliResult]:
    """Run `cadence ARGS` in this process against the test database; return code and output."""

    monkeypatch.setenv("CADENCE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CADENCE_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("CADENCE_TIMEZONE", settings.timezone)
    if settings.redis_url:
        monkeypatch.setenv("CADENCE_REDIS_URL", settings.redis_url)

    def run(*args: str) -> CliResult:
        return run_main(list(args), capsys)

    return run


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    """`cadence ARGS` in this process: its exit code and what it printed."""
    from cadence.cli import main

    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
