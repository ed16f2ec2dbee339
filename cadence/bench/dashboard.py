"""`cadence bench dashboard`: how long the overview and a message's page take to serve over
a large history, on SQLite or PostgreSQL.

The history is generated inside the database (INSERT ... SELECT), so a million deliveries
take seconds to make: people in nested teams under leaders, core messages repeated many
times, every repetition sent to everyone, and most of them acknowledged.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, and_, case, func, insert, select, text

from cadence.config import Settings
from cadence.delivery.broker import EmbeddedRedis, redis_client
from cadence.figures import summaries
from cadence.figures.summaries import SEND_PURPOSES
from cadence.runtime import Runtime
from cadence.store.db import make_engine, schema_url, session_scope, upgrade
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    Occurrence,
    Person,
    Team,
)

PEOPLE_PER_TEAM = 1000
MESSAGES = 10


def generate(rt: Runtime, deliveries: int, now: datetime) -> dict[str, int]:
    """Make a history of about `deliveries` sent deliveries; return its dimensions."""
    people = max(100, min(20_000, deliveries // 100))
    teams = max(1, people // PEOPLE_PER_TEAM)
    repetitions = max(1, deliveries // (people * MESSAGES))
    start = now - timedelta(days=7 * repetitions)
    with session_scope(rt.sessions) as session:
        root = Team(path="Support", name="Support")
        session.add(root)
        session.flush()
        team_ids = []
        for t in range(teams):
            team = Team(path=f"Support/Team {t}", name=f"Team {t}", parent_id=root.id)
            session.add(team)
            session.flush()
            team_ids.append(team.id)
        head = Person(email="head@example.com", name="Head", team_id=root.id, active=True,
                      created_at=now, updated_at=now)  # fmt: skip
        session.add(head)
        session.flush()
        leaders = []
        for t, team_id in enumerate(team_ids):
            leader = Person(
                email=f"lead{t}@example.com",
                name=f"Lead {t}",
                team_id=team_id,
                manager_id=head.id,
                active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(leader)
            session.flush()
            leaders.append(leader.id)
        rows = [
            {
                "email": f"p{i:06d}@example.com",
                "name": f"Person {i}",
                "team_id": team_ids[i % teams],
                "manager_id": leaders[i % teams],
                "timezone": ("Europe/London", "America/New_York", "Australia/Sydney")[i % 3],
                "channel": ("slack", "email")[i % 2],
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(people)
        ]
        for chunk in range(0, len(rows), 5000):
            session.execute(insert(Person), rows[chunk : chunk + 5000])
        for m in range(MESSAGES):
            message = Message(kind="core", title=f"Core message {m}", body="Body", status="active",
                              audience={"everyone": True}, channels=["slack", "email"],
                              created_at=start, updated_at=start)  # fmt: skip
            session.add(message)
            session.flush()
            session.execute(
                insert(Occurrence),
                [
                    {
                        "message_id": message.id,
                        "purpose": "cadence",
                        "sequence": r,
                        "zone": "UTC",
                        "local_time": (start + timedelta(days=7 * r, hours=m)).replace(tzinfo=None),
                        "due_at": start + timedelta(days=7 * r, hours=m),
                        "status": "dispatched",
                    }
                    for r in range(repetitions)
                ],
            )
    _fill(rt.engine)
    return {"people": people, "teams": teams, "messages": MESSAGES, "repetitions": repetitions}


def _fill(engine: Engine, occurrence_id: int | None = None) -> None:
    """Every occurrence (or just this one) to every person, sent a few minutes late; about
    two in three acknowledged, some with a question and a clarity rating."""
    sqlite = engine.dialect.name == "sqlite"
    only = "" if occurrence_id is None else f"AND o.id = {int(occurrence_id)}"
    only_delivered = "" if occurrence_id is None else f"AND d.occurrence_id = {int(occurrence_id)}"
    later = (
        "datetime(o.due_at, '+' || (p.id % 30) || ' minutes')"
        if sqlite
        else "o.due_at + (p.id % 30) * interval '1 minute'"
    )
    answered = (
        "datetime(d.sent_at, '+' || (d.id % 600) || ' minutes')"
        if sqlite
        else "d.sent_at + (d.id % 600) * interval '1 minute'"
    )
    with engine.begin() as conn:
        conn.execute(
            text(f"""
            INSERT INTO deliveries (occurrence_id, person_id, channel, variant, status,
                attempts, created_at, queued_at, sent_at, maybe_sent, content_version)
            SELECT o.id, p.id, COALESCE(p.channel, 'slack'), o.sequence % 2, 'sent', 1,
                o.due_at, o.due_at, {later}, false, 1
            FROM occurrences o CROSS JOIN people p
            WHERE o.purpose = 'cadence' AND p.manager_id IS NOT NULL {only}
        """)
        )
        conn.execute(
            text(f"""
            INSERT INTO acknowledgements (delivery_id, occurrence_id, person_id, kind,
                question, clarity, message_version, via, counted, created_at)
            SELECT d.id, d.occurrence_id, d.person_id,
                CASE WHEN d.id % 17 = 0 THEN 'question' ELSE 'ack' END,
                CASE WHEN d.id % 17 = 0 THEN 'Does this apply to refunds?' ELSE NULL END,
                CASE WHEN d.id % 3 = 0 THEN d.id % 11 ELSE NULL END,
                1, d.channel, true, {answered}
            FROM deliveries d WHERE d.id % 3 <> 2 {only_delivered}
        """)
        )


@contextmanager
def _serve(rt: Runtime, redis_url: str) -> Iterator[str]:
    from cadence.web.app import build_app
    from cadence.web.deps import WebDeps

    deps = WebDeps(rt.settings, rt.sessions, redis_client(redis_url), lambda name, args: None)
    config = uvicorn.Config(build_app(deps), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _timed(client: httpx.Client, path: str, runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return {
        "path": path,
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "runs": runs,
    }


def _baseline(rt: Runtime, now: datetime, runs: int) -> dict[str, Any]:
    """The cheapest way to the overview's counts without summaries: planned, sent and
    acknowledged person-occurrences straight from deliveries and acknowledgements, in one
    statement (no percentiles, no breakdown, no page)."""
    d, a = Delivery, Acknowledgement
    sent = case((d.status == DeliveryStatus.SENT.value, d.sent_at))
    units = (
        select(
            d.occurrence_id.label("occurrence_id"),
            d.person_id.label("person_id"),
            func.max(case((d.status != DeliveryStatus.CANCELLED.value, 1), else_=0)).label(
                "planned"
            ),
            func.min(sent).label("first_sent"),
        )
        .join(Occurrence, Occurrence.id == d.occurrence_id)
        .where(Occurrence.purpose.in_(SEND_PURPOSES), Occurrence.due_at <= now)
        .group_by(d.occurrence_id, d.person_id)
        .subquery()
    )
    answered = (
        select(a.occurrence_id, a.person_id)
        .where(a.counted.is_(True))
        .group_by(a.occurrence_id, a.person_id)
        .subquery()
    )
    stmt = select(
        func.sum(units.c.planned),
        func.count(units.c.first_sent),
        func.count(answered.c.person_id),
    ).select_from(
        units.outerjoin(
            answered,
            and_(
                answered.c.occurrence_id == units.c.occurrence_id,
                answered.c.person_id == units.c.person_id,
            ),
        )
    )
    times = []
    with session_scope(rt.sessions) as session:
        for _ in range(runs):
            started = time.perf_counter()
            session.execute(stmt).one()
            times.append((time.perf_counter() - started) * 1000)
    return {"what": "overview counts from deliveries and acknowledgements",
            "median_ms": round(statistics.median(times), 1), "runs": runs}  # fmt: skip


def _refresh(rt: Runtime, now: datetime) -> dict[str, Any]:
    """One more repetition of a message sent to everyone, two in three answering: how long
    the summaries take to catch up with it (what a beat tick does after a fan-out)."""
    with session_scope(rt.sessions) as session:
        message_id = session.scalar(select(Message.id).order_by(Message.id))
        last = session.scalar(
            select(func.max(Occurrence.sequence)).where(
                Occurrence.message_id == message_id, Occurrence.purpose == "cadence"
            )
        )
        occurrence = Occurrence(message_id=message_id, purpose="cadence",
                                sequence=(last or 0) + 1, zone="UTC",
                                local_time=now.replace(tzinfo=None), due_at=now,
                                status="dispatched")  # fmt: skip
        session.add(occurrence)
        session.flush()
        occurrence_id = occurrence.id
    _fill(rt.engine, occurrence_id)
    with session_scope(rt.sessions) as session:
        started = time.perf_counter()
        changes = summaries.catch_up(session)
    seconds = time.perf_counter() - started
    return {"changes": changes, "seconds": round(seconds, 2),
            "changes_per_second": round(changes / seconds)}  # fmt: skip


def dashboard(deliveries: int, database_url: str | None = None, runs: int = 7) -> dict[str, Any]:
    from cadence.access.users import create_user, issue_session

    with tempfile.TemporaryDirectory(prefix="cadence-bench-") as tmp:
        root = Path(tmp)
        schema = None
        if database_url and database_url.startswith("postgresql"):
            schema = f"cadence_bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(database_url)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = schema_url(database_url, schema)
        else:
            admin = None
            url = f"sqlite:///{root / 'bench.db'}"
        redis = EmbeddedRedis(root / "redis")
        redis.start()
        settings = Settings(database_url=url, redis_url=redis.url, state_dir=root / "state")
        rt = Runtime(settings)
        try:
            upgrade(rt.engine)
            now = datetime.now(UTC).replace(microsecond=0)
            made = time.perf_counter()
            shape = generate(rt, deliveries, now)
            generated = time.perf_counter() - made
            made = time.perf_counter()
            with session_scope(rt.sessions) as session:
                summaries.rebuild(session)
            summarised = time.perf_counter() - made
            if rt.engine.dialect.name == "postgresql":
                # What autovacuum does soon after a load this size: fresh statistics, and
                # the change log's deleted rows cleared away.
                with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE"))
            with session_scope(rt.sessions) as session:
                cookies = {
                    role: issue_session(
                        session,
                        settings.secret_key.get_secret_value(),
                        create_user(
                            session, email, role=role, password="benchmark-password", now=now
                        ),
                        now,
                    )
                    # A comms user, and the leader of the first team (a tenth of everyone).
                    for role, email in (
                        ("comms", "comms@example.com"),
                        ("leader", "lead0@example.com"),
                    )
                }
                counted = session.scalar(text("SELECT count(*) FROM deliveries"))
                message_id = session.scalar(select(Message.id).order_by(Message.id))
            from cadence.web.dashboard import SESSION_COOKIE

            paths = ["/dashboard", f"/dashboard/messages/{message_id}", "/dashboard/teams"]
            pages = []
            with _serve(rt, redis.url) as base:
                for role, cookie in cookies.items():
                    with httpx.Client(
                        base_url=base, cookies={SESSION_COOKIE: cookie}, timeout=120
                    ) as client:
                        pages += [{"as": role, **_timed(client, path, runs)} for path in paths]
            baseline = _baseline(rt, now, runs)
            for page in pages:
                # Three significant figures: on a small load the baseline can be far
                # quicker than a page, and one decimal would round that ratio to zero.
                page["times_faster_than_baseline"] = float(
                    f"{baseline['median_ms'] / page['median_ms']:.3g}"
                )
            refresh = _refresh(rt, now)
            return {
                "database": rt.engine.dialect.name,
                "deliveries": counted,
                **shape,
                "generated_seconds": round(generated, 1),
                "summarised_seconds": round(summarised, 1),
                "pages": pages,
                "baseline": baseline,
                "refresh_after_a_fan_out": refresh,
            }
        finally:
            rt.engine.dispose()
            redis.stop()
            if admin is not None and schema is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
