"""A worker killed in the middle of a Slack batch: nothing already sent is sent again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.answers.acks import make_answer, record_answer
from cadence.answers.questions import forward_question
from cadence.bench.slack_standin import SlackStandIn
from cadence.config import Settings
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import tick
from cadence.delivery.sending import send_batch
from cadence.directory.audience import Audience
from cadence.runtime import Runtime
from cadence.store.models import Delivery
from cadence.worker import SEND_TASK, make_celery, policy_from, send_policy_from
from tests import factories as f

TOKEN = "xoxb-crash"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(token=TOKEN, accept_any=True) as standin:
        yield standin


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wire(settings: Settings, slack: SlackStandIn) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": TOKEN,
            "slack_api_url": slack.base_url,
            "slack_rate_per_minute": 60_000,
            "slack_burst": 1000,
            "slack_channel_gap_seconds": 0,
        }
    )


def start_worker(wired: Settings, slack: SlackStandIn) -> subprocess.Popen[bytes]:
    """A real `cadence worker` (solo pool) in a session of its own, so SIGKILL takes it all."""
    env = dict(os.environ)
    env.update(
        CADENCE_DATABASE_URL=wired.database_url,
        CADENCE_REDIS_URL=wired.redis_url or "",
        CADENCE_SLACK_BOT_TOKEN=TOKEN,
        CADENCE_SLACK_API_URL=slack.base_url,
        CADENCE_SLACK_CHANNEL_GAP_SECONDS="0",
        CADENCE_SLACK_RATE_PER_MINUTE="60000",
        CADENCE_SLACK_BURST="1000",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "cadence", "worker", "--pool", "solo", "--loglevel", "WARNING"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_killed_worker_mid_batch_sends_nothing_twice(
    settings: Settings, session: Session, slack: SlackStandIn
) -> None:
    wired = wire(settings, slack)
    rt = Runtime(wired)
    emails = [f"p{i}@example.com" for i in range(10)]
    for i, email in enumerate(emails):
        f.person(session, email).slack_user_id = f"U{i:03d}"
    f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(people=tuple(emails)),
        channels=["slack"],
    )
    session.commit()
    nine = datetime(2026, 3, 2, 9, tzinfo=UTC)
    batches: list[list[int]] = []
    tick(rt.sessions, policy_from(wired), batches.append, nine)
    [batch] = batches

    # Half the posts hang inside "Slack": the worker is waiting on them when it dies.
    slack.fail_next(5, stall=2.0, method="chat.postMessage")
    worker = start_worker(wired, slack)
    try:
        assert wired.redis_url
        make_celery(wired, wired.redis_url).send_task(SEND_TASK, args=[batch])
        wait_until(lambda: len(slack.messages()) == 5, 60, "the first five posts")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    # Slack goes on to accept the five that were in flight: ten messages exist, and the
    # database heard of none of them.
    wait_until(lambda: len(slack.messages()) == 10, 10, "the stalled posts")
    session.expire_all()
    assert {d.status for d in session.scalars(select(Delivery))} == {"sending"}

    # The worker stamped its attempt with the real clock; the tick is run as if later.
    later = datetime.now(UTC) + policy_from(wired).stuck_after + timedelta(minutes=1)
    requeued: list[list[int]] = []
    report = tick(rt.sessions, policy_from(wired), requeued.append, later)
    assert report.requeued == 10
    sent = send_batch(
        rt.sessions,
        lambda name: make_channel(name, wired, wired.redis_url),
        [i for b in requeued for i in b],
        send_policy_from(wired),
        later,
    )
    assert sent.sent == 10
    session.expire_all()
    rows = list(session.scalars(select(Delivery)))
    assert {d.status for d in rows} == {"sent"}
    assert all(d.maybe_sent is False for d in rows)
    # No second post: each delivery is matched to the one message Slack already had.
    assert len(slack.messages()) == 10
    by_delivery = {m["metadata"]["event_payload"]["delivery_id"]: m["ts"] for m in slack.messages()}
    assert {d.id: d.provider_id for d in rows} == by_delivery
    rt.engine.dispose()


@pytest.mark.slow
def test_a_forwarded_question_survives_a_killed_worker_with_one_copy_at_the_leader(
    settings: Settings, session: Session, slack: SlackStandIn
) -> None:
    wired = wire(settings, slack)
    rt = Runtime(wired)
    boss = f.person(session, "boss@example.com")
    boss.slack_user_id = "UBOSS"
    f.person(session, "ada@example.com", manager=boss).slack_user_id = "U001"
    f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(people=("ada@example.com",)),
        channels=["slack"],
    )
    session.commit()
    nine = datetime(2026, 3, 2, 9, tzinfo=UTC)
    channel = lambda name: make_channel(name, wired, wired.redis_url)  # noqa: E731
    batches: list[list[int]] = []
    tick(rt.sessions, policy_from(wired), batches.append, nine)
    send_batch(rt.sessions, channel, batches[0], send_policy_from(wired), nine)
    [ada_delivery] = session.scalars(select(Delivery)).all()
    asked = record_answer(
        session,
        ada_delivery.id,
        make_answer("question", "Who signs off?"),
        via="slack",
        now=nine,
        slack_user_id="U001",
    )
    forward_question(session, asked.acknowledgement_id, nine)
    session.commit()
    batches.clear()
    tick(rt.sessions, policy_from(wired), batches.append, nine)
    [question_batch] = batches

    # Slack takes the question and is slow to answer: the worker dies waiting.
    slack.fail_next(1, late=5.0, method="chat.postMessage")
    worker = start_worker(wired, slack)
    try:
        assert wired.redis_url
        make_celery(wired, wired.redis_url).send_task(SEND_TASK, args=[question_batch])
        wait_until(lambda: len(slack.messages("UBOSS")) == 1, 60, "the question's post")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    later = datetime.now(UTC) + policy_from(wired).stuck_after + timedelta(minutes=1)
    requeued: list[list[int]] = []
    tick(rt.sessions, policy_from(wired), requeued.append, later)
    assert [i for b in requeued for i in b] == question_batch
    report = send_batch(rt.sessions, channel, question_batch, send_policy_from(wired), later)
    assert report.sent == 1
    # Found in the leader's DM history, not posted again.
    assert len(slack.messages("UBOSS")) == 1
    assert "Who signs off?" in json.dumps(slack.messages("UBOSS")[0]["blocks"])
    rt.engine.dispose()
