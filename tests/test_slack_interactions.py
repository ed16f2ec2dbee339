"""Slack interactivity over real HTTP: a live uvicorn server, signed requests, a real database
and Redis, and the Slack and SMTP stand-ins for what follows an answer."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from slack_sdk import WebClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.answers.acks import make_answer, record_answer
from cadence.answers.followups import (
    SLACK_UPDATE_TASK,
    update_slack_message,
)
from cadence.answers.group_commit import GroupCommit
from cadence.answers.questions import FORWARD_QUESTION_TASK, forward_question
from cadence.answers.slack_signing import (
    BadInteraction,
    BadTimestamp,
    BlockAction,
    MissingHeaders,
    SignatureMismatch,
    StaleTimestamp,
    ViewSubmission,
    parse_interaction,
    sign,
    verify,
)
from cadence.bench.slack_standin import SlackStandIn
from cadence.bench.smtp_standin import SmtpStandIn
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import tick
from cadence.delivery.sending import send_batch
from cadence.directory.audience import Audience
from cadence.runtime import Runtime
from cadence.store.models import Acknowledgement, Delivery, Person
from cadence.web import slack_interactions
from cadence.web.deps import WebDeps
from cadence.worker import make_celery, policy_from, send_policy_from
from tests import factories as f

TOKEN = "xoxb-test-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PATH = "/slack/interactions"


# --- signing and parsing, without a server -------------------------------------------------


def test_verify_accepts_slacks_own_example_and_names_each_failure() -> None:
    # The worked example from Slack's "Verifying requests from Slack" guide.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    stamp = "1531420618"
    good = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    verify(SECRET, stamp, body, good, now=1531420618 + 10)
    assert sign(SECRET, body, stamp)["X-Slack-Signature"] == good
    with pytest.raises(MissingHeaders):
        verify(SECRET, None, body, good, now=1531420618)
    with pytest.raises(BadTimestamp):
        verify(SECRET, "12e9", body, good, now=1531420618)
    with pytest.raises(StaleTimestamp):
        verify(SECRET, stamp, body, good, now=1531420618 + 301)
    with pytest.raises(StaleTimestamp):
        verify(SECRET, stamp, body, good, now=1531420618 - 301)
    with pytest.raises(SignatureMismatch):
        verify(SECRET, stamp, body + b"x", good, now=1531420618)
    with pytest.raises(SignatureMismatch):
        verify("another-secret", stamp, body, good, now=1531420618)


def _form(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_parse_reads_clicks_and_the_question_modal() -> None:
    click = parse_interaction(_form(_click_payload("U001", "cadence_ack", 7, "T1")))
    assert click == BlockAction(
        user_id="U001",
        action_id="cadence_ack",
        value="delivery:7",
        trigger_id="T1",
        channel_id="DU001",
        message_ts="1700000000.000100",
        response_url="https://hooks.slack.com/actions/T0/1/abc",
    )
    submitted = parse_interaction(_form(_submission_payload("U001", 7, "Why?", "3")))
    assert submitted == ViewSubmission("U001", "cadence_question", "7", "Why?", "3")
    no_clarity = parse_interaction(_form(_submission_payload("U001", 7, "Why?", None)))
    assert isinstance(no_clarity, ViewSubmission) and no_clarity.clarity is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        b"payload=not-json",
        b"payload=%5B1%5D",
        b"other=1",
        _form({"type": "block_actions", "user": {"id": "U1"}}),
        _form({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"value": "x"}]}),
        _form({"type": "block_actions", "actions": [{"action_id": "a", "value": "x"}]}),
        _form({"type": "shortcut", "user": {"id": "U1"}}),
        _form({"type": "view_submission", "user": {"id": "U1"}, "view": {"state": 3}}),
    ],
)
def test_parse_refuses_malformed_payloads(body: bytes) -> None:
    with pytest.raises(BadInteraction):
        parse_interaction(body)


# --- a live server --------------------------------------------------------------------------


@dataclass
class Recorder:
    """What the route handed to the workers."""

    calls: list[tuple[str, list[Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, name: str, args: list[Any]) -> None:
        with self.lock:
            self.calls.append((name, list(args)))


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(token=TOKEN, accept_any=True) as standin:
        yield standin


@pytest.fixture
def wired(settings: Settings, slack: SlackStandIn) -> Settings:
    return settings.model_copy(
        update={
            "slack_signing_secret": SECRET,
            "slack_bot_token": TOKEN,
            "slack_api_url": slack.base_url,
            "slack_rate_per_minute": 60_000,
            "slack_burst": 1000,
            "slack_channel_gap_seconds": 0,
            "email_from": "Comms Team <comms@example.com>",
        }
    )


@pytest.fixture
def rt(wired: Settings) -> Iterator[Runtime]:
    runtime = Runtime(wired)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def db(rt: Runtime) -> Iterator[Session]:
    with rt.sessions() as s:
        yield s


def _serve(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _app(settings: Settings, rt: Runtime, recorder: Recorder) -> FastAPI:
    assert settings.redis_url
    deps = WebDeps(
        settings=settings,
        sessions=rt.sessions,
        redis=redis_client(settings.redis_url),
        send_task=recorder,
    )
    app = FastAPI()
    app.include_router(slack_interactions.router(deps, GroupCommit(rt.sessions)))
    return app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(wired: Settings, rt: Runtime, recorder: Recorder) -> Iterator[str]:
    yield from _serve(_app(wired, rt, recorder))


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client


@dataclass(frozen=True)
class Sent:
    delivery_id: int
    channel: str
    ts: str
    person_id: int


def _send_one(rt: Runtime, db: Session, *, manager_slack: str | None = "UBOSS") -> Sent:
    """Ada's delivery of a core message, sent for real to the Slack stand-in."""
    boss = f.person(db, "boss@example.com")
    boss.name = "Grace Hopper"
    boss.slack_user_id = manager_slack
    ada = f.person(db, "ada@example.com", manager=boss)
    ada.name = "Ada Lovelace"
    ada.slack_user_id = "U001"
    f.core_message(
        db,
        rrule="FREQ=DAILY",
        start=datetime(2026, 3, 2, 9),
        timezone="UTC",
        audience=Audience(people=("ada@example.com",)),
        title="Own the outcome",
        body="Hello {{ person.first_name }}: we fix the customer's problem, not the ticket.",
        channels=["slack"],
    )
    db.commit()
    queued: list[int] = []
    tick(rt.sessions, policy_from(rt.settings), queued.extend, NINE)
    channels = {"slack": make_channel("slack", rt.settings, rt.settings.redis_url)}
    report = send_batch(
        rt.sessions, channels.__getitem__, queued, send_policy_from(rt.settings), NINE
    )
    assert report.sent == 1, report
    db.expire_all()
    [delivery] = db.scalars(select(Delivery)).all()
    assert delivery.provider_channel and delivery.provider_id
    return Sent(delivery.id, delivery.provider_channel, delivery.provider_id, ada.id)


def _click_payload(user: str, action: str, delivery_id: int, trigger: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T0CADENCE"},
        "api_app_id": "A0CADENCE",
        "trigger_id": trigger,
        "container": {
            "type": "message",
            "channel_id": f"D{user}",
            "message_ts": "1700000000.000100",
        },
        "channel": {"id": f"D{user}"},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [
            {
                "type": "button",
                "block_id": "cadence_actions",
                "action_id": action,
                "value": f"delivery:{delivery_id}",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _submission_payload(
    user: str, delivery_id: int, question: str, clarity: str | None
) -> dict[str, Any]:
    selected = None
    if clarity is not None:
        selected = {"text": {"type": "plain_text", "text": clarity}, "value": clarity}
    return {
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "id": "V0000000001",
            "type": "modal",
            "callback_id": "cadence_question",
            "private_metadata": str(delivery_id),
            "state": {
                "values": {
                    "question": {"text": {"type": "plain_text_input", "value": question}},
                    "clarity": {"score": {"type": "static_select", "selected_option": selected}},
                }
            },
        },
    }


def _post(
    http: httpx.Client,
    payload: Any,
    *,
    at: float | None = None,
    secret: str = SECRET,
    body: bytes | None = None,
) -> httpx.Response:
    raw = body if body is not None else _form(payload)
    headers = sign(secret, raw, time.time() if at is None else at)
    return http.post(PATH, content=raw, headers=headers)


def _acks(db: Session) -> list[Acknowledgement]:
    db.expire_all()
    return list(db.scalars(select(Acknowledgement).order_by(Acknowledgement.id)))


def test_a_signed_click_acknowledges_and_queues_the_message_update(
    rt: Runtime, db: Session, http: httpx.Client, recorder: Recorder
) -> None:
    sent = _send_one(rt, db)
    response = _post(http, _click_payload("U001", "cadence_ack", sent.delivery_id, "1.2.a"))
    assert response.status_code == 200
    [ack] = _acks(db)
    assert (ack.kind, ack.counted, ack.via, ack.person_id) == ("ack", True, "slack", sent.person_id)
    assert recorder.calls == [(SLACK_UPDATE_TASK, [sent.delivery_id])]


def test_forged_stale_replayed_and_foreign_clicks_change_nothing(
    rt: Runtime, db: Session, http: httpx.Client, recorder: Recorder
) -> None:
    sent = _send_one(rt, db)
    click = _click_payload("U001", "cadence_ack", sent.delivery_id, "1.2.a")

    forged = _post(http, click, secret="not-the-signing-secret")
    stale = _post(http, click, at=time.time() - 6 * 60)
    early = _post(http, click, at=time.time() + 6 * 60)
    unsigned = http.post(PATH, content=_form(click))
    foreign = _post(http, _click_payload("U999", "cadence_ack", sent.delivery_id, "1.2.b"))
    assert [r.status_code for r in (forged, stale, early, unsigned)] == [401] * 4
    assert "does not match" in forged.json()["error"]
    assert "from now" in stale.json()["error"] and "from now" in early.json()["error"]
    assert foreign.status_code == 200
    assert "sent to someone else" in foreign.json()["text"]
    assert _acks(db) == [] and recorder.calls == []

    body = _form(click)
    headers = sign(SECRET, body, time.time())
    first = http.post(PATH, content=body, headers=headers)
    replay = http.post(PATH, content=body, headers=headers)
    assert (first.status_code, replay.status_code) == (200, 401)
    assert "replay" in replay.json()["error"]
    assert len(_acks(db)) == 1
    assert recorder.calls == [(SLACK_UPDATE_TASK, [sent.delivery_id])]


def test_a_double_click_records_one_counted_ack_and_one_repeat(
    rt: Runtime, db: Session, server: str
) -> None:
    sent = _send_one(rt, db)
    bodies = [
        _form(_click_payload("U001", "cadence_ack", sent.delivery_id, f"1.2.{n}")) for n in "ab"
    ]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def click(body: bytes) -> None:
        with httpx.Client(base_url=server, timeout=10) as client:
            barrier.wait()
            response = client.post(PATH, content=body, headers=sign(SECRET, body, time.time()))
            statuses.append(response.status_code)

    threads = [threading.Thread(target=click, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200]
    acks = _acks(db)
    assert sorted(a.counted for a in acks) == [False, True]
    assert {a.delivery_id for a in acks} == {sent.delivery_id}


def test_the_question_button_opens_a_modal_and_its_submission_is_recorded(
    rt: Runtime, db: Session, http: httpx.Client, recorder: Recorder, slack: SlackStandIn
) -> None:
    sent = _send_one(rt, db)
    other = _post(http, _click_payload("U999", "cadence_question", sent.delivery_id, "9.9.x"))
    assert "sent to someone else" in other.json()["text"]
    assert slack.requests("views.open") == []

    click = _post(http, _click_payload("U001", "cadence_question", sent.delivery_id, "5.6.q"))
    assert click.status_code == 200
    [opened] = slack.requests("views.open")
    assert opened.params["trigger_id"] == "5.6.q"
    view = opened.params["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert view["callback_id"] == "cadence_question"
    assert view["private_metadata"] == str(sent.delivery_id)
    assert "Own the outcome" in json.dumps(view)
    assert _acks(db) == []

    empty = _post(http, _submission_payload("U001", sent.delivery_id, "   ", None))
    assert empty.json() == {
        "response_action": "errors",
        "errors": {"question": "The question is empty."},
    }
    bad_clarity = _post(http, _submission_payload("U001", sent.delivery_id, "Why?", "11"))
    assert list(bad_clarity.json()["errors"]) == ["clarity"]
    stranger = _post(http, _submission_payload("U999", sent.delivery_id, "Why?", None))
    assert "sent to someone else" in stranger.json()["errors"]["question"]
    assert _acks(db) == [] and recorder.calls == []

    question = "Does this apply to <b>refunds</b> & returns?"
    done = _post(http, _submission_payload("U001", sent.delivery_id, question, "6"))
    assert done.json() == {"response_action": "clear"}
    [ack] = _acks(db)
    assert (ack.kind, ack.question, ack.clarity, ack.counted) == ("question", question, 6, True)
    assert recorder.calls == [
        (FORWARD_QUESTION_TASK, [ack.id]),
        (SLACK_UPDATE_TASK, [sent.delivery_id]),
    ]


def test_malformed_unknown_and_unconfigured_requests(
    wired: Settings, rt: Runtime, db: Session, http: httpx.Client, recorder: Recorder
) -> None:
    sent = _send_one(rt, db)
    garbage = _post(http, None, body=b"payload=%7Bnot-json")
    assert garbage.status_code == 400 and "JSON" in garbage.json()["error"]
    not_ours = _click_payload("U001", "cadence_ack", sent.delivery_id, "1")
    not_ours["actions"][0]["value"] = "something-else"
    assert _post(http, not_ours).status_code == 400
    gone = _post(http, _click_payload("U001", "cadence_ack", 99_999, "2"))
    assert gone.status_code == 200 and "no longer" in gone.json()["text"]
    other_button = _click_payload("U001", "some_other_button", sent.delivery_id, "3")
    assert _post(http, other_button).status_code == 200
    assert _acks(db) == [] and recorder.calls == []

    bare = wired.model_copy(update={"slack_signing_secret": None})
    for base in _serve(_app(bare, rt, recorder)):
        with httpx.Client(base_url=base) as client:
            refused = _post(client, _click_payload("U001", "cadence_ack", sent.delivery_id, "4"))
    assert refused.status_code == 503
    assert refused.json()["error"] == "Slack signing secret not configured"
    assert _acks(db) == []


# --- what the workers do afterwards ---------------------------------------------------------


def _client(settings: Settings) -> WebClient:
    return WebClient(token=TOKEN, base_url=settings.slack_api_url)


def _answer(db: Session, sent: Sent, kind: str, question: str | None = None) -> int:
    recorded = record_answer(
        db,
        sent.delivery_id,
        make_answer(kind, question),
        via="slack",
        now=NINE,
        slack_user_id="U001",
    )
    db.commit()
    return recorded.acknowledgement_id


def _blocks(value: Any) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else json.loads(value)


def test_update_slack_message_replaces_the_buttons_with_the_answer(
    wired: Settings, rt: Runtime, db: Session, slack: SlackStandIn
) -> None:
    sent = _send_one(rt, db)
    _answer(db, sent, "ack")
    result = update_slack_message(db, _client(wired), sent.delivery_id)
    assert result.status == "updated"
    [call] = slack.requests("chat.update")
    assert (call.params["channel"], call.params["ts"]) == (sent.channel, sent.ts)
    blocks = _blocks(call.params["blocks"])
    assert [b for b in blocks if b["type"] == "actions"] == []
    assert "we fix the customer" in json.dumps(blocks)
    assert "\u2705 Acknowledged" in blocks[-1]["elements"][0]["text"]
    [message] = slack.messages(sent.channel)
    assert [b for b in _blocks(message["blocks"]) if b["type"] == "actions"] == []

    _answer(db, sent, "question", "When does it start?")
    update_slack_message(db, _client(wired), sent.delivery_id)
    last = _blocks(slack.requests("chat.update")[-1].params["blocks"])[-1]
    lines = [element["text"] for element in last["elements"]]
    assert lines[0].startswith("\u2705 Acknowledged")
    assert lines[1].startswith("\u2753 Question sent to Grace Hopper")


def test_update_slack_message_skips_what_has_nothing_to_show(
    wired: Settings, rt: Runtime, db: Session, slack: SlackStandIn
) -> None:
    sent = _send_one(rt, db)
    assert update_slack_message(db, _client(wired), sent.delivery_id).status == "skipped"
    assert slack.requests("chat.update") == []


def _deliver(rt: Runtime, settings: Settings) -> None:
    """What the tick and the workers do, until the outbox is empty."""
    channels: dict[str, Any] = {}

    def channel(name: str) -> Any:
        if name not in channels:
            channels[name] = make_channel(name, settings, settings.redis_url)
        return channels[name]

    for _ in range(5):
        queued: list[int] = []
        tick(rt.sessions, policy_from(settings), queued.extend, NINE)
        if not queued:
            return
        send_batch(rt.sessions, channel, queued, send_policy_from(settings), NINE)


def test_forward_question_sends_a_slack_dm_to_the_team_leader(
    wired: Settings, rt: Runtime, db: Session, slack: SlackStandIn
) -> None:
    sent = _send_one(rt, db)
    ack_id = _answer(db, sent, "question", "Is <!channel> told too? & when?")
    result = forward_question(db, ack_id, NINE)
    db.commit()
    assert (result.via, result.to) == ("slack", "boss@example.com")
    _deliver(rt, wired)
    [post] = [r for r in slack.requests("chat.postMessage") if r.params["channel"] == "UBOSS"]
    flat = json.dumps(_blocks(post.params["blocks"]))
    assert "Ada Lovelace" in flat and "Own the outcome" in flat
    assert "&lt;!channel&gt;" in flat and "<!channel>" not in flat
    assert "Got it" not in flat  # information for the leader, nothing to acknowledge
    # Recorded like every send, and kept out of the message's figures.
    ada = db.get(Person, sent.person_id)
    assert ada is not None
    [delivery] = db.scalars(select(Delivery).where(Delivery.person_id == ada.manager_id)).all()
    assert delivery.status == "sent" and delivery.occurrence.purpose == "question"
    repeat_id = _answer(db, sent, "question", "Is <!channel> told too? & when?")
    again = forward_question(db, repeat_id, NINE)
    assert again.via == "nobody"
    assert forward_question(db, ack_id, NINE).via == "slack"  # twice writes nothing more
    db.commit()
    _deliver(rt, wired)
    assert (
        len([r for r in slack.requests("chat.postMessage") if r.params["channel"] == "UBOSS"]) == 1
    )


def test_forward_question_emails_a_team_leader_slack_cannot_reach(
    wired: Settings, rt: Runtime, db: Session, slack: SlackStandIn
) -> None:
    sent = _send_one(rt, db, manager_slack=None)
    slack.configure(accept_any=False, users=[{"id": "U001", "email": "ada@example.com"}])
    ack_id = _answer(db, sent, "question", "Who do I ask about refunds?")
    with SmtpStandIn() as smtp:
        mailing = wired.model_copy(update={"smtp_url": smtp.url})
        result = forward_question(db, ack_id, NINE)
        db.commit()
        _deliver(Runtime(mailing), mailing)
        [mail] = smtp.messages
    assert result.via == "slack"  # tried first; the leader has no Slack account
    assert mail.rcpt_tos == ("boss@example.com",)
    assert mail.message["To"] == "Grace Hopper <boss@example.com>"
    assert mail.message["Reply-To"] == "Ada Lovelace <ada@example.com>"
    assert "Own the outcome" in mail.subject and "Ada Lovelace" in mail.subject
    assert "Who do I ask about refunds?" in mail.body()
    assert [r.params["channel"] for r in slack.requests("chat.postMessage")] == ["U001"]


def test_forward_question_without_a_team_leader_reaches_nobody(
    wired: Settings, rt: Runtime, db: Session
) -> None:
    sent = _send_one(rt, db)
    ada = db.get(Person, sent.person_id)
    assert ada is not None
    ada.manager_id = None
    db.commit()
    ack_id = _answer(db, sent, "question", "Anyone?")
    result = forward_question(db, ack_id, NINE)
    assert (result.via, result.reason) == ("nobody", "no team leader")


def test_the_worker_tasks_call_the_follow_ups(
    wired: Settings, rt: Runtime, db: Session, slack: SlackStandIn
) -> None:
    sent = _send_one(rt, db)
    ack_id = _answer(db, sent, "question", "Through the worker?")
    assert wired.redis_url
    app = make_celery(wired, wired.redis_url)
    updated = app.tasks[SLACK_UPDATE_TASK].apply(args=[sent.delivery_id]).get()
    forwarded = app.tasks[FORWARD_QUESTION_TASK].apply(args=[ack_id]).get()
    assert updated["status"] == "updated" and forwarded["via"] == "slack"
    _deliver(rt, wired)
    assert [r.params["channel"] for r in slack.requests("chat.postMessage")] == ["U001", "UBOSS"]
    assert len(slack.requests("chat.update")) == 1
    assert db.scalar(select(func.count()).select_from(Acknowledgement)) == 1


# --- the benchmark ---------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_acks_records_every_click_exactly_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "bench", "acks", "--clicks", "30", "--concurrency", "8"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["clicks"] == 30 and figures["responses"] == {"200": 30}
    assert figures["recorded"] == {
        "counted": 30,
        "rows": 30,
        "lost": 0,
        "lost_after_200": 0,
        "exactly_once": True,
    }
    assert figures["updates_queued"] == 30
    assert figures["acknowledgements_per_second"] > 0
    assert 0 < figures["latency_ms"]["p50"] <= figures["latency_ms"]["p99"]
