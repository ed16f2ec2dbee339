"""The beat through Redis restarts, flushes and a second beat: it pauses, never exits, and
only one ticks. Real Redis; the loop's time is passed in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from cadence.config import Settings
from cadence.delivery.beat import STANDBY_POLL, Beat
from cadence.delivery.beat_health import (
    DEFAULT_MAX_AGE,
    HeartbeatWriter,
    describe,
    heartbeat_path,
    problems,
    read_heartbeat,
)
from cadence.delivery.beat_lock import BeatLock
from cadence.delivery.broker import EmbeddedRedis, redis_client
from cadence.errors import CadenceError
from tests.test_web import free_port


class Ticks:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_a_beat_ticks_on_time_and_renews_its_lease(redis_url: str) -> None:
    ticks = Ticks()
    beat = Beat(BeatLock(redis_client(redis_url), ttl=3), ticks, tick_seconds=2)
    t = 1000.0
    for _ in range(20):
        t += beat.step(t)
    # 20 steps cover ticks every 2 s and renewals every 1 s, and nothing in between.
    assert ticks.count >= 5 and beat.state.holding
    assert redis_client(redis_url).pttl("cadence:beat-lock") > 0


def test_after_a_flushall_the_beat_takes_its_lock_again_and_keeps_ticking(
    redis_url: str,
) -> None:
    ticks = Ticks()
    beat = Beat(BeatLock(redis_client(redis_url), ttl=3), ticks, tick_seconds=1)
    t = 0.0
    beat.step(t)
    assert beat.state.holding and ticks.count == 1
    redis_client(redis_url).flushall()
    t += 1.0  # a tick is due before the renewal: it checks the lease is still ours
    beat.step(t)
    assert not beat.state.holding and ticks.count == 1
    before = ticks.count
    for _ in range(6):
        t += beat.step(t)
    assert beat.state.holding and ticks.count > before


def test_two_beats_never_tick_together_and_the_standby_takes_over(redis_url: str) -> None:
    first_ticks, second_ticks = Ticks(), Ticks()
    first = Beat(BeatLock(redis_client(redis_url), ttl=1.5), first_ticks, tick_seconds=0.5)
    second = Beat(BeatLock(redis_client(redis_url), ttl=1.5), second_ticks, tick_seconds=0.5)
    start = time.monotonic()
    while time.monotonic() - start < 1.2:
        now = time.monotonic()
        first.step(now)
        second.step(now)
        time.sleep(0.05)
    assert first_ticks.count >= 2 and second_ticks.count == 0
    assert second.step(time.monotonic()) == STANDBY_POLL
    # The first beat dies (never renews, never releases): its lease runs out.
    deadline = time.monotonic() + 5
    while not second.state.holding:
        assert time.monotonic() < deadline
        second.step(time.monotonic())
        time.sleep(0.1)
    assert second_ticks.count >= 1


def test_a_beat_with_redis_away_waits_instead_of_failing(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    ticks = Ticks()
    beat = Beat(BeatLock(redis_client(server.url), ttl=3), ticks, tick_seconds=1)
    try:
        t = 0.0
        beat.step(t)
        assert beat.state.holding
        server.stop()
        t += 1.0
        assert beat.step(t) == STANDBY_POLL  # renewal failed: stop ticking, wait
        assert not beat.state.holding
        stopped_at = ticks.count
        assert beat.step(t + STANDBY_POLL) == STANDBY_POLL  # still away: still waiting
        assert ticks.count == stopped_at
        server.start()
        t += 2 * STANDBY_POLL
        beat.step(t)
        assert beat.state.holding and ticks.count == stopped_at + 1
    finally:
        server.stop()


def process_env(settings: Settings, tmp_path: Path, server: EmbeddedRedis) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CADENCE_DATABASE_URL=settings.database_url,
        CADENCE_STATE_DIR=str(tmp_path / "state"),
        CADENCE_REDIS_URL=server.url,
        CADENCE_TICK_SECONDS="0.5",
    )
    return env


@pytest.mark.slow
def test_cadence_beat_keeps_ticking_through_a_redis_restart(
    settings: Settings, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    env = process_env(settings, tmp_path, server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cadence", "beat", "--loglevel=INFO"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def queued() -> int:
        try:
            return int(redis_client(server.url, timeout=1).llen("celery"))
        except (redis.RedisError, OSError):
            return -1

    def wait_for_ticks(what: str) -> None:
        deadline = time.monotonic() + 30
        while queued() < 2:
            assert proc.poll() is None, f"beat exited {what}: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, f"no ticks {what}"
            time.sleep(0.1)

    try:
        wait_for_ticks("at first")
        server.stop()  # a restart: everything in Redis is gone, the lock included
        time.sleep(3)
        assert proc.poll() is None, "beat exited when Redis went away"
        server.start()
        wait_for_ticks("after Redis came back")
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        server.stop()
    assert proc.returncode == 0, err
    assert "holding the beat lock" in err


@pytest.mark.slow
def test_cadence_up_keeps_running_through_a_redis_restart(
    settings: Settings, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    env = process_env(settings, tmp_path, server)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cadence", "up", "--duration", "25", f"--port={port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers(f"http://127.0.0.1:{port}/health"):
            assert proc.poll() is None and time.monotonic() < deadline, "cadence up did not start"
            time.sleep(0.2)
        server.stop()
        time.sleep(4)
        assert proc.poll() is None, "cadence up stopped when Redis went away"
        server.start()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.stop()
    # It ran its whole duration: no process exited on its own.
    assert proc.returncode == 0, err
    assert "stopping: duration reached" in err


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def test_up_starts_a_child_that_exits_again_and_stops_one_that_keeps_exiting() -> None:
    from cadence.cli.supervisor import MAX_RESTARTS, Supervisor

    sup = Supervisor(env=dict(os.environ), restart_pause=0.05)
    sup.start("short-lived", ["--help"])  # exits at once, every time
    started = time.monotonic()
    code = sup.run(duration=60)
    # Started again after each exit, then given up on: everything stopped, exit code 1.
    assert code == 1 and time.monotonic() - started < 30
    assert len(sup._exits["short-lived"]) == MAX_RESTARTS + 1


def test_the_heartbeat_says_a_beat_is_alive_standing_by_or_stuck(
    redis_url: str, tmp_path: Path
) -> None:
    path = heartbeat_path(tmp_path)
    wall = [1_000.0]
    writer = HeartbeatWriter(path, tick_seconds=5, wall=lambda: wall[0])
    first = Beat(BeatLock(redis_client(redis_url), ttl=30), Ticks(), tick_seconds=5)
    second = Beat(BeatLock(redis_client(redis_url), ttl=30), Ticks(), tick_seconds=5)
    first.step(0.0)
    writer(first.state, 0.0)
    beat = read_heartbeat(path)
    assert beat.holding and beat.ticks == 1 and beat.last_tick_at == 1_000.0
    assert problems(beat, now=1_010.0) == []
    assert "holding the lock, 1 ticks" in describe(beat, 1_010.0)

    # A beat on standby is healthy: waiting for the lock is its job.
    second.step(0.0)
    writer(second.state, 0.0)
    assert problems(read_heartbeat(path), now=1_001.0) == []
    assert "standing by" in describe(read_heartbeat(path), 1_001.0)

    # Holding the lock but no tick got out for two minutes (the publish keeps failing).
    wall[0] = 1_120.0
    writer(first.state, 120.0)
    stuck = problems(read_heartbeat(path), now=1_121.0)
    assert len(stuck) == 1 and "has not asked for a tick for 120 s" in stuck[0]

    # A beat that stopped writing is dead, whatever it was doing.
    dead = problems(read_heartbeat(path), now=1_121.0 + DEFAULT_MAX_AGE + 1)
    assert any("stopped or is stuck" in line for line in dead)


def test_a_heartbeat_file_that_cannot_be_written_never_stops_the_beat(
    redis_url: str, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state folder should be")
    writer = HeartbeatWriter(heartbeat_path(blocked), tick_seconds=1)
    beat = Beat(BeatLock(redis_client(redis_url), ttl=30), Ticks(), tick_seconds=1)
    beat.step(0.0)
    writer(beat.state, 0.0)  # logged, not raised
    writer(beat.state, 1.0)
    with pytest.raises(CadenceError, match="cannot be read"):
        read_heartbeat(heartbeat_path(blocked))
    with pytest.raises(CadenceError, match="no beat has run here yet"):
        read_heartbeat(heartbeat_path(tmp_path / "elsewhere"))
