"""`cadence bench acks`: how many Slack "Got it" clicks the web app records per second.

Everything is real and local: a fresh SQLite database seeded with N sent Slack deliveries, an
embedded Redis, and `cadence web` in a process of its own (so the client and the server do
not share a GIL). The client sends N correctly signed `block_actions` clicks, C at a time,
each from the delivery's own recipient, and afterwards checks that every click was recorded
exactly once and that each queued its message update (the tasks only queue: no worker runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, insert, select

from cadence.answers.slack_signing import sign
from cadence.bench.fanout import seed_people
from cadence.config import Settings
from cadence.delivery.broker import EmbeddedRedis, redis_client
from cadence.delivery.formatting.slack import ACK_ACTION_ID, action_value
from cadence.runtime import Runtime
from cadence.store.db import session_scope, upgrade
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    Occurrence,
    OccurrenceStatus,
    Person,
)

SIGNING_SECRET = "cadence-bench-signing-secret"
CELERY_QUEUE = "celery"
PATH = "/slack/interactions"


def _seed(rt: Runtime, n: int, now: datetime) -> list[tuple[int, str]]:
    """N people, one message, one occurrence and one sent Slack delivery per person."""
    seed_people(rt, n, now)
    with session_scope(rt.sessions) as session:
        message = Message(
            kind="update",
            title="Every customer gets a name, not a number",
            body="Greet customers by name and tell them yours.",
            status="active",
            audience={"everyone": True},
            channels=["slack"],
            created_at=now,
            updated_at=now,
        )
        session.add(message)
        session.flush()
        occurrence = Occurrence(
            message_id=message.id,
            sequence=0,
            zone="UTC",
            local_time=now.replace(tzinfo=None),
            due_at=now,
            status=OccurrenceStatus.DISPATCHED.value,
            dispatched_at=now,
        )
        session.add(occurrence)
        session.flush()
        ids = dict(session.execute(select(Person.slack_user_id, Person.id)).tuples().all())
        rows = [
            {
                "occurrence_id": occurrence.id,
                "person_id": person_id,
                "channel": "slack",
                "variant": 0,
                "status": DeliveryStatus.SENT.value,
                "attempts": 1,
                "created_at": now,
                "sent_at": now,
                "provider_channel": f"D{slack_id}",
                "provider_id": f"{int(now.timestamp())}.{i:06d}",
            }
            for i, (slack_id, person_id) in enumerate(sorted(ids.items()))
        ]
        for start in range(0, n, 5000):
            session.execute(insert(Delivery), rows[start : start + 5000])
        pairs = session.execute(
            select(Delivery.id, Person.slack_user_id)
            .join(Person, Delivery.person_id == Person.id)
            .order_by(Delivery.id)
        ).tuples()
        return [(delivery_id, str(slack_id)) for delivery_id, slack_id in pairs]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(settings: Settings, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        CADENCE_DATABASE_URL=settings.database_url,
        CADENCE_REDIS_URL=redis_url,
        CADENCE_STATE_DIR=str(settings.state_dir),
        CADENCE_SLACK_SIGNING_SECRET=SIGNING_SECRET,
        # A throwaway database on loopback: production's start-up checks do not apply.
        CADENCE_ENV="development",
    )
    command = [sys.executable, "-m", "cadence", "web", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--loglevel", "WARNING"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_ready(base_url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Up when an unsigned POST is refused: the route, not just the socket, answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise RuntimeError(f"`cadence web` exited with {server.returncode}: {err[-2000:]}")
        try:
            if httpx.post(base_url + PATH, content=b"", timeout=2).status_code == 401:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("`cadence web` did not start")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def click_body(delivery_id: int, slack_user_id: str, n: int) -> bytes:
    """A `block_actions` body as Slack sends it when someone presses "Got it"."""
    payload = {
        "type": "block_actions",
        "user": {"id": slack_user_id},
        "trigger_id": f"{n}.{delivery_id}.bench",
        "container": {
            "type": "message",
            "channel_id": f"D{slack_user_id}",
            "message_ts": f"1700000000.{n:06d}",
        },
        "response_url": f"https://hooks.slack.com/actions/T0/{n}/bench",
        "actions": [
            {
                "type": "button",
                "action_id": ACK_ACTION_ID,
                "block_id": "cadence_actions",
                "value": action_value(delivery_id),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def _click_all(
    base_url: str, pairs: list[tuple[int, str]], concurrency: int
) -> tuple[float, list[float], Counter[str]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def one(n: int, delivery_id: int, user: str) -> None:
            body = click_body(delivery_id, user, n)
            async with gate:
                # Signed just before it is sent, as Slack does, so waiting in line never
                # makes a click stale.
                headers = sign(SIGNING_SECRET, body, time.time())
                started = time.perf_counter()
                try:
                    response = await client.post(PATH, content=body, headers=headers)
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(one(n, d, u) for n, (d, u) in enumerate(pairs)))
        return time.monotonic() - started, latencies, statuses


def _percentile(values: list[float], share: float) -> float:
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[max(0, min(98, round(share * 100) - 1))]


def _recorded(rt: Runtime) -> dict[str, int]:
    with session_scope(rt.sessions) as session:
        counted = session.scalar(
            select(func.count()).select_from(Acknowledgement).where(Acknowledgement.counted)
        )
        total = session.scalar(select(func.count()).select_from(Acknowledgement))
        deliveries = session.scalar(
            select(func.count(func.distinct(Acknowledgement.delivery_id))).where(
                Acknowledgement.counted
            )
        )
    return {
        "counted": int(counted or 0),
        "rows": int(total or 0),
        "deliveries": int(deliveries or 0),
    }


def acks(clicks: int, *, concurrency: int = 32) -> dict[str, Any]:
    """Run the benchmark; return the figures as plain data."""
    with tempfile.TemporaryDirectory(prefix="cadence-bench-acks-") as tmp:
        root = Path(tmp)
        redis = EmbeddedRedis(root / "redis")
        redis.start()
        settings = Settings(
            database_url=f"sqlite:///{root / 'bench.db'}",
            redis_url=redis.url,
            state_dir=root / "state",
        )
        rt = Runtime(settings)
        try:
            upgrade(rt.engine)
            pairs = _seed(rt, clicks, datetime.now(UTC))
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}"
            server = _start_server(settings, redis.url, port)
            try:
                _wait_ready(base_url, server)
                seconds, latencies, statuses = asyncio.run(_click_all(base_url, pairs, concurrency))
            finally:
                _stop(server)
            recorded = _recorded(rt)
            queued = int(redis_client(redis.url).llen(CELERY_QUEUE))
        finally:
            rt.engine.dispose()
            redis.stop()
    lost = clicks - recorded["deliveries"]
    return {
        "clicks": clicks,
        "concurrency": concurrency,
        "machine_cores": os.cpu_count(),
        "database": "sqlite",
        "seconds": round(seconds, 3),
        "acknowledgements_per_second": round(recorded["counted"] / seconds, 1) if seconds else None,
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 2),
            "p99": round(_percentile(latencies, 0.99) * 1000, 2),
            "max": round(max(latencies) * 1000, 2),
        },
        "responses": dict(sorted(statuses.items())),
        "recorded": {
            "counted": recorded["counted"],
            "rows": recorded["rows"],
            "lost": lost,
            "exactly_once": recorded["counted"] == clicks
            and recorded["rows"] == clicks
            and lost == 0,
        },
        "updates_queued": queued,
    }
