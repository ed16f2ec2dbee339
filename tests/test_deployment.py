"""docker-compose.yml: no Docker engine here, so run what each service runs, directly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import inspect

from cadence.config import Settings
from cadence.runtime import Runtime
from cadence.store.db import current_revision, head_revision

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_every_part() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "postgres", "migrate", "worker", "beat", "web"}
    for name in ("worker", "beat", "web"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert env["CADENCE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["CADENCE_REDIS_URL"] == "redis://redis:6379/0"
        assert env["CADENCE_ENV"] == "production"


def test_web_service_listens_on_all_interfaces_and_publishes_its_port() -> None:
    web = compose()["services"]["web"]
    assert web["command"] == ["web", "--host", "0.0.0.0", "--port", "8000"]
    assert web["ports"] == ["8000:8000"]
    assert web["environment"] == compose()["services"]["worker"]["environment"]
    assert web["depends_on"] == compose()["services"]["worker"]["depends_on"]
    assert "/health" in " ".join(web["healthcheck"]["test"])


def test_each_service_command_is_a_real_verb() -> None:
    for name in ("migrate", "worker", "beat", "web"):
        command = compose()["services"][name]["command"]
        result = subprocess.run(
            [sys.executable, "-m", "cadence", *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (name, result.stderr)


def test_migrate_service_command_creates_and_then_keeps_the_schema(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    # A fresh database of its own: the fixture's is migrated already.
    url = settings.database_url
    if url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command = compose()["services"]["migrate"]["command"]
    env = {"CADENCE_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # a restart of the one-shot service must be harmless
        result = subprocess.run(
            [sys.executable, "-m", "cadence", *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    fresh = Runtime(Settings(database_url=url))
    assert current_revision(fresh.engine) == head_revision()
    assert "deliveries" in inspect(fresh.engine).get_table_names()
    fresh.engine.dispose()


def test_production_refuses_the_default_secret(tmp_path: Path, settings: Settings) -> None:
    env = {
        "CADENCE_ENV": "production",
        "CADENCE_DATABASE_URL": settings.database_url,
        "CADENCE_REDIS_URL": settings.redis_url or "",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "worker"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CADENCE_SECRET_KEY is the development default" in result.stderr
