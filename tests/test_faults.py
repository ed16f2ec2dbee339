"""Faults the world produces, in one process: Slack's 429s, 5xx and late answers, Redis going
away in the middle of a batch, a rule or a template that raises. Real Redis, the Slack
stand-in over a socket, SQLite or PostgreSQL; time is passed in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cadence.bench.slack_standin import SlackStandIn
from cadence.bench.smtp_standin import SmtpStandIn
from cadence.config import Settings
from cadence.delivery.broker import EmbeddedRedis
from cadence.directory.audience import Audience
from cadence.runtime import Runtime
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence
from tests import factories as f
from tests.conftest import CliResult
from tests.test_channels import NINE, TOKEN, Sender, deliveries, seed


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(token=TOKEN, accept_any=True) as standin:
        yield standin


def wire(settings: Settings, slack: SlackStandIn, **extra: object) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": TOKEN,
            "slack_api_url": slack.base_url,
            "secret_key": "test-secret-key-that-is-long-enough-1234",
            "slack_rate_per_minute": 60_000,
            "slack_burst": 1000,
            "slack_channel_gap_seconds": 0,
            "slack_timeout_seconds": 1.0,
            "max_attempts": 3,
            **extra,
        }
    )


@pytest.fixture
def sender(settings: Settings, slack: SlackStandIn) -> Iterator[Sender]:
    rt = Runtime(wire(settings, slack))
    yield Sender(rt)
    rt.engine.dispose()


def people(n: int) -> list[dict[str, str]]:
    return [{"email": f"p{i}@example.com", "slack": f"U{i:04d}"} for i in range(n)]


def received(slack: SlackStandIn) -> dict[str, int]:
    """How many copies of each delivery reached a DM."""
    counts: dict[str, int] = {}
    for message in slack.messages():
        if "metadata" not in message:
            continue  # not Cadence's
        delivery = str(message["metadata"]["event_payload"]["delivery_id"])
        counts[delivery] = counts.get(delivery, 0) + 1
    return counts


def settle(sender: Sender, session: Session, rounds: int = 40) -> None:
    """Run retries as the tick would, whatever their retry time, until nothing is left."""
    for _ in range(rounds):
        ids = sender.requeue_pending(session)
        if not ids:
            return
        sender.send(ids, NINE)
    raise AssertionError("deliveries still pending after every round")


def test_429s_are_waits_not_attempts_and_everyone_is_sent_once(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session, people=people(12), channels=["slack"])
    # More 429s in a row than attempts allowed: waiting must never use them up.
    slack.fail_next(3, status=429, retry_after=1, method="chat.postMessage")
    ids = sender.dispatch(NINE)
    report = sender.send(ids, NINE)
    assert report.retrying >= 3
    waiting = [d for d in deliveries(session) if d.status == DeliveryStatus.PENDING.value]
    assert waiting and all(d.attempts == 0 for d in waiting)
    assert all(d.last_error in ("ratelimited",) for d in waiting)
    for _ in range(4):  # four more 429 rounds: more than max_attempts=3
        slack.fail_next(len(waiting), status=429, retry_after=1, method="chat.postMessage")
        posts_before = len(slack.requests("chat.postMessage"))
        sender.send(sender.requeue_pending(session), NINE)
        # The pause after a 429 holds back what is left: at most the requests in flight.
        assert len(slack.requests("chat.postMessage")) - posts_before <= len(waiting)
    deadline = time.monotonic() + 30
    while any(d.status != DeliveryStatus.SENT.value for d in deliveries(session)):
        assert time.monotonic() < deadline, "not everyone was sent"
        sender.send(sender.requeue_pending(session), NINE)
        time.sleep(0.2)  # Redis's own clock keeps the pause; nothing else waits
    assert all(d.attempts <= 1 for d in deliveries(session))
    assert sorted(received(slack).values()) == [1] * 12


def test_nothing_is_posted_while_a_429_pause_lasts(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session, people=people(6), channels=["slack"])
    slack.fail_next(1, status=429, retry_after=2, method="chat.postMessage")
    first = sender.send(sender.dispatch(NINE), NINE)
    limited = next(r for r in slack.requests("chat.postMessage") if r.status == 429)
    assert first.retrying >= 1
    # Another worker's batch during the pause posts nothing at all.
    posts = len(slack.requests("chat.postMessage"))
    again = sender.send(sender.requeue_pending(session), NINE)
    if time.monotonic() < limited.monotonic + 1.9:
        assert len(slack.requests("chat.postMessage")) == posts
        assert again.sent == 0
    later = [
        r
        for r in slack.requests("chat.postMessage")
        if r.monotonic > limited.monotonic + 0.2 and r.status == 200
    ]
    assert all(r.monotonic >= limited.monotonic + 1.99 for r in later)


def test_a_post_whose_answer_came_late_is_found_not_sent_twice(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session, people=people(4), channels=["slack"])
    # Slack accepts the post and answers after the client's 1 s timeout.
    slack.fail_next(2, late=2.5, method="chat.postMessage")
    report = sender.send(sender.dispatch(NINE), NINE)
    assert report.sent == 2 and report.retrying == 2
    late = [d for d in deliveries(session) if d.status == DeliveryStatus.PENDING.value]
    assert all(d.maybe_sent and d.attempts == 1 for d in late)
    assert all("no answer from Slack" in (d.last_error or "") for d in late)
    settle(sender, session)
    assert sorted(received(slack).values()) == [1] * 4
    assert len(slack.requests("conversations.history")) >= 2
    assert all(d.status == DeliveryStatus.SENT.value and d.provider_id for d in deliveries(session))


def test_a_5xx_is_maybe_sent_and_checked_before_posting_again(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session, people=people(3), channels=["slack"])
    slack.fail_next(3, status=503, method="chat.postMessage")
    sender.send(sender.dispatch(NINE), NINE)
    assert all(d.maybe_sent for d in deliveries(session))
    settle(sender, session)
    assert sorted(received(slack).values()) == [1] * 3
    assert len(slack.requests("conversations.history")) == 3


def test_the_history_check_follows_the_cursor_to_a_second_page(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session, people=people(1), channels=["slack"])
    ids = sender.dispatch(NINE)
    sender.send(ids, NINE)
    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.SENT.value
    # 250 newer messages in the same DM push it onto the second page of history.
    client = WebClient(token=TOKEN, base_url=slack.base_url)
    for i in range(250):
        client.chat_postMessage(channel="U0000", text=f"chatter {i}")
    # As if the worker had died before recording the answer.
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id)
        .values(status=DeliveryStatus.QUEUED.value, maybe_sent=True, sent_at=None)
    )
    session.commit()
    report = sender.send([delivery.id], NINE)
    assert report.sent == 1
    assert received(slack) == {str(delivery.id): 1}
    pages = slack.requests("conversations.history")
    assert len(pages) == 2 and pages[1].params.get("cursor")


def test_redis_stopped_and_started_mid_batch_keeps_what_was_sent(
    settings: Settings, session: Session, slack: SlackStandIn, tmp_path: Path
) -> None:
    private = EmbeddedRedis(tmp_path / "redis")
    private.start()
    rt = Runtime(wire(settings, slack, redis_url=private.url, slack_concurrency=2))
    sender = Sender(rt)
    try:
        seed(session, people=people(10), channels=["slack"])
        ids = sender.dispatch(NINE)
        slack.fail_next(10, stall=0.4, method="chat.postMessage")
        done = threading.Event()

        def run() -> None:
            try:
                sender.send(ids, NINE)
            finally:
                done.set()

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.2)  # two posts are in flight
        private.stop()
        time.sleep(1.0)
        private.start()
        assert done.wait(30)
        worker.join()
        sent_in_batch = [d for d in deliveries(session) if d.status == DeliveryStatus.SENT.value]
        assert sent_in_batch, "the outcomes obtained before Redis went away were lost"
        assert not any(d.status == DeliveryStatus.SENDING.value for d in deliveries(session))
        settle(sender, session)
        assert sorted(received(slack).values()) == [1] * 10
    finally:
        rt.engine.dispose()
        private.stop()


def test_pacing_that_cannot_reach_redis_hands_the_batch_back_unposted(
    settings: Settings, session: Session, slack: SlackStandIn, tmp_path: Path
) -> None:
    private = EmbeddedRedis(tmp_path / "redis")
    private.start()
    rt = Runtime(wire(settings, slack, redis_url=private.url))
    sender = Sender(rt)
    try:
        seed(session, people=people(3), channels=["slack"])
        ids = sender.dispatch(NINE)
        private.stop()
        report = sender.send(ids, NINE)
        assert report.retrying == 3 and report.sent == 0
        assert slack.requests("chat.postMessage") == []  # never posted unpaced
        waiting = deliveries(session)
        assert all(
            d.attempts == 0 and "pacing unavailable" in (d.last_error or "") for d in waiting
        )
        private.start()
        settle(sender, session)
        assert sorted(received(slack).values()) == [1] * 3
    finally:
        rt.engine.dispose()
        private.stop()


def test_a_rule_that_raises_is_flagged_and_other_messages_go_on_time(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session, people=people(2), channels=["slack"])
    bad = f.core_message(session, rrule="FREQ=DAILY", start=NINE.replace(tzinfo=None))
    assert bad.cadence is not None
    # What the API accepted before rules were checked completely (dateutil raised TypeError
    # on it at every tick): now refused by the checks when it is planned.
    bad.cadence.rrule = "FREQ=HOURLY;BYHOUR=25"
    session.commit()
    ids = sender.dispatch(NINE)
    report = sender.send(ids, NINE)
    assert report.sent == 2  # the good message went out at its time
    session.expire_all()
    flagged = session.get(Message, bad.id)
    assert flagged is not None and flagged.attention
    assert flagged.attention == "planning failed: bad RRULE BYHOUR=25: hours run 0-23"
    # Not retried every tick: the next tick plans the good message and leaves this one be.
    sender.dispatch(NINE + timedelta(minutes=1))
    assert not session.scalars(select(Occurrence).where(Occurrence.message_id == bad.id)).all()


def test_a_template_that_fails_at_send_time_fails_alone(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session, people=people(2), channels=["slack"])
    broken = f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=NINE.replace(tzinfo=None),
        timezone="UTC",
        audience=Audience(people=("p0@example.com",)),
        channels=["slack"],
        title="Broken",
    )
    # Stored before templates were checked: it raises only when rendered.
    broken.body = "{{ person.name | no_such_filter }}"
    session.commit()
    ids = sender.dispatch(NINE)
    report = sender.send(ids, NINE)
    assert report.sent == 2 and report.failed == 1
    session.expire_all()
    flagged = session.get(Message, broken.id)
    assert flagged is not None and flagged.attention
    assert "rendering failed" in flagged.attention


def test_flagged_messages_show_in_the_cli_and_the_metric(
    sender: Sender, session: Session, cli: Callable[..., CliResult]
) -> None:
    bad = f.core_message(session, title="Bad rule", timezone="UTC")
    assert bad.cadence is not None
    bad.cadence.rrule = "FREQ=HOURLY;BYHOUR=25"
    session.commit()
    sender.dispatch(NINE)
    shown = cli("message", "show", str(bad.id))
    assert shown.code == 0 and "planning failed" in shown.out
    listed = cli("message", "list", "--format", "json")
    assert "planning failed" in listed.out


def test_email_left_untried_after_two_drops_keeps_its_attempts(
    settings: Settings, session: Session, slack: SlackStandIn
) -> None:
    with SmtpStandIn() as smtp:
        rt = Runtime(
            wire(settings, slack, smtp_url=smtp.url, email_from="Comms <comms@example.com>")
        )
        sender = Sender(rt)
        try:
            seed(session, people=[{"email": f"e{i}@example.com"} for i in range(5)],
                 channels=["email"])  # fmt: skip
            smtp.fail_next("DATA", drop=True)
            smtp.fail_next("DATA", drop=True)
            report = sender.send(sender.dispatch(NINE), NINE)
            assert report.retrying == 5 and report.sent == 0
            by_attempts = sorted(d.attempts for d in deliveries(session))
            # Two were tried (and dropped); three were never tried and wait, keeping theirs.
            assert by_attempts == [0, 0, 0, 1, 1]
            settle(sender, session)
            got = sorted(r for mail in smtp.messages for r in mail.rcpt_tos)
            assert got == [f"e{i}@example.com" for i in range(5)]
        finally:
            rt.engine.dispose()


def test_a_batch_that_outlived_its_claim_does_not_overwrite_the_new_one(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    from cadence.delivery.channels.base import Outcome
    from cadence.delivery.sending import SendReport, record, take
    from cadence.worker import send_policy_from

    seed(session, people=people(1), channels=["slack"])
    [delivery_id] = sender.dispatch(NINE)
    first = NINE
    assert take(session, [delivery_id], first) == [delivery_id]
    # stuck_after passed: the tick handed it back and another worker took it.
    session.execute(
        update(Delivery).where(Delivery.id == delivery_id).values(status="queued", maybe_sent=True)
    )
    second = NINE + timedelta(minutes=6)
    assert take(session, [delivery_id], second) == [delivery_id]
    session.commit()
    # The first batch's late answer finds the row no longer its own.
    report = SendReport()
    policy = send_policy_from(sender.rt.settings)
    record(session, [Outcome.retry(delivery_id, 5, "late")], {}, {}, policy, first, report)
    session.commit()
    [row] = deliveries(session)
    assert row.status == DeliveryStatus.SENDING.value and row.attempts == 2
    record(session, [Outcome.sent(delivery_id, "1.2", "DU0000")], {}, {}, policy, second, report)
    session.commit()
    [row] = deliveries(session)
    assert row.status == DeliveryStatus.SENT.value and row.provider_id == "1.2"
