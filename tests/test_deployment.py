"""docker-compose.yml, .env.example and the Dockerfile. There is no Docker engine here, so the
file is validated against the Compose specification, its environment is worked out the way
compose does it, and the commands each service (and its health check) runs are run directly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import inspect

from cadence.config import Settings, load_settings
from cadence.runtime import Runtime
from cadence.store.db import current_revision, head_revision

ROOT = Path(__file__).resolve().parent.parent
CADENCE_SERVICES = ("migrate", "worker", "beat", "web")
# What a filled-in .env holds: every setting, each with a value that differs from its default.
TEST_VALUES = {
    "CADENCE_ENV": "development",
    "CADENCE_DATABASE_URL": "sqlite:///./elsewhere.db",
    "CADENCE_REDIS_URL": "redis://elsewhere:6379/3",
    "CADENCE_STATE_DIR": "/srv/elsewhere",
    "CADENCE_SECRET_KEY": "a-test-secret-of-more-than-32-characters-0123456789",
    "CADENCE_BASE_URL": "https://cadence.test.example",
    "CADENCE_TIMEZONE": "Europe/Paris",
    "CADENCE_SLACK_BOT_TOKEN": "xoxb-test-token",
    "CADENCE_SLACK_API_URL": "https://slack.test.example/api/",
    "CADENCE_SLACK_SIGNING_SECRET": "a-test-signing-secret",
    "CADENCE_SMTP_URL": "smtp://user:pass@mail.test.example:587",
    "CADENCE_EMAIL_FROM": "Comms <comms@test.example>",
    "CADENCE_DEMO_INBOX": "true",
    "CADENCE_SLACK_RATE_PER_MINUTE": "123",
    "CADENCE_SLACK_BURST": "7",
    "CADENCE_SLACK_CHANNEL_GAP_SECONDS": "2.5",
    "CADENCE_SLACK_CONCURRENCY": "9",
    "CADENCE_SLACK_TIMEOUT_SECONDS": "4",
    "CADENCE_REMIND_AFTER_HOURS": "6",
    "CADENCE_MAX_REMINDERS": "5",
    "CADENCE_ESCALATE": "false",
    "CADENCE_WORK_START": "08:00",
    "CADENCE_WORK_END": "16:00",
    "CADENCE_WORK_DAYS": "mon,tue,wed,thu",
    "CADENCE_MAX_ATTEMPTS": "3",
    "CADENCE_TICK_SECONDS": "7",
    "CADENCE_PLAN_HORIZON_HOURS": "24",
    "CADENCE_BATCH_SIZE": "50",
    "CADENCE_STUCK_AFTER_SECONDS": "600",
    "CADENCE_MAX_LATENESS_HOURS": "3",
    "CADENCE_MAX_REQUEST_BYTES": "65536",
    "CADENCE_TRUSTED_PROXY_HOPS": "1",
    "CADENCE_METRICS_TOKEN": "a-test-metrics-token",
}
REQUIRED = {
    "CADENCE_SECRET_KEY": TEST_VALUES["CADENCE_SECRET_KEY"],
    "CADENCE_BASE_URL": TEST_VALUES["CADENCE_BASE_URL"],
    "POSTGRES_PASSWORD": "Compose0Password",
}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def setting_names() -> set[str]:
    return {f"CADENCE_{name.upper()}" for name in Settings.model_fields}


def documented_settings() -> set[str]:
    """The variables in the README's Configuration table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `CADENCE_")]
    names: set[str] = set()
    for row in rows:
        first_cell = row.split("|")[1]
        names |= set(re.findall(r"`(CADENCE_[A-Z_]+)`", first_cell))
    return names


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?(CADENCE_[A-Z_]+)=", text, flags=re.MULTILINE))


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines, as compose reads an env_file: comments and blank lines skipped."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


class MissingVariable(Exception):
    pass


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, from .env and the shell."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3]
        present = variables.get(name, "")
        if op == ":?" and not present:
            raise MissingVariable(f"{name}: {arg}")
        if op == ":-" and not present:
            return arg or ""
        return present

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:\?|:-)([^}]*))?\}", one, value)


def service_environment(name: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What a service's process sees: its env_file, then `environment` on top."""
    service = compose()["services"][name]
    env: dict[str, str] = {}
    for entry in service.get("env_file", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        assert path == ".env"
        env.update(dotenv)
    for key, value in (service.get("environment") or {}).items():
        env[key] = interpolate(str(value), dotenv)
    return env


def value_of(settings: Settings, field: str) -> object:
    value = getattr(settings, field)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_compose_file_is_valid_against_the_compose_specification(tmp_path: Path) -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    command = [str(checker), "--builtin-schema", "vendor.compose-spec"]
    good = subprocess.run([*command, str(ROOT / "docker-compose.yml")], capture_output=True)
    assert good.returncode == 0, good.stdout + good.stderr
    # The validator does refuse a broken file: a health check must be a list or a string.
    broken = compose()
    broken["services"]["worker"]["healthcheck"]["test"] = {"cadence": "health"}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    bad = subprocess.run([*command, str(path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "healthcheck" in bad.stdout


def test_every_setting_is_documented_and_listed_in_env_example() -> None:
    assert setting_names() == set(TEST_VALUES)
    assert documented_settings() == setting_names()
    assert env_example_names() == setting_names()


def test_every_setting_in_env_reaches_worker_beat_and_web() -> None:
    dotenv = {**TEST_VALUES, "POSTGRES_PASSWORD": REQUIRED["POSTGRES_PASSWORD"]}
    fixed = compose()["x-cadence"]["environment"]
    for name in CADENCE_SERVICES:
        env = service_environment(name, dotenv)
        given = {k[len("CADENCE_") :].lower(): v for k, v in env.items() if k[:8] == "CADENCE_"}
        settings = Settings(**given)  # type: ignore[arg-type]
        for variable, raw in TEST_VALUES.items():
            field = variable[len("CADENCE_") :].lower()
            expected_raw = interpolate(str(fixed[variable]), dotenv) if variable in fixed else raw
            expected = value_of(Settings(**{field: expected_raw}), field)  # type: ignore[arg-type]
            assert value_of(settings, field) == expected, (name, variable)
    worker = service_environment("worker", dotenv)
    assert worker["CADENCE_ENV"] == "production"
    assert worker["CADENCE_REDIS_URL"] == "redis://redis:6379/0"
    assert worker["CADENCE_DATABASE_URL"] == (
        "postgresql+psycopg://cadence:Compose0Password@postgres:5432/cadence"
    )


def test_env_example_filled_in_gives_a_valid_production_setup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dotenv = parse_env_file((ROOT / ".env.example").read_text())
    assert set(dotenv) == {"CADENCE_SECRET_KEY", "CADENCE_BASE_URL", "POSTGRES_PASSWORD"}
    # Copied and not filled in, compose stops and names what is missing.
    with pytest.raises(MissingVariable, match=r"POSTGRES_PASSWORD|CADENCE_SECRET_KEY"):
        service_environment("web", dotenv)
    dotenv.update(REQUIRED)
    for key in [k for k in os.environ if k.startswith("CADENCE_")]:
        monkeypatch.delenv(key)
    for key, value in service_environment("web", dotenv).items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.env == "production"
    assert settings.base_url == REQUIRED["CADENCE_BASE_URL"]


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_demands_each_required_setting_by_name(missing: str) -> None:
    dotenv = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(MissingVariable, match=missing):
        for name in CADENCE_SERVICES:
            service_environment(name, dotenv)


def test_services_depend_on_healthy_parts_and_each_has_a_health_check() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "postgres", "migrate", *CADENCE_SERVICES}
    for name in ("worker", "beat", "web"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"][:3] == ["CMD", "cadence", "health"]
        assert services[name]["healthcheck"]["test"][3] == name
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["web"]["command"] == [
        "web", "--host", "0.0.0.0", "--port", "8000", "--workers", "2",
    ]  # fmt: skip
    assert services["web"]["ports"] == ["8000:8000"]


def test_the_image_installs_the_wheel_as_a_numeric_non_root_user() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    run = " ".join(line for line in final if not line.startswith("#"))
    assert "pip wheel" in " ".join(lines) and "pip install /wheels/cadence-" in run
    assert " -e " not in run and "--editable" not in run
    user = next(line for line in final if line.startswith("USER "))
    uid, _, gid = user.split()[1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit()
    assert "PYTHONUNBUFFERED=1" in run
    assert "COPY cadence" not in run  # the source tree stays in the build stage


def test_each_service_command_is_a_real_verb() -> None:
    for name in CADENCE_SERVICES:
        service = compose()["services"][name]
        commands = [service["command"]]
        if "healthcheck" in service:
            commands.append(service["healthcheck"]["test"][2:])
        for command in commands:
            result = subprocess.run(
                [sys.executable, "-m", "cadence", *command, "--help"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, (name, command, result.stderr)


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
        result = run_cadence(command, env, tmp_path)
        assert result.returncode == 0, result.stderr
    fresh = Runtime(Settings(database_url=url))
    assert current_revision(fresh.engine) == head_revision()
    assert "deliveries" in inspect(fresh.engine).get_table_names()
    fresh.engine.dispose()


def run_cadence(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadence", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=60,
    )


def test_production_refuses_the_default_secret(tmp_path: Path, settings: Settings) -> None:
    env = {
        "CADENCE_ENV": "production",
        "CADENCE_DATABASE_URL": settings.database_url,
        "CADENCE_REDIS_URL": settings.redis_url or "",
        "PATH": "/usr/bin:/bin",
    }
    result = run_cadence(["worker"], env, tmp_path)
    assert result.returncode == 2
    assert "CADENCE_SECRET_KEY is the development default" in result.stderr


@pytest.mark.parametrize("verb", ["worker", "beat", "web"])
def test_production_refuses_the_embedded_redis_and_starts_nothing(
    tmp_path: Path, settings: Settings, verb: str
) -> None:
    env = {
        "CADENCE_ENV": "production",
        "CADENCE_SECRET_KEY": TEST_VALUES["CADENCE_SECRET_KEY"],
        "CADENCE_DATABASE_URL": settings.database_url,
        "CADENCE_STATE_DIR": str(tmp_path / "state"),
        "PATH": "/usr/bin:/bin",
    }
    result = run_cadence([verb], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "CADENCE_REDIS_URL is unset" in result.stderr
    assert not (tmp_path / "state" / "redis").exists()
    assert "Traceback" not in result.stderr
