"""The whole path with a real Celery worker on real Redis and a real database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.dispatch import tick
from cadence.runtime import Runtime
from cadence.store.models import Delivery, DeliveryStatus
from cadence.worker import TICK_TASK, enqueue_with, make_celery, policy_from
from tests import factories as f

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def celery_app(settings: Settings) -> Celery:
    assert settings.redis_url
    return make_celery(settings, settings.redis_url)


@pytest.fixture
def worker(celery_app: Celery) -> Iterator[None]:
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


def wait_for(session: Session, predicate: str, timeout: float = 30.0) -> list[Delivery]:
    """Poll until every delivery has left the queue (the worker runs in another thread)."""
    deadline = time.monotonic() + timeout
    while True:
        session.expire_all()
        rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        if rows and all(r.status == predicate for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(
                f"deliveries did not reach {predicate}: {[r.status for r in rows]}"
            )
        time.sleep(0.05)


def seed(session: Session, people: int = 5) -> None:
    for i in range(people):
        f.person(session, f"p{i}@example.com", timezone="Europe/London")
    f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 1, 12, 0),
        timezone="UTC",
        body="Hello from the service desk.",
    )
    session.commit()


def test_due_occurrence_is_sent_once_through_the_worker(
    settings: Settings, runtime: Runtime, session: Session, celery_app: Celery, worker: None
) -> None:
    seed(session)
    report = tick(runtime.sessions, policy_from(settings), enqueue_with(celery_app), NOON)
    assert report.deliveries_written == 5
    rows = wait_for(session, DeliveryStatus.SENT.value)
    assert [r.attempts for r in rows] == [1] * 5
    assert all(r.provider_id == f"log:{r.id}" for r in rows)
    assert rows[0].rendered is not None
    assert "Subject: Own the outcome" in rows[0].rendered
    assert "P0 <p0@example.com> (Europe/London)" in rows[0].rendered


def test_delivery_lost_from_redis_is_requeued_and_sent_once(
    settings: Settings, runtime: Runtime, session: Session, celery_app: Celery
) -> None:
    seed(session, people=3)
    enqueue = enqueue_with(celery_app)
    policy = policy_from(settings)
    tick(runtime.sessions, policy, enqueue, NOON)
    # Redis loses everything before any worker ran (a restart without persistence).
    assert settings.redis_url
    redis_client(settings.redis_url).flushdb()
    with start_worker(celery_app, pool="solo", perform_ping_check=False):
        session.expire_all()
        assert {d.status for d in session.scalars(select(Delivery))} == {"queued"}
        later = NOON + policy.stuck_after + timedelta(seconds=1)
        report = tick(runtime.sessions, policy, enqueue, later)
        assert report.requeued == 3
        rows = wait_for(session, DeliveryStatus.SENT.value)
    assert [r.attempts for r in rows] == [1, 1, 1]


def test_stale_task_running_after_its_replacement_sends_nothing(
    settings: Settings, runtime: Runtime, session: Session, celery_app: Celery, worker: None
) -> None:
    seed(session, people=2)
    captured: list[list[int]] = []
    tick(runtime.sessions, policy_from(settings), captured.append, NOON)
    ids = captured[0]
    enqueue = enqueue_with(celery_app)
    enqueue(ids)  # the original
    enqueue(ids)  # a duplicate: a redelivery after a visibility timeout
    rows = wait_for(session, DeliveryStatus.SENT.value)
    assert [r.attempts for r in rows] == [1, 1]


def test_beat_tick_task_runs_the_dispatcher(
    settings: Settings, session: Session, celery_app: Celery, worker: None
) -> None:
    f.person(session, "now@example.com")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=now.replace(tzinfo=None) - timedelta(days=1),
        timezone="UTC",
    )
    session.commit()
    result = celery_app.send_task(TICK_TASK)
    report = result.get(timeout=30)
    assert report["planned"] >= 1
