"""The long-running processes as a user starts them: real subprocesses, real signals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cadence.config import Settings
from cadence.delivery.beat_lock import BeatLock
from cadence.delivery.broker import EmbeddedRedis, redis_client
from cadence.runtime import Runtime
from cadence.store.models import Delivery, DeliveryStatus
from tests.test_web import free_port


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """Lines of the process's stdout up to the first containing `needle`."""
    assert proc.stdout is not None
    stream = proc.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not seen; output so far:\n" + "\n".join(seen))


@pytest.mark.slow
def test_demo_sends_then_stops_every_process_on_sigterm(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(
        CADENCE_DATABASE_URL=settings.database_url,
        CADENCE_STATE_DIR=str(tmp_path / "state"),
        CADENCE_TICK_SECONDS="1",
    )
    # The demo's own embedded Redis unless the suite runs against a Redis server.
    env.pop("CADENCE_REDIS_URL", None)
    if os.environ.get("CADENCE_REDIS_URL"):
        env["CADENCE_REDIS_URL"] = os.environ["CADENCE_REDIS_URL"]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cadence", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = read_until(proc, "  sent  'A name, not a number'", timeout=90)
        assert any("imported 12 people" in line for line in lines)
        assert any("added launch message" in line for line in lines)
        # The demo answers: the inbox preview shows what people received.
        inbox = httpx.get(f"http://127.0.0.1:{port}/inbox", timeout=10)
        assert inbox.status_code == 200 and "Grace Hopper" in inbox.text
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.json()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Worker and beat were its children in its process group: none may be left running.
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    if "CADENCE_REDIS_URL" not in env:
        assert not (tmp_path / "state" / "redis" / "redis.sock").exists()
    with runtime.sessions() as session:
        sent = session.scalars(
            select(Delivery).where(Delivery.status == DeliveryStatus.SENT.value)
        ).all()
    assert sent
    texts = [d.rendered or "" for d in sent]
    assert any("A name, not a number" in t for t in texts)
    assert all("A name, not a number" in t or "Same-day refunds" in t for t in texts)


def test_only_one_beat_holds_the_lock(redis_url: str) -> None:
    first = BeatLock(redis_client(redis_url), ttl=5)
    second = BeatLock(redis_client(redis_url), ttl=5)
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


def test_a_standby_beat_takes_over_when_the_lease_runs_out(redis_url: str) -> None:
    client = redis_client(redis_url)
    crashed = BeatLock(client, ttl=0.3)
    assert crashed.try_acquire()  # and never renews: its process died
    standby = BeatLock(client, ttl=5)
    assert not standby.try_acquire()  # the lease is still running
    deadline = time.monotonic() + 5
    while not standby.try_acquire():
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)
    standby.release()


def test_embedded_redis_is_shared_by_processes_and_stopped_by_its_owner(tmp_path: Path) -> None:
    owner = EmbeddedRedis(tmp_path / "redis")
    assert owner.start() is True
    try:
        guest = EmbeddedRedis(tmp_path / "redis")
        assert guest.start() is False  # already running: reuse it
        redis_client(guest.url).set("k", "v")
        assert redis_client(owner.url).get("k") == b"v"
    finally:
        owner.stop()
    assert not owner.running()
