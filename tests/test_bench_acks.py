"""`cadence bench acks` end to end (its JSON, on SQLite and PostgreSQL), `cadence web
--workers N` answering from N processes, and bad options refused with a sentence.

No timing is asserted: speed is what the bench reports, not what a test decides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cadence.config import Settings
from tests.conftest import PG_URL, CliResult
from tests.test_bench import bench
from tests.test_web import free_port

FIGURES = ("acknowledgements_per_second", "latency_ms", "recorded", "ceiling", "share_of_ceiling")


def check_kind(figures: dict[str, Any], clicks: int) -> None:
    assert figures["acknowledgements_per_second"] > 0
    assert set(figures["latency_ms"]) == {"p50", "p99", "max"}
    assert 0 < figures["latency_ms"]["p50"] <= figures["latency_ms"]["p99"]
    assert figures["latency_ms"]["p99"] <= figures["latency_ms"]["max"]
    assert figures["responses"] == {"200": clicks}
    assert figures["recorded"] == {
        "counted": clicks, "rows": clicks, "lost": 0, "lost_after_200": 0, "exactly_once": True,
    }  # fmt: skip
    ceiling = figures["ceiling"]
    assert ceiling["responses"] == {"200": clicks} and ceiling["per_second"] > 0
    assert set(ceiling["latency_ms"]) == {"p50", "p99", "max"}
    assert figures["share_of_ceiling"] == pytest.approx(
        figures["acknowledgements_per_second"] / ceiling["per_second"], abs=0.001
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_acks_on_sqlite_measures_both_kinds_and_the_ceiling() -> None:
    figures = bench("acks", "--clicks", "30", "--concurrency", "4", "--kind", "both")
    assert figures["database"] == "sqlite" and figures["workers"] == 1
    assert figures["kind"] == "slack" and set(figures["by_kind"]) == {"slack", "email"}
    for kind in ("slack", "email"):
        check_kind(figures["by_kind"][kind], 30)
    # The top level keeps the keys the bench always printed, for the first kind.
    assert {key: figures[key] for key in FIGURES} == {
        key: figures["by_kind"]["slack"][key] for key in FIGURES
    }
    # Each click queued its message update; email answers queue nothing.
    assert figures["updates_queued"] == 30


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_acks_with_two_workers_on_the_suites_database() -> None:
    """On PostgreSQL when the suite runs there, in a scratch schema it drops afterwards;
    otherwise on the bench's own SQLite file."""
    from sqlalchemy import text

    from cadence.store.db import make_engine

    def schemas() -> set[str]:
        if not PG_URL:
            return set()
        engine = make_engine(PG_URL)
        with engine.connect() as conn:
            names = conn.scalars(text("SELECT nspname FROM pg_namespace")).all()
        engine.dispose()
        return {name for name in names if name.startswith("cadence_bench_acks_")}

    before = schemas()
    where = ["--database-url", PG_URL] if PG_URL else []
    figures = bench(
        "acks", "--clicks", "30", "--concurrency", "8", "--workers", "2", "--kind", "email",
        *where,
    )  # fmt: skip
    assert figures["database"] == ("postgresql" if PG_URL else "sqlite")
    assert figures["workers"] == 2
    assert figures["kind"] == "email" and set(figures["by_kind"]) == {"email"}
    check_kind(figures, 30)
    assert figures["updates_queued"] == 0
    assert schemas() == before


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    """A worker still running (not merely a zombie waiting for its parent)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "spawn_main" in cmdline(pid) and "State:\tZ" not in status


def start_web(
    settings: Settings, redis_url: str, tmp_path: Path, workers: int
) -> tuple[subprocess.Popen[bytes], int]:
    from cadence.store.db import make_engine, upgrade

    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    port = free_port()
    env = dict(os.environ)
    env.update(
        CADENCE_DATABASE_URL=settings.database_url,
        CADENCE_REDIS_URL=redis_url,
        CADENCE_STATE_DIR=str(tmp_path / "state"),
        CADENCE_ENV="development",
        CADENCE_SLACK_SIGNING_SECRET="a-test-signing-secret",
    )
    command = [sys.executable, "-m", "cadence", "web", "--port", str(port)]
    command += ["--workers", str(workers)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return server, port


def wait_for_workers(server: subprocess.Popen[bytes], port: int, workers: int) -> list[int]:
    """The worker processes, once there are `workers` of them and the app answers."""
    deadline = time.monotonic() + 90
    found: list[int] = []
    answered = False
    while time.monotonic() < deadline and not (answered and len(found) == workers):
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        found = [p for p in children(server.pid) if "spawn_main" in cmdline(p)]
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            answered = health.status_code == 200
            # A Slack click reaches the real route in a worker: unsigned, so refused.
            click = httpx.post(f"http://127.0.0.1:{port}/slack/interactions", content=b"")
            assert click.status_code == 401
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    assert answered and len(found) == workers, (answered, found)
    return found


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_web_with_two_workers_answers_from_two_processes_and_stops_them(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    server, port = start_web(settings, redis_url, tmp_path, workers=2)
    try:
        workers = wait_for_workers(server, port, 2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0
    assert not any(alive(pid) for pid in workers)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["web", "--workers", "0"], "--workers"),
        (["web", "--workers", "two"], "--workers"),
        (["bench", "acks", "--workers", "0"], "--workers"),
        (["bench", "acks", "--kind", "sms"], "choose slack, email or both"),
        (["bench", "acks", "--database-url", "not a url"], "is not a database URL"),
        (["bench", "acks", "--database-url", "sqlite:///x.db"], "give a PostgreSQL URL"),
        (
            ["bench", "acks", "--database-url", "postgresql+psycopg://postgres@127.0.0.1:1/x"],
            "cannot connect",
        ),
    ],
)
def test_bad_options_are_refused_with_a_sentence(
    cli: Callable[..., CliResult], args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.code == 2, result
    # Rich wraps the message in a box as wide as the terminal.
    text = " ".join(result.err.replace("│", " ").split())
    assert message in text and "Traceback" not in text, text


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_web_workers_stop_when_their_supervisor_is_killed(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    server, port = start_web(settings, redis_url, tmp_path, workers=2)
    workers = wait_for_workers(server, port, 2)
    server.kill()  # SIGKILL: the supervisor cannot tell its workers anything
    server.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_the_ceiling_route_is_only_in_the_benchs_server(
    settings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cadence.bench.ack_server import CEILING_PREFIX, ceiling_app
    from cadence.web.app import create_app
    from cadence.web.serve import app_from_environment

    def paths(app: Any) -> set[str]:
        return set(app.openapi()["paths"])

    monkeypatch.setenv("CADENCE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CADENCE_REDIS_URL", redis_url)
    monkeypatch.setenv("CADENCE_STATE_DIR", str(settings.state_dir))
    for app in (create_app(settings, redis_url), app_from_environment()):
        assert not any(path.startswith(CEILING_PREFIX) for path in paths(app))
    bench_paths = paths(ceiling_app())
    assert {CEILING_PREFIX + "/slack/interactions", CEILING_PREFIX + "/ack/{token}"} <= bench_paths
    assert paths(create_app(settings, redis_url)) <= bench_paths  # the same app, plus the ceiling
