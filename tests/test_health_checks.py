"""The health checks compose runs, run as compose runs them: beside a real worker, beat and
web app started with the services' own commands, passing while they work and failing with a
sentence once they are gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cadence.config import Settings
from tests.test_deployment import TEST_VALUES, compose
from tests.test_web import free_port

Procs = dict[str, subprocess.Popen[str]]


def health_command(service: str) -> list[str]:
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "cadence"]
    return [sys.executable, "-m", "cadence", *test[2:]]


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("CADENCE_")}
    values.update(
        CADENCE_ENV="production",
        CADENCE_SECRET_KEY=TEST_VALUES["CADENCE_SECRET_KEY"],
        CADENCE_DATABASE_URL=settings.database_url,
        CADENCE_REDIS_URL=settings.redis_url or "",
        CADENCE_STATE_DIR=str(tmp_path / "state"),
        CADENCE_TICK_SECONDS="1",
        WEB_PORT=str(free_port()),
    )
    return values


@contextmanager
def running_services(env: dict[str, str], tmp_path: Path) -> Iterator[Procs]:
    """worker, beat and web started with compose's commands (web on a free local port)."""
    procs: Procs = {}

    def start(service: str, command: list[str]) -> None:
        procs[service] = subprocess.Popen(
            [sys.executable, "-m", "cadence", *command],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"{service}.log").open("w"),
            text=True,
        )

    services = compose()["services"]
    try:
        start("worker", services["worker"]["command"])
        start("beat", services["beat"]["command"])
        web = services["web"]["command"]
        start("web", [{"8000": env["WEB_PORT"], "0.0.0.0": "127.0.0.1"}.get(p, p) for p in web])
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [env["WEB_PORT"] if part == "8000" else part for part in command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def until_healthy(
    service: str, env: dict[str, str], procs: Procs, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 60
    while True:
        result = check(health_command(service), env)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        proc = procs[service]
        assert proc.poll() is None, (tmp_path / f"{service}.log").read_text()
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_health_checks_pass_beside_running_services_and_fail_once_they_stop(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Before anything runs, each check fails with a sentence, not a traceback.
    for service in ("worker", "beat", "web"):
        before = check(health_command(service), env)
        assert before.returncode == 2, (service, before.stdout, before.stderr)
        assert before.stderr.startswith("error: ") and "Traceback" not in before.stderr

    with running_services(env, tmp_path) as procs:
        worker = until_healthy("worker", env, procs, tmp_path)
        assert worker.returncode == 0, worker.stderr
        assert "worker ok: cadence@" in worker.stdout
        beat = until_healthy("beat", env, procs, tmp_path)
        assert beat.returncode == 0, beat.stderr
        assert "holding the lock" in beat.stdout
        web = until_healthy("web", env, procs, tmp_path)
        assert web.returncode == 0, web.stderr
        assert "status ok" in web.stdout

        for service in ("worker", "web"):
            procs[service].kill()
            procs[service].wait()
            gone = check(health_command(service), env)
            assert gone.returncode == 2, (service, gone.stdout)
            assert "did not answer" in gone.stderr or "does not answer" in gone.stderr
