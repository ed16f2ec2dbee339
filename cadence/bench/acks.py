"""`cadence bench acks`: how many acknowledgements the web app records per second, from
Slack "Got it" clicks and from email-link POSTs, against the ceiling of the same server.

Everything is real and local: a fresh database (a SQLite file, or a scratch schema on the
PostgreSQL server given, dropped afterwards) seeded with N sent deliveries per kind, an
embedded Redis, and the web app under uvicorn in a process of its own with N workers (so the
client and the server do not share a GIL). The client sends N correctly signed requests, C at
a time, each from the delivery's own recipient, and afterwards checks that every one was
recorded exactly once and that each Slack click queued its message update (the tasks only
queue: no worker runs).

The ceiling, measured in the same run against the same server, is the same number of
correctly signed requests to a route that checks them as the real one does (signature and
payload; CSRF field and token) and records nothing. It exists only in the bench's server
(`cadence.bench.ack_server`), never in `cadence web`.
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
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr
from sqlalchemy import func, insert, select, text

from cadence.answers.slack_signing import sign
from cadence.answers.tokens import make_ack_token
from cadence.bench.ack_server import CEILING_PREFIX
from cadence.bench.fanout import seed_people
from cadence.config import Settings
from cadence.delivery.broker import EmbeddedRedis, redis_client
from cadence.delivery.formatting.slack import ACK_ACTION_ID, action_value
from cadence.runtime import Runtime
from cadence.store.db import make_engine, schema_url, session_scope, upgrade
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    Occurrence,
    OccurrenceStatus,
    Person,
)
from cadence.web.ack_pages import CSRF_COOKIE, csrf_field

SIGNING_SECRET = "cadence-bench-signing-secret"
SECRET_KEY = "cadence-bench-secret-key-of-more-than-32-characters"
# The double-submit cookie a browser would hold after opening the confirm page.
CSRF_VALUE = "cadence-bench-csrf-cookie-0123456789abcdef"
CELERY_QUEUE = "celery"
PATH = "/slack/interactions"
KINDS = ("slack", "email")

# (delivery id, person id, Slack user id) for each seeded delivery
Seeded = list[tuple[int, int, str]]
# Builds one request (path, body, headers) just before it is sent.
Call = Callable[[], tuple[str, bytes, dict[str, str]]]


def _seed(rt: Runtime, n: int, now: datetime, kinds: tuple[str, ...]) -> dict[str, Seeded]:
    """N people; per kind one message, one occurrence and one sent delivery per person on
    that channel (separate messages, so an answer by email never repeats one from Slack)."""
    seed_people(rt, n, now)
    seeded: dict[str, Seeded] = {}
    with session_scope(rt.sessions) as session:
        ids = dict(session.execute(select(Person.slack_user_id, Person.id)).tuples().all())
        for kind in kinds:
            message = Message(
                kind="update",
                title=f"Every customer gets a name, not a number ({kind})",
                body="Greet customers by name and tell them yours.",
                status="active",
                audience={"everyone": True},
                channels=[kind],
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
            rows = [
                {
                    "occurrence_id": occurrence.id,
                    "person_id": person_id,
                    "channel": kind,
                    "variant": 0,
                    "status": DeliveryStatus.SENT.value,
                    "attempts": 1,
                    "created_at": now,
                    "sent_at": now,
                    "provider_channel": f"D{slack_id}" if kind == "slack" else None,
                    "provider_id": f"{int(now.timestamp())}.{i:06d}" if kind == "slack" else None,
                }
                for i, (slack_id, person_id) in enumerate(sorted(ids.items()))
            ]
            for start in range(0, n, 5000):
                session.execute(insert(Delivery), rows[start : start + 5000])
            triples = session.execute(
                select(Delivery.id, Person.id, Person.slack_user_id)
                .join(Person, Delivery.person_id == Person.id)
                .where(Delivery.occurrence_id == occurrence.id)
                .order_by(Delivery.id)
            ).tuples()
            seeded[kind] = [(d, p, str(slack_id)) for d, p, slack_id in triples]
    return seeded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(
    settings: Settings, port: int, workers: int, log: Path
) -> subprocess.Popen[bytes]:
    """The server writes its log to a file: a pipe nobody reads during the run would, once
    full, stop a server that logs."""
    env = dict(os.environ)
    env.update(
        CADENCE_DATABASE_URL=settings.database_url,
        CADENCE_REDIS_URL=settings.redis_url or "",
        CADENCE_STATE_DIR=str(settings.state_dir),
        CADENCE_SECRET_KEY=SECRET_KEY,
        CADENCE_SLACK_SIGNING_SECRET=SIGNING_SECRET,
        # A throwaway database on loopback: production's start-up checks do not apply.
        CADENCE_ENV="development",
    )
    command = [sys.executable, "-m", "cadence.bench.ack_server", "--port", str(port)]
    command += ["--workers", str(workers), "--loglevel", "WARNING"]
    with log.open("wb") as err:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)


def _wait_ready(
    base_url: str, server: subprocess.Popen[bytes], workers: int, log: Path, timeout: float = 120
) -> None:
    """Up when every worker has answered: the socket is shared, so a burst sent as soon as
    the first one listens would be served by fewer processes than asked for."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = log.read_text(errors="replace")
            raise RuntimeError(f"the web server exited with {server.returncode}: {err[-2000:]}")
        try:
            # A new connection each time, so the kernel may hand it to any worker.
            response = httpx.get(base_url + CEILING_PREFIX + "/pid", timeout=2)
            if response.status_code == 200:
                seen.add(int(response.json()["pid"]))
                if len(seen) >= workers:
                    return
                continue
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the web server did not start {workers} worker(s); {len(seen)} answered")


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


def slack_calls(seeded: Seeded, prefix: str = "") -> list[Call]:
    """One "Got it" click per delivery, signed just before it is sent, as Slack does, so
    waiting in line never makes a click stale."""

    def call(body: bytes) -> Call:
        return lambda: (prefix + PATH, body, sign(SIGNING_SECRET, body, time.time()))

    return [call(click_body(d, user, n)) for n, (d, _, user) in enumerate(seeded)]


def email_calls(seeded: Seeded, prefix: str = "") -> list[Call]:
    """One "Acknowledge" form POST per delivery, as the browser sends it from the confirm
    page: the link's token in the path, the CSRF cookie and its field."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"{CSRF_COOKIE}={CSRF_VALUE}",
    }
    calls: list[Call] = []
    for delivery_id, person_id, _ in seeded:
        token = make_ack_token(SECRET_KEY, delivery_id, person_id)
        form = {"kind": "ack", "csrf": csrf_field(SECRET_KEY, CSRF_VALUE, token)}
        request = (f"{prefix}/ack/{token}", urlencode(form).encode(), headers)
        calls.append(lambda request=request: request)  # type: ignore[misc]
    return calls


async def _send_all(
    base_url: str, calls: list[Call], concurrency: int
) -> tuple[float, list[float], Counter[str], set[int]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    answered: set[int] = set()  # which calls got a 200
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def one(i: int, call: Call) -> None:
            async with gate:
                path, body, headers = call()
                started = time.perf_counter()
                try:
                    response = await client.post(path, content=body, headers=headers)
                    statuses[str(response.status_code)] += 1
                    if response.status_code == 200:
                        answered.add(i)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(one(i, call) for i, call in enumerate(calls)))
        return time.monotonic() - started, latencies, statuses, answered


def _run(base_url: str, calls: list[Call], concurrency: int) -> tuple[dict[str, Any], set[int]]:
    """The figures of one run, and which calls (by index) were answered 200."""
    seconds, latencies, statuses, answered = asyncio.run(_send_all(base_url, calls, concurrency))
    figures = {
        "seconds": round(seconds, 3),
        "per_second": round(statuses["200"] / seconds, 1) if seconds else None,
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 2),
            "p99": round(_percentile(latencies, 0.99) * 1000, 2),
            "max": round(max(latencies) * 1000, 2),
        },
        "responses": dict(sorted(statuses.items())),
    }
    return figures, answered


def _percentile(values: list[float], share: float) -> float:
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[max(0, min(98, round(share * 100) - 1))]


def _recorded(rt: Runtime, channel: str) -> tuple[dict[str, int], set[int]]:
    """Counts of the answers on this channel, and the deliveries with a counted one."""
    a, d = Acknowledgement, Delivery
    on_channel = a.delivery_id.in_(select(d.id).where(d.channel == channel))
    with session_scope(rt.sessions) as session:
        counted = session.scalar(select(func.count()).select_from(a).where(a.counted, on_channel))
        total = session.scalar(select(func.count()).select_from(a).where(on_channel))
        ids = set(session.scalars(select(a.delivery_id).where(a.counted, on_channel)))
    return {"counted": int(counted or 0), "rows": int(total or 0), "deliveries": len(ids)}, ids


def _entry(
    clicks: int,
    ceiling: dict[str, Any],
    cadence: dict[str, Any],
    recorded: dict[str, int],
    answered_not_recorded: int,
) -> dict[str, Any]:
    """One kind's figures, under the keys the bench has always printed. `lost` counts every
    request not recorded; `lost_after_200` only those answered 200 (the ones a client, Slack
    included, would not send again)."""
    seconds = cadence["seconds"]
    per_second = round(recorded["counted"] / seconds, 1) if seconds else None
    lost = clicks - recorded["deliveries"]
    return {
        "seconds": seconds,
        "acknowledgements_per_second": per_second,
        "latency_ms": cadence["latency_ms"],
        "responses": cadence["responses"],
        "recorded": {
            "counted": recorded["counted"],
            "rows": recorded["rows"],
            "lost": lost,
            "lost_after_200": answered_not_recorded,
            "exactly_once": recorded["counted"] == clicks
            and recorded["rows"] == clicks
            and lost == 0,
        },
        "ceiling": ceiling,
        "share_of_ceiling": round(per_second / ceiling["per_second"], 3)
        if per_second and ceiling["per_second"]
        else None,
    }


def _calls(kind: str, seeded: Seeded, prefix: str = "") -> list[Call]:
    return slack_calls(seeded, prefix) if kind == "slack" else email_calls(seeded, prefix)


def acks(
    clicks: int,
    *,
    concurrency: int = 32,
    database_url: str | None = None,
    workers: int = 1,
    kinds: tuple[str, ...] = ("slack",),
) -> dict[str, Any]:
    """Run the benchmark; return the figures as plain data. The top-level figures are the
    first kind's; `by_kind` has every kind measured."""
    assert kinds and set(kinds) <= set(KINDS), kinds
    with tempfile.TemporaryDirectory(prefix="cadence-bench-acks-") as tmp:
        root = Path(tmp)
        schema = None
        admin = None
        if database_url:
            schema = f"cadence_bench_acks_{uuid.uuid4().hex[:8]}"
            admin = make_engine(database_url)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = schema_url(database_url, schema)
        else:
            url = f"sqlite:///{root / 'bench.db'}"
        redis = EmbeddedRedis(root / "redis")
        redis.start()
        settings = Settings(
            database_url=url,
            redis_url=redis.url,
            state_dir=root / "state",
            secret_key=SecretStr(SECRET_KEY),
            slack_signing_secret=SecretStr(SIGNING_SECRET),
        )
        rt = Runtime(settings)
        try:
            upgrade(rt.engine)
            seeded = _seed(rt, clicks, datetime.now(UTC), kinds)
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}"
            log = root / "server.log"
            server = _start_server(settings, port, workers, log)
            runs: dict[str, tuple[dict[str, Any], dict[str, Any], set[int]]] = {}
            try:
                _wait_ready(base_url, server, workers, log)
                for kind in kinds:
                    # The ceiling first: it also warms every worker up before Cadence's run.
                    ceiling, _ = _run(base_url, _calls(kind, seeded[kind], CEILING_PREFIX),
                                      concurrency)  # fmt: skip
                    cadence, answered = _run(base_url, _calls(kind, seeded[kind]), concurrency)
                    runs[kind] = (ceiling, cadence, answered)
            finally:
                _stop(server)
            by_kind = {}
            for kind in kinds:
                ceiling, cadence, answered = runs[kind]
                recorded, ids = _recorded(rt, kind)
                missing = len({seeded[kind][i][0] for i in answered} - ids)
                by_kind[kind] = _entry(clicks, ceiling, cadence, recorded, missing)
            queued = int(redis_client(redis.url).llen(CELERY_QUEUE))
            database = rt.engine.dialect.name
        finally:
            rt.engine.dispose()
            redis.stop()
            if admin is not None and schema is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    return {
        "clicks": clicks,
        "concurrency": concurrency,
        "workers": workers,
        "machine_cores": os.cpu_count(),
        "database": database,
        "kind": kinds[0],
        **by_kind[kinds[0]],
        "by_kind": by_kind,
        "updates_queued": queued,
    }
