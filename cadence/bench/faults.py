"""`cadence bench faults`: nothing lost, nothing twice, under the faults the world produces.

Each scenario fans one occurrence out to N people through the real path (a database, a
Redis server of its own, a `cadence worker` and `cadence beat` as processes, the Slack
stand-in in a process of its own or the SMTP stand-in) and does something bad in the middle:
Slack answering 429, 5xx and late; Redis stopped and started; the worker killed with
SIGKILL; Redis flushed; two beats; the mail server refusing with 451 and dropping the
connection. Then it counts, from what the stand-ins received, who never got the message and
who got it twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from cadence.bench.fanout import TOKEN, add_occurrence, seed_people
from cadence.bench.slack_standin import SlackStandInProcess
from cadence.bench.smtp_standin import SmtpStandIn
from cadence.config import Settings
from cadence.delivery.broker import EmbeddedRedis, redis_client
from cadence.runtime import Runtime
from cadence.store.db import make_engine, schema_url, session_scope, upgrade
from cadence.store.models import Delivery, DeliveryStatus, Occurrence
from cadence.worker import make_celery

OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)
# Every process is told this, so a lost task or a dead worker's batch is found again soon.
STUCK_AFTER_SECONDS = 8
# The share of the fan-out sent when the scenario's fault is set off.
FAULT_AT = 0.3


@dataclass
class Live:
    """One scenario's running world."""

    root: Path
    settings: Settings
    runtime: Runtime
    redis: EmbeddedRedis
    slack: SlackStandInProcess
    smtp: SmtpStandIn | None
    child_env: dict[str, str]
    worker: subprocess.Popen[bytes] | None = None
    beats: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str]) -> subprocess.Popen[bytes]:
        # A session of its own, so SIGKILL reaches the worker's pool processes too.
        return subprocess.Popen(
            [sys.executable, "-m", "cadence", *args, "--loglevel=ERROR"],
            env=self.child_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start_worker(self) -> None:
        self.worker = self.start(["worker", "--concurrency=2"])
        app = make_celery(self.settings, self.redis.url)
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or self.worker.poll() is not None:
                raise RuntimeError("the bench worker did not start")

    def kill_worker(self) -> None:
        """What a machine losing power does to a worker mid-batch; then a new one starts."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()
        self.start_worker()

    def restart_redis(self) -> None:
        """Redis stopped (everything in it gone) and started again three seconds later."""
        self.redis.stop()
        time.sleep(3)
        self.redis.start()

    def flush_redis(self) -> None:
        redis_client(self.redis.url).flushall()

    def stop_all(self) -> None:
        for proc in [*self.beats, *([self.worker] if self.worker else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.beats, *([self.worker] if self.worker else [])]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    channel: str = "slack"
    chaos: tuple[dict[str, Any], ...] = ()
    fault: Callable[[Live], None] | None = None
    beats: int = 1
    env: tuple[tuple[str, str], ...] = ()
    smtp_faults: bool = False


SLACK_ERRORS = (
    {"share": 0.01, "status": 429, "retry_after": 2},
    {"share": 0.025, "status": 500},
    {"share": 0.025, "status": 503, "accept": True},  # posted, then the gateway gave up
    {"share": 0.02, "late": 5},
)
# Some posts are slow, so a kill or a restart finds requests in flight.
IN_FLIGHT = ({"share": 0.05, "late": 0.5},)

SCENARIOS = (
    Scenario(
        "slack-errors",
        "1% 429 (Retry-After 2), 5% 500/503 (half after posting), 2% answered after 5 s",
        chaos=SLACK_ERRORS,
        env=(("CADENCE_SLACK_TIMEOUT_SECONDS", "2"),),
    ),
    Scenario(
        "redis-restart",
        "Redis stopped mid-fan-out and started 3 s later",
        chaos=IN_FLIGHT,
        fault=Live.restart_redis,
    ),
    Scenario(
        "worker-kill-9",
        "the worker and its pool killed with SIGKILL mid-batch, a new one started",
        chaos=IN_FLIGHT,
        fault=Live.kill_worker,
    ),
    Scenario("redis-flushall", "FLUSHALL mid-fan-out", chaos=IN_FLIGHT, fault=Live.flush_redis),
    Scenario("two-beats", "two beats running side by side", beats=2),
    Scenario(
        "smtp-451-and-drops",
        "email: the server answers 451 or drops the connection for about 1 in 10 messages",
        channel="email",
        smtp_faults=True,
    ),
)
NAMES = tuple(s.name for s in SCENARIOS)


def _feed_smtp_faults(smtp: SmtpStandIn, stop: threading.Event, seed: int) -> None:
    """After about every tenth message accepted, one fault: a 451 at RCPT or DATA, or a
    connection dropped at DATA."""
    rng = random.Random(seed)
    next_at = rng.randint(5, 15)
    while not stop.wait(0.02):
        if smtp.faults_waiting == 0 and len(smtp.messages) >= next_at:
            next_at += rng.randint(5, 15)
            kind = rng.choice(["RCPT", "DATA", "drop"])
            if kind == "drop":
                smtp.fail_next("DATA", drop=True)
            else:
                smtp.fail_next(kind, code=451)


def _counts(rt: Runtime, message_id: int) -> tuple[int, int, int]:
    """(sent, failed, still open) deliveries of the message."""
    with session_scope(rt.sessions) as session:
        rows = dict(
            session.execute(
                select(Delivery.status, func.count())
                .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
                .where(Occurrence.message_id == message_id)
                .group_by(Delivery.status)
            ).all()
        )
    still = sum(int(rows.get(s, 0)) for s in OPEN)
    return int(rows.get("sent", 0)), int(rows.get("failed", 0)), still


def _received(live: Live, channel: str) -> Counter[str]:
    """Copies received, by person (their Slack id or address)."""
    got: Counter[str] = Counter()
    if channel == "email":
        assert live.smtp is not None
        for mail in live.smtp.messages:
            for rcpt in mail.rcpt_tos:
                got[rcpt.lower()] += 1
        return got
    for message in live.slack.messages():
        got[str(message["channel"])] += 1
    return got


def run_scenario(
    scenario: Scenario, recipients: int, live: Live, timeout: float, seed: int
) -> dict[str, Any]:
    live.slack.reset()
    live.slack.set_chaos(list(scenario.chaos), seed=seed)
    now = datetime.now(UTC)
    seed_people(live.runtime, recipients, now, with_slack=scenario.channel == "slack")
    live.child_env.update(dict(scenario.env))
    live.start_worker()
    message_id = add_occurrence(
        live.runtime, {"everyone": True}, now, scenario.name, channels=[scenario.channel]
    )
    stop_feeding = threading.Event()
    if scenario.smtp_faults and live.smtp is not None:
        threading.Thread(
            target=_feed_smtp_faults, args=(live.smtp, stop_feeding, seed), daemon=True
        ).start()
    started = time.monotonic()
    live.beats = [live.start(["beat"]) for _ in range(scenario.beats)]
    faulted = scenario.fault is None
    settled = False
    restarts = 0
    try:
        while time.monotonic() - started < timeout:
            if live.worker is not None and live.worker.poll() is not None:
                # Celery's reconnection can fall over on a Redis restart; `cadence up` and a
                # container's restart policy start the worker again, and so does this.
                restarts += 1
                live.start_worker()
            sent, failed, still = _counts(live.runtime, message_id)
            if not faulted and sent >= FAULT_AT * recipients:
                assert scenario.fault is not None
                scenario.fault(live)
                faulted = True
            if sent + failed >= recipients and still == 0:
                settled = True
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        stop_feeding.set()
        live.stop_all()
    got = _received(live, scenario.channel)
    stats = live.slack.stats()
    requests = stats.requests if scenario.channel == "slack" else None
    sent, failed, still = _counts(live.runtime, message_id)
    return {
        "scenario": scenario.name,
        "what": scenario.what,
        "recipients": recipients,
        "lost": recipients - len(got),
        "twice": sum(1 for n in got.values() if n > 1),
        "requests_per_delivery": round(requests / recipients, 3) if requests else None,
        "settle_seconds": round(elapsed, 1),
        "settled": settled,
        "recorded_sent": sent,
        "recorded_failed": failed,
        "still_open": still,
        "worker_restarts": restarts,
    }


@contextlib.contextmanager
def _database(root: Path, name: str, database_url: str | None) -> Iterator[str]:
    """A fresh database per scenario: a SQLite file, or a scratch PostgreSQL schema."""
    if database_url is None:
        yield f"sqlite:///{root / f'{name}.db'}"
        return
    schema = f"cadence_faults_{uuid.uuid4().hex[:8]}"
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema_url(database_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def faults(
    recipients: int = 2000,
    scenarios: tuple[str, ...] = NAMES,
    database_url: str | None = None,
    timeout: float = 600.0,
    seed: int = 1,
) -> dict[str, Any]:
    """Run the chosen scenarios; return one row of figures per scenario."""
    unknown = sorted(set(scenarios) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; choose from {', '.join(NAMES)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cadence-faults-") as tmp:
        root = Path(tmp)
        slack = SlackStandInProcess(token=TOKEN).start()
        try:
            for scenario in (s for s in SCENARIOS if s.name in scenarios):
                rows.append(_one(scenario, recipients, root, slack, database_url, timeout, seed))
        finally:
            slack.close()
    return {"recipients": recipients, "machine_cores": os.cpu_count(), "scenarios": rows}


def _one(
    scenario: Scenario,
    recipients: int,
    root: Path,
    slack: SlackStandInProcess,
    database_url: str | None,
    timeout: float,
    seed: int,
) -> dict[str, Any]:
    redis = EmbeddedRedis(root / f"redis-{scenario.name}")
    redis.start()
    smtp = SmtpStandIn().start() if scenario.channel == "email" else None
    with _database(root, scenario.name, database_url) as url:
        settings = Settings(database_url=url, redis_url=redis.url, state_dir=root / "state")
        rt = Runtime(settings)
        child_env = dict(os.environ)
        child_env.update(
            CADENCE_DATABASE_URL=url,
            CADENCE_REDIS_URL=redis.url,
            CADENCE_STATE_DIR=str(root / "state"),
            CADENCE_SLACK_BOT_TOKEN=TOKEN,
            CADENCE_SLACK_API_URL=slack.base_url,
            # 100 posts a second: a fan-out takes long enough for faults to land mid-batch.
            CADENCE_SLACK_RATE_PER_MINUTE="6000",
            CADENCE_SLACK_BURST="20",
            CADENCE_SLACK_CHANNEL_GAP_SECONDS="0",
            CADENCE_TICK_SECONDS="1",
            CADENCE_STUCK_AFTER_SECONDS=str(STUCK_AFTER_SECONDS),
            CADENCE_BATCH_SIZE="200",
            CADENCE_EMAIL_FROM="Comms <comms@example.com>",
            CADENCE_SECRET_KEY="bench-secret-key-that-is-long-enough-0123",
        )
        if smtp is not None:
            child_env["CADENCE_SMTP_URL"] = smtp.url
        live = Live(root, settings, rt, redis, slack, smtp, child_env)
        try:
            upgrade(rt.engine)
            return run_scenario(scenario, recipients, live, timeout, seed)
        finally:
            live.stop_all()
            rt.engine.dispose()
            if smtp is not None:
                smtp.close()
            redis.stop()


def table(result: dict[str, Any]) -> str:
    """The figures as the README shows them."""
    head = ["scenario", "recipients", "lost", "twice", "requests per delivery", "settle (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["scenarios"]:
        per = row["requests_per_delivery"]
        lines.append(
            f"| {row['scenario']} | {row['recipients']} | {row['lost']} | {row['twice']} | "
            f"{'-' if per is None else per} | {row['settle_seconds']} |"
        )
    return "\n".join(lines)
