"""`cadence bench fanout`: how fast one occurrence reaches N people through the real path.

Everything is real and local: a fresh SQLite database, an embedded Redis, a `cadence worker`
process, and the Slack stand-in in a process of its own. In the same run it measures the
ceiling (the fastest plain client loop against the same stand-in) and a naive baseline (one
Celery task per recipient), so the figures are ratios on this machine, not absolutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, insert, select

from cadence.bench.slack_standin import SlackStandInProcess
from cadence.config import Settings
from cadence.delivery.broker import EmbeddedRedis
from cadence.delivery.channels.base import Outgoing, Recipient
from cadence.delivery.formatting.slack import slack_message, slack_metadata
from cadence.runtime import Runtime
from cadence.store.db import session_scope, upgrade
from cadence.store.models import (
    Cadence,
    Delivery,
    DeliveryStatus,
    Message,
    Occurrence,
    OccurrenceStatus,
    Person,
)
from cadence.worker import TICK_TASK, make_celery

TOKEN = "xoxb-bench"
BODY = (
    "Hi {{ person.first_name }}, every customer gets a name, not a number: greet them by "
    "name and tell them yours. Your team lead {{ manager.name }} will say more on Monday."
)


@dataclass
class Environment:
    root: Path
    settings: Settings
    runtime: Runtime
    redis: EmbeddedRedis
    standin: SlackStandInProcess


def seed_people(rt: Runtime, people: int, now: datetime, with_slack: bool = True) -> None:
    """`people` staff written in bulk, each with a Slack id unless `with_slack` is off."""
    rows = [
        {
            "email": f"p{i:07d}@example.com",
            "name": f"Person {i}",
            "slack_user_id": f"U{i:09d}" if with_slack else None,
            "timezone": "UTC",
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(people)
    ]
    with session_scope(rt.sessions) as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(Person), rows[start : start + 5000])


def add_occurrence(
    rt: Runtime,
    audience: dict[str, Any],
    now: datetime,
    title: str,
    channels: list[str] | None = None,
) -> int:
    with session_scope(rt.sessions) as session:
        message = Message(
            kind="core",
            title=title,
            body=BODY,
            status="active",
            audience=audience,
            channels=channels or ["slack"],
            created_at=now,
            updated_at=now,
        )
        message.cadence = Cadence(
            rrule="FREQ=YEARLY",
            start_local=now.replace(tzinfo=None),
            timezone="UTC",
            # Already planned: the tick must only dispatch the one occurrence below.
            planned_until=now + timedelta(days=3650),
        )
        session.add(message)
        session.flush()
        session.add(
            Occurrence(
                message_id=message.id,
                sequence=0,
                zone="UTC",
                local_time=now.replace(tzinfo=None),
                due_at=now,
                status=OccurrenceStatus.PLANNED.value,
            )
        )
        return message.id


def _sent(rt: Runtime, message_id: int) -> tuple[int, int]:
    with session_scope(rt.sessions) as session:
        rows = session.execute(
            select(Delivery.status, func.count())
            .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
            .where(Occurrence.message_id == message_id)
            .group_by(Delivery.status)
        ).all()
    counts = dict(rows)
    return int(counts.get(DeliveryStatus.SENT.value, 0)), int(
        counts.get(DeliveryStatus.FAILED.value, 0)
    )


def _tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) summed over the worker and its pool. Forked pool processes share the
    parent's pages, which RSS counts once per process; PSS divides shared pages among their
    sharers, so its sum is what the worker really occupies."""
    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss, pss


def _start_worker(
    env: Environment, extra: dict[str, str], concurrency: int, pool: str
) -> subprocess.Popen[bytes]:
    child_env = dict(os.environ)
    child_env.update(
        CADENCE_DATABASE_URL=env.settings.database_url,
        CADENCE_REDIS_URL=env.redis.url,
        CADENCE_SLACK_BOT_TOKEN=TOKEN,
        CADENCE_SLACK_API_URL=env.standin.base_url,
        CADENCE_STATE_DIR=str(env.root / "state"),
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "cadence", "worker", f"--concurrency={concurrency}",
         f"--pool={pool}", "--loglevel=WARNING"],
        env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_path(
    env: Environment,
    message_id: int,
    expected: int,
    worker_env: dict[str, str],
    concurrency: int,
    pool: str,
    timeout: float,
) -> dict[str, Any]:
    """Start a worker, fire one tick, and time until every delivery is sent."""
    worker = _start_worker(env, worker_env, concurrency, pool)
    app = make_celery(env.settings, env.redis.url)
    peak_rss = peak_pss = 0
    try:
        ps = psutil.Process(worker.pid)
        # Wait until the worker consumes (a ping round trip) so start-up is not timed.
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the bench worker did not start")
        started = time.monotonic()
        app.send_task(TICK_TASK)
        last_tick = started
        sent = failed = 0
        while time.monotonic() - started < timeout:
            if time.monotonic() - last_tick >= 1.0:
                # What beat does: later ticks hand deliveries waiting to retry back to work.
                app.send_task(TICK_TASK, expires=2)
                last_tick = time.monotonic()
            rss, pss = _tree_memory(ps)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            sent, failed = _sent(env.runtime, message_id)
            if sent + failed >= expected:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        _stop(worker)
    return {
        "sent": sent,
        "failed": failed,
        "seconds": round(elapsed, 2),
        "per_second": round(sent / elapsed, 1) if elapsed else None,
        "worker_peak_pss_mb": round(peak_pss / 2**20, 1),
        "worker_peak_rss_sum_mb": round(peak_rss / 2**20, 1),
    }


async def _ceiling(base_url: str, n: int, in_flight: int) -> float:
    """The fastest plain client loop: AsyncWebClient, one session, `in_flight` at a time."""
    sample = Outgoing(
        delivery_id=1,
        recipient=Recipient(1, "p@example.com", "Person", "U1", "UTC"),
        title="Every customer gets a name, not a number",
        body=BODY.replace("{{ person.first_name }}", "Person").replace("{{ manager.name }}", ""),
        ack_url="http://127.0.0.1:8000/ack/x",
    )
    text, blocks = slack_message(sample)
    metadata = slack_metadata(sample)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = AsyncWebClient(token=TOKEN, base_url=base_url, session=session, retry_handlers=[])
        gate = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with gate:
                await client.chat_postMessage(
                    channel=f"U{i:09d}", text=text, blocks=blocks, metadata=metadata
                )

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.monotonic() - started)


def fanout(
    recipients: int,
    *,
    naive_recipients: int = 1000,
    rate_per_minute: float | None = None,
    concurrency: int = 2,
    pool: str = "prefork",
    batch_size: int = 500,
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Run the benchmark; return the figures as plain data."""
    with tempfile.TemporaryDirectory(prefix="cadence-bench-") as tmp:
        root = Path(tmp)
        redis = EmbeddedRedis(root / "redis")
        redis.start()
        standin = SlackStandInProcess(token=TOKEN, record=False).start()
        settings = Settings(
            database_url=f"sqlite:///{root / 'bench.db'}",
            redis_url=redis.url,
            state_dir=root / "state",
        )
        rt = Runtime(settings)
        env = Environment(root, settings, rt, redis, standin)
        try:
            upgrade(rt.engine)
            now = datetime.now(UTC)
            seed_people(rt, recipients, now)
            result: dict[str, Any] = {"recipients": recipients, "machine_cores": os.cpu_count()}
            fast_env = {
                "CADENCE_BATCH_SIZE": str(batch_size),
                "CADENCE_SLACK_RATE_PER_MINUTE": "100000",
                "CADENCE_SLACK_BURST": "10000",
            }
            if rate_per_minute is None:
                ceiling = asyncio.run(_ceiling(standin.base_url, recipients, 32))
                result["ceiling_per_second"] = round(ceiling, 1)
                standin.reset()
                real_id = add_occurrence(rt, {"everyone": True}, now, "fan-out")
                real = _run_path(env, real_id, recipients, fast_env, concurrency, pool, timeout)
                result["cadence"] = real
                naive_n = min(naive_recipients, recipients)
                naive_people = [f"p{i:07d}@example.com" for i in range(naive_n)]
                naive_id = add_occurrence(
                    rt, {"everyone": False, "people": naive_people}, now, "naive"
                )
                naive_env = {**fast_env, "CADENCE_BATCH_SIZE": "1"}
                naive = _run_path(env, naive_id, naive_n, naive_env, concurrency, pool, timeout)
                result["naive_one_task_per_recipient"] = naive
                rate = real["per_second"] or 0.0
                result["share_of_ceiling"] = round(rate / ceiling, 3) if ceiling else None
                result["times_naive"] = (
                    round(rate / naive["per_second"], 2) if naive["per_second"] else None
                )
            else:
                standin.configure(rate_per_minute=rate_per_minute, burst=10)
                # Cadence paces at the same rate with a smaller burst than Slack allows: Slack's
                # bucket and ours never line up exactly, and a full burst is what earns a 429.
                limited_env = {
                    "CADENCE_BATCH_SIZE": str(batch_size),
                    "CADENCE_SLACK_RATE_PER_MINUTE": str(rate_per_minute),
                    "CADENCE_SLACK_BURST": "5",
                }
                real_id = add_occurrence(rt, {"everyone": True}, now, "paced")
                real = _run_path(env, real_id, recipients, limited_env, concurrency, pool, timeout)
                stats = standin.stats()
                allowed = 1.05 * recipients / (rate_per_minute / 60.0)
                result.update(
                    rate_per_minute=rate_per_minute,
                    cadence=real,
                    allowed_seconds=round(allowed, 1),
                    within_time=real["seconds"] <= allowed,
                    requests=stats.requests,
                    answered_429=stats.ratelimited,
                    share_429=round(stats.ratelimited / max(1, stats.requests), 4),
                    lost=recipients - real["sent"],
                )
            return result
        finally:
            rt.engine.dispose()
            standin.close()
            redis.stop()
