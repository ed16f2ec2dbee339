"""Slack and email for real: the stand-ins speak the protocols over loopback sockets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cadence.answers.tokens import read_ack_token
from cadence.bench.slack_standin import SlackStandIn, SlackUser
from cadence.bench.smtp_standin import SmtpStandIn
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.channels.base import Channel
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import tick
from cadence.delivery.pacing import WorkspaceLimiter
from cadence.delivery.sending import SendReport, send_batch
from cadence.directory.audience import Audience
from cadence.runtime import Runtime
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence, Person
from cadence.worker import policy_from, send_policy_from
from tests import factories as f

TOKEN = "xoxb-test-token"
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(token=TOKEN, accept_any=True) as standin:
        yield standin


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn(username="cadence", password="s3cret", starttls=True) as standin:
        yield standin


@pytest.fixture
def wired(settings: Settings, slack: SlackStandIn, smtp: SmtpStandIn) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": TOKEN,
            "slack_api_url": slack.base_url,
            "smtp_url": smtp.url,
            "email_from": "Comms Team <comms@example.com>",
            "base_url": "https://cadence.example.com",
            "secret_key": "test-secret-key-that-is-long-enough-1234",
            "slack_rate_per_minute": 60_000,
            "slack_burst": 1000,
            # Retries here follow each other within milliseconds; spacing has its own test.
            "slack_channel_gap_seconds": 0,
        }
    )


@pytest.fixture
def rt(wired: Settings) -> Iterator[Runtime]:
    runtime = Runtime(wired)
    yield runtime
    runtime.engine.dispose()


class Sender:
    """Dispatch and send in this process, through real channels, with time passed in."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.made: dict[str, Channel] = {}

    def channel(self, name: str) -> Channel:
        if name not in self.made:
            self.made[name] = make_channel(name, self.rt.settings, self.rt.settings.redis_url)
        return self.made[name]

    def dispatch(self, now: datetime) -> list[int]:
        queued: list[int] = []
        tick(self.rt.sessions, policy_from(self.rt.settings), queued.extend, now)
        return queued

    def send(self, ids: list[int], now: datetime) -> SendReport:
        return send_batch(
            self.rt.sessions, self.channel, ids, send_policy_from(self.rt.settings), now
        )

    def requeue_pending(self, session: Session) -> list[int]:
        """What the next tick does for deliveries whose retry time has come."""
        ids = list(
            session.scalars(
                update(Delivery)
                .where(Delivery.status == DeliveryStatus.PENDING.value)
                .values(status=DeliveryStatus.QUEUED.value)
                .returning(Delivery.id)
            )
        )
        session.commit()
        return sorted(ids)


@pytest.fixture
def sender(rt: Runtime) -> Sender:
    return Sender(rt)


def deliveries(session: Session) -> list[Delivery]:
    session.expire_all()
    return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def seed(
    session: Session,
    *,
    body: str = "Hello {{ person.first_name }}, from {{ manager.name }}.",
    channels: list[str] | None = None,
    people: list[dict[str, Any]] | None = None,
) -> None:
    boss = f.person(session, "boss@example.com")
    boss.name = "Grace Hopper"
    for spec in people or [{"email": "ada@example.com", "slack": "U001"}]:
        p = f.person(session, spec["email"], manager=boss, channel=spec.get("channel"))
        p.name = spec.get("name", "Ada Lovelace")
        p.slack_user_id = spec.get("slack")
    f.core_message(
        session,
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(
            people=tuple(s["email"] for s in people or [{"email": "ada@example.com"}])
        ),
        body=body,
        channels=channels or ["slack", "email"],
    )
    session.commit()


def test_slack_message_is_block_kit_with_buttons_and_metadata(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session)
    report = sender.send(sender.dispatch(NINE), NINE)
    assert report.sent == 1
    [delivery] = deliveries(session)
    [post] = slack.requests("chat.postMessage")
    params = post.params
    assert params["channel"] == "U001"
    blocks = (
        params["blocks"] if isinstance(params["blocks"], list) else json.loads(params["blocks"])
    )
    flat = json.dumps(blocks)
    assert "Hello Ada, from Grace Hopper." in flat
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == ["cadence_ack", "cadence_question"]
    assert all(str(delivery.id) in a["value"] for a in actions)
    metadata = params["metadata"]
    metadata = metadata if isinstance(metadata, dict) else json.loads(metadata)
    assert metadata["event_payload"]["delivery_id"] == delivery.id
    assert delivery.status == "sent"
    assert delivery.provider_channel == "DU001" or delivery.provider_channel.startswith("D")
    assert delivery.provider_id and "." in delivery.provider_id  # Slack's ts


def test_hostile_text_is_escaped_in_slack_and_email(
    sender: Sender, session: Session, slack: SlackStandIn, smtp: SmtpStandIn
) -> None:
    hostile = "<!channel> <@U999> & <script>alert(1)</script> [x](javascript:alert(1))"
    seed(
        session,
        body=hostile + " {{ person.name }}",
        people=[
            {"email": "ada@example.com", "slack": "U001", "name": "<b>Ada</b> & co"},
            {"email": "bob@example.com", "channel": "email", "name": "<img src=x onerror=1>"},
        ],
    )
    sender.send(sender.dispatch(NINE), NINE)
    [post] = slack.requests("chat.postMessage")
    flat = json.dumps(post.params["blocks"])
    assert "<!channel>" not in flat and "<@U999>" not in flat and "<script>" not in flat
    assert "&lt;!channel&gt;" in flat and "&amp;" in flat
    [mail] = smtp.messages
    html = mail.body(("html",))
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html.split("<body", 1)[-1].replace("javascript:alert(1))", "")


def test_email_is_multipart_with_headers_and_a_signed_ack_link(
    sender: Sender, session: Session, smtp: SmtpStandIn, wired: Settings
) -> None:
    seed(session, people=[{"email": "ada@example.com", "channel": "email"}])
    report = sender.send(sender.dispatch(NINE), NINE)
    assert report.sent == 1, report
    [delivery] = deliveries(session)
    [mail] = smtp.messages
    msg = mail.message
    assert mail.tls and mail.username == "cadence"
    assert mail.rcpt_tos == ("ada@example.com",)
    assert msg["From"] == "Comms Team <comms@example.com>"
    assert msg["To"] == "Ada Lovelace <ada@example.com>"
    assert msg["Date"]
    assert msg["Message-ID"] == f"<delivery-{delivery.id}@example.com>"
    assert msg["X-Cadence-Delivery"] == str(delivery.id)
    assert msg["X-Mailer"] == "Cadence"
    assert msg.is_multipart()
    text, html = mail.body(("plain",)), mail.body(("html",))
    assert "Hello Ada, from Grace Hopper." in text
    assert "Hello Ada, from Grace Hopper." in html
    link = next(w for w in text.split() if w.startswith("https://cadence.example.com/ack/"))
    assert link in html
    claim = read_ack_token(
        wired.secret_key.get_secret_value(), link.rsplit("/", 1)[1], max_age_seconds=3600
    )
    assert (claim.delivery_id, claim.person_id) == (delivery.id, delivery.person_id)
    assert delivery.provider_id == msg["Message-ID"]


def test_email_retry_after_4xx_carries_the_same_message_id(
    sender: Sender, session: Session, smtp: SmtpStandIn
) -> None:
    seed(session, people=[{"email": "ada@example.com", "channel": "email"}])
    smtp.fail_next("RCPT", code=451, message="try later")
    report = sender.send(sender.dispatch(NINE), NINE)
    assert report.retrying == 1 and smtp.messages == []
    [delivery] = deliveries(session)
    assert delivery.status == "pending" and "451" in (delivery.last_error or "")
    smtp.fail_next("DATA", drop=True)
    sender.send(sender.requeue_pending(session), NINE)
    assert smtp.messages == []
    sender.send(sender.requeue_pending(session), NINE)
    [mail] = smtp.messages
    [delivery] = deliveries(session)
    assert delivery.status == "sent" and delivery.attempts == 3
    assert mail.message["Message-ID"] == f"<delivery-{delivery.id}@example.com>"


def test_email_5xx_fails_with_the_servers_reason(
    sender: Sender, session: Session, smtp: SmtpStandIn
) -> None:
    seed(session, channels=["email"], people=[{"email": "ada@example.com"}])
    smtp.fail_next("DATA", code=554, message="message refused by policy")
    sender.send(sender.dispatch(NINE), NINE)
    [delivery] = deliveries(session)
    assert delivery.status == "failed"
    assert delivery.last_error == "SMTP 554 message refused by policy"


def test_slack_500s_are_retried_then_delivered_once(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    seed(session)
    slack.fail_next(2, status=500, method="chat.postMessage")
    sender.send(sender.dispatch(NINE), NINE)
    sender.send(sender.requeue_pending(session), NINE)
    [delivery] = deliveries(session)
    assert delivery.status == "pending" and "500" in (delivery.last_error or "")
    sender.send(sender.requeue_pending(session), NINE)
    [delivery] = deliveries(session)
    assert delivery.status == "sent" and delivery.attempts == 3
    assert len(slack.messages()) == 1


def test_permanent_slack_error_falls_back_to_email(
    sender: Sender, session: Session, slack: SlackStandIn, smtp: SmtpStandIn
) -> None:
    slack.configure(accept_any=False, users=[SlackUser(id="U001", email="ada@example.com")])
    seed(
        session,
        people=[
            {"email": "ada@example.com", "slack": "U001"},
            {"email": "gone@example.com", "slack": "U404"},
        ],
    )
    report = sender.send(sender.dispatch(NINE), NINE)
    assert report.sent == 1 and report.failed == 1 and report.fallbacks == 1
    later = NINE + timedelta(seconds=5)
    sender.send(sender.dispatch(later), later)
    rows = {(d.person.email, d.channel): d for d in deliveries(session)}
    assert rows[("gone@example.com", "slack")].status == "failed"
    assert "channel_not_found" in (rows[("gone@example.com", "slack")].last_error or "") or (
        "user_not_found" in (rows[("gone@example.com", "slack")].last_error or "")
    )
    fallback = rows[("gone@example.com", "email")]
    assert fallback.status == "sent"
    assert fallback.fallback_from_id == rows[("gone@example.com", "slack")].id
    assert [m.rcpt_tos for m in smtp.messages] == [("gone@example.com",)]
    assert ("ada@example.com", "email") not in rows


def test_missing_slack_ids_are_resolved_in_bulk_and_stored(
    sender: Sender, session: Session, slack: SlackStandIn
) -> None:
    users = [SlackUser(id=f"U{i:03d}", email=f"p{i}@example.com") for i in range(450)]
    slack.configure(accept_any=False, users=users)
    seed(
        session,
        people=[{"email": f"p{i}@example.com"} for i in (5, 250, 449)]
        + [{"email": "nobody@example.com"}],
    )
    sender.send(sender.dispatch(NINE), NINE)
    session.expire_all()
    ids = dict(session.execute(select(Person.email, Person.slack_user_id)).all())
    assert ids["p5@example.com"] == "U005" and ids["p449@example.com"] == "U449"
    assert ids["nobody@example.com"] is None
    list_calls = slack.requests("users.list")
    assert len(list_calls) == 3  # paged, 200 at a time
    assert len(slack.requests("users.lookupByEmail")) == 1  # only for the one not listed
    statuses = {(d.person.email, d.channel): d.status for d in deliveries(session)}
    assert statuses[("nobody@example.com", "slack")] == "failed"
    assert statuses[("nobody@example.com", "email")] == "pending"  # the fallback


def test_429_pauses_the_whole_workspace_until_retry_after(
    sender: Sender, session: Session, slack: SlackStandIn, wired: Settings
) -> None:
    slack.configure(rate_per_minute=600, burst=2)
    seed(session, people=[{"email": f"p{i}@example.com", "slack": f"U{i}"} for i in range(5)])
    report = sender.send(sender.dispatch(NINE), NINE)
    assert report.sent == 2 and report.retrying == 3
    # The five went out together (many in flight at once); the first 429 is the signal.
    limited = min(
        (r for r in slack.requests("chat.postMessage") if r.status == 429),
        key=lambda r: r.monotonic,
    )
    assert wired.redis_url
    limiter = WorkspaceLimiter(redis_client(wired.redis_url), "slack", 60)
    assert limiter.paused_for() > 0  # every worker sees the pause, not just this batch
    deadline = time.monotonic() + 30
    while sum(d.status == "sent" for d in deliveries(session)) < 5:
        assert time.monotonic() < deadline
        # Sent at once by the next tick: the send holds back until the pause has passed.
        sender.send(sender.requeue_pending(session), NINE)
    posts = slack.requests("chat.postMessage")
    # Retry-After is a whole number of seconds, at least 1: nothing may come sooner.
    after = [r for r in posts if r.monotonic > limited.monotonic + 0.2]
    assert after and all(r.monotonic >= limited.monotonic + 1.0 - 0.01 for r in after)
    assert len(slack.messages()) == 5


def test_sandbox_escape_is_refused_at_message_add(
    cli: Callable[..., Any], session: Session
) -> None:
    f.person(session, "ada@example.com")
    session.commit()
    for body, expected in [
        ("{{ ''.__class__.__mro__ }}", "body"),
        ("{{ person.__init__.__globals__ }}", "body"),
        ("{{ cycler.__init__.__globals__.os }}", "body"),
        ("{{ person.salary }}", "salary"),
        ("{% if %}", "body"),
    ]:
        result = cli("message", "add", "--title", "t", "--body", body, "--everyone",
                     "--rrule", "FREQ=DAILY", "--start", "2026-03-02T09:00")  # fmt: skip
        assert result.code == 2, (body, result)
        assert expected in result.err and "Traceback" not in result.err


def test_one_conversation_gets_at_most_one_message_a_second(
    rt: Runtime, session: Session, slack: SlackStandIn
) -> None:
    spaced = Sender(Runtime(rt.settings.model_copy(update={"slack_channel_gap_seconds": 1.0})))
    seed(session)
    f.core_message(
        session,
        title="Second message",
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(people=("ada@example.com",)),
        channels=["slack"],
    )
    session.commit()
    report = spaced.send(spaced.dispatch(NINE), NINE)
    assert (report.sent, report.retrying) == (1, 1)
    waiting = [d for d in deliveries(session) if d.status == "pending"]
    assert [d.last_error for d in waiting] == ["channel spacing"]
    assert len(slack.messages()) == 1


def test_send_test_delivers_one_real_message_now(
    cli: Callable[..., Any],
    session: Session,
    slack: SlackStandIn,
    smtp: SmtpStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CADENCE_SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("CADENCE_SLACK_API_URL", slack.base_url)
    monkeypatch.setenv("CADENCE_SMTP_URL", smtp.url)
    seed(session, people=[{"email": "ada@example.com", "slack": "U001"}])
    message_id = session.scalar(select(Message.id))
    result = cli("send-test", str(message_id), "--to", "ADA@example.com")
    assert result.code == 0, result
    assert "by slack: sent" in result.out
    assert len(slack.messages()) == 1
    by_email = cli("send-test", str(message_id), "--to", "ada@example.com", "--channel", "email")
    assert by_email.code == 0, by_email
    assert [m.rcpt_tos for m in smtp.messages] == [("ada@example.com",)]
    # Test sends stay out of the plan: the repetition count starts at 0 all the same.
    sequences = sorted(session.scalars(select(Occurrence.sequence)))
    assert sequences == [-2, -1]
    for args, expected in [
        (("send-test", str(message_id), "--to", "nobody@example.com"), "no person"),
        (("send-test", "999", "--to", "ada@example.com"), "no message with id 999"),
        (
            ("send-test", str(message_id), "--to", "ada@example.com", "--channel", "log"),
            "not sent by log",
        ),
        (
            ("send-test", str(message_id), "--to", "ada@example.com", "--wording", "3"),
            "--wording must be",
        ),
    ]:
        bad = cli(*args)
        assert bad.code == 2 and expected in bad.err, (args, bad)


def test_send_test_reports_a_failure_with_exit_1(
    cli: Callable[..., Any], session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CADENCE_SLACK_BOT_TOKEN", raising=False)
    seed(session, channels=["slack"], people=[{"email": "ada@example.com", "slack": "U001"}])
    message_id = session.scalar(select(Message.id))
    result = cli("send-test", str(message_id), "--to", "ada@example.com")
    assert result.code == 1
    assert "Slack is not configured" in result.out
