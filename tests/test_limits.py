"""Bounded requests and bounded templates.

Requests: a live uvicorn server on a real socket, spoken to byte by byte, so that what is
proved is what a client sees: a 413 before the rest of the body is sent or read. Templates:
refused when the message is added (CLI and API), and at send time failing only the delivery
they exceed, through the real dispatcher and channels.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from cadence.access import api_tokens
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.messages.personalise import (
    MAX_LOOP_STEPS,
    MAX_OUTPUT,
    SAMPLE_CONTEXTS,
    PersonaliseError,
    check_template,
    personalise,
)
from cadence.runtime import Runtime
from cadence.store.models import Delivery, DeliveryStatus, Message
from cadence.web.deps import WebDeps
from cadence.web.slack_interactions import PATH as SLACK_PATH
from tests import factories as f
from tests.conftest import CliResult
from tests.test_api import NOW, Clock, core, user
from tests.test_channels import NINE, Sender
from tests.test_web import free_port, serve

MIB = 1_048_576
REPORTED_LOOP = "{% for i in range(30000) %}{{ i }} {% endfor %}"


@dataclass
class Server:
    url: str
    port: int
    token: str

    def raw(self, head: str, body: bytes = b"") -> socket.socket:
        """A connection with the request head (and the start of a body) already sent."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(head.encode() + b"\r\n" + body)
        return sock


Start = Callable[..., Server]


@pytest.fixture
def start(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Start]:
    """Starts a live server with the given settings changed; a comms user's token for it."""
    f.team(session, "Support")
    f.person(session, "a1@example.com", team=None)
    row = user(session, "comms@example.com", "comms")
    token = api_tokens.create_token(session, row, "tests", f.T0)[1]
    session.commit()
    with ExitStack() as stack:

        def run(**changes: object) -> Server:
            port = free_port()
            assert settings.redis_url is not None
            deps = WebDeps(
                settings=settings.model_copy(
                    update={
                        "base_url": f"http://127.0.0.1:{port}",
                        "slack_signing_secret": "shh-test-secret",
                        **changes,
                    }
                ),
                sessions=runtime.sessions,
                redis=redis_client(settings.redis_url),
                send_task=lambda name, args: None,
                clock=Clock(NOW),
            )
            return Server(stack.enter_context(serve(deps, port)), port, token)

        yield run


def head(path: str, *lines: str) -> str:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *lines, ""])


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the response, read until the server closes."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            top, _, rest = data.partition(b"\r\n\r\n")
            fields = dict(
                line.split(": ", 1) for line in top.decode().split("\r\n")[1:] if ": " in line
            )
            headers = {k.lower(): v for k, v in fields.items()}
            if len(rest) >= int(headers.get("content-length", "-1")):
                return int(top.split()[1]), headers, rest
    raise AssertionError(f"no complete response: {data[:200]!r}")


def send_chunked(sock: socket.socket, total: int, chunk: int = 16_384) -> int:
    """Send up to `total` bytes as chunks, stopping as soon as the server answers; how many
    were sent."""
    sent = 0
    while sent < total:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += chunk
    else:
        sock.sendall(b"0\r\n\r\n")
    return sent


def test_a_huge_announced_body_is_refused_at_once_without_waiting_for_it(
    start: Start,
) -> None:
    server = start()
    began = time.monotonic()
    with server.raw(
        head("/api/messages", "Content-Type: application/json", "Content-Length: 314572800"),
        b"{" + b" " * 4096,
    ) as sock:
        status, headers, body = answer(sock)
    elapsed = time.monotonic() - began
    assert status == 413
    assert elapsed < 2.0  # the other 300 MB were never waited for
    assert headers["content-type"].startswith("application/json")
    detail = json.loads(body)["detail"]
    assert "at most 1,048,576 bytes (1 MiB)" in detail
    assert "CADENCE_MAX_REQUEST_BYTES" in detail
    # Unauthenticated, and still a 413, not a 401: the limit comes first. The server is well.
    assert httpx.get(server.url + "/api/messages").status_code == 401


def test_a_chunked_body_without_a_length_is_refused_once_it_passes_the_limit(
    start: Start,
) -> None:
    server = start()
    lines = ("Content-Type: application/json", "Transfer-Encoding: chunked")
    with server.raw(head("/api/messages", *lines)) as sock:
        sent = send_chunked(sock, 64 * MIB)
        status, _, body = answer(sock)
    assert status == 413
    assert "1,048,576 bytes" in json.loads(body)["detail"]
    # Answered once the count passed the limit, long before the 64 MiB were all sent (what
    # was sent beyond the limit sits in the two ends' socket buffers, a few MiB at most).
    assert sent < 32 * MIB


def test_a_body_just_under_the_limit_is_accepted(start: Start) -> None:
    server = start()
    payload = json.dumps(core(audience={"people": ["a1@example.com"]})).encode()
    padded = payload[:-1] + b" " * (MIB - len(payload) - 16) + b"}"
    assert MIB - 32 < len(padded) <= MIB
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    created = httpx.post(server.url + "/api/messages", content=padded, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "Own the outcome"


def test_the_setting_moves_the_threshold(start: Start) -> None:
    default, small = start(), start(max_request_bytes=8192)
    payload = json.dumps(core(audience={"people": ["a1@example.com"]})).encode()
    body = payload[:-1] + b" " * 12_000 + b"}"
    headers = {"Authorization": f"Bearer {default.token}", "Content-Type": "application/json"}

    def create(server: Server, content: bytes) -> httpx.Response:
        return httpx.post(server.url + "/api/messages", content=content, headers=headers)

    assert create(default, body).status_code == 201
    refused = create(small, body)
    assert refused.status_code == 413
    assert "at most 8,192 bytes (8 KiB)" in refused.json()["detail"]
    # Chunked, too: the count uses the same setting.
    with small.raw(head("/api/messages", "Transfer-Encoding: chunked")) as sock:
        send_chunked(sock, 64_000, chunk=1024)
        assert answer(sock)[0] == 413
    assert create(small, payload).status_code == 201


def test_slack_interactions_are_covered(start: Start) -> None:
    server = start()
    form = "Content-Type: application/x-www-form-urlencoded"
    with server.raw(head(SLACK_PATH, form, "Content-Length: 314572800"), b"payload=") as sock:
        status, headers, body = answer(sock)
    assert status == 413
    assert headers["content-type"].startswith("text/plain")
    assert "at most 1,048,576 bytes" in body.decode()
    with server.raw(head(SLACK_PATH, form, "Transfer-Encoding: chunked")) as sock:
        send_chunked(sock, 8 * MIB)
        assert answer(sock)[0] == 413
    # Under the limit the route reads it and judges the signature, as before.
    unsigned = httpx.post(server.url + SLACK_PATH, content=b"payload=" + b"x" * 500_000)
    assert unsigned.status_code == 401


def test_forms_are_covered(start: Start) -> None:
    server = start()
    form = "Content-Type: application/x-www-form-urlencoded"
    with server.raw(head("/login", form, "Transfer-Encoding: chunked")) as sock:
        send_chunked(sock, 8 * MIB)
        status, _, body = answer(sock)
    assert status == 413
    assert "larger than this server accepts" in body.decode()


# ---------------------------------------------------------------------------------------
# Templates


def test_the_reported_loop_is_refused_by_the_cli_and_nothing_is_stored(
    cli: Callable[..., CliResult], session: Session
) -> None:
    f.person(session, "a1@example.com")
    session.commit()
    result = cli(
        "message", "add", "--title", "Loop", "--body", REPORTED_LOOP,
        "--person", "a1@example.com", "--rrule", "FREQ=WEEKLY;BYDAY=MO",
        "--start", "2026-03-02", "--at", "09:00", "--channel", "log",
    )  # fmt: skip
    assert result.code == 2
    assert f"at most {MAX_LOOP_STEPS:,}, the loop step limit" in result.err
    assert "body: refused" in result.err
    assert session.scalars(sql_select(Message)).all() == []


def test_the_reported_loop_is_refused_by_the_api_and_nothing_is_stored(
    start: Start, session: Session
) -> None:
    server = start()
    headers = {"Authorization": f"Bearer {server.token}"}
    refused = httpx.post(
        server.url + "/api/messages",
        json=core(body=REPORTED_LOOP, audience={"people": ["a1@example.com"]}),
        headers=headers,
    )
    assert refused.status_code == 422
    assert any("loop step limit" in line for line in refused.json()["problems"])
    nested = "{% for i in range(900) %}{% for j in range(900) %}{% endfor %}{% endfor %}"
    refused = httpx.post(
        server.url + "/api/messages",
        json=core(variants=[nested], audience={"people": ["a1@example.com"]}),
        headers=headers,
    )
    assert refused.status_code == 422
    assert "variant 1: refused: runs more than 1,000 loop steps" in refused.json()["problems"]
    session.expire_all()
    assert session.scalars(sql_select(Message)).all() == []


def test_an_edit_that_adds_the_loop_is_refused(
    cli: Callable[..., CliResult], session: Session
) -> None:
    f.person(session, "a1@example.com")
    message = f.core_message(session, channels=["log"])
    session.commit()
    result = cli("message", "edit", str(message.id), "--body", REPORTED_LOOP)
    assert result.code == 2
    assert "loop step limit" in result.err
    session.expire_all()
    stored = session.get(Message, message.id)
    assert stored is not None and stored.body == message.body


# A loop over a personalised field: a few hundred steps for the sample, over the limit for
# someone whose name is long.
PER_NAME = "{% for letter in person.name * 40 %}{{ letter }}{% endfor %}"


def test_a_template_that_only_exceeds_for_one_recipient_fails_that_delivery_alone(
    cli: Callable[..., CliResult], session: Session, runtime: Runtime
) -> None:
    boss = f.person(session, "boss@example.com")
    short = f.person(session, "ada@example.com", manager=boss)
    short.name = "Ada Lovelace"
    long = f.person(session, "grace@example.com", manager=boss)
    long.name = "Grace Brewster Murray Hopper, Rear Admiral"  # 42 letters: 1,680 steps
    session.commit()
    added = cli(
        "message", "add", "--title", "Names", "--body", PER_NAME,
        "--person", "ada@example.com", "--person", "grace@example.com",
        "--rrule", "FREQ=DAILY", "--start", "2026-03-02", "--at", "09:00", "--tz", "UTC",
        "--channel", "log",
    )  # fmt: skip
    assert added.code == 0, added.err
    sender = Sender(runtime)
    report = sender.send(sender.dispatch(NINE), NINE)
    assert (report.sent, report.failed) == (1, 1)
    session.expire_all()
    outcome = {d.person.email: d for d in session.scalars(sql_select(Delivery))}
    assert outcome["ada@example.com"].status == DeliveryStatus.SENT.value
    failed = outcome["grace@example.com"]
    assert failed.status == DeliveryStatus.FAILED.value
    assert "more than 1,000 loop steps" in (failed.last_error or "")
    [message] = session.scalars(sql_select(Message))
    assert message.attention is not None
    assert "more than 1,000 loop steps" in message.attention


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{% for i in range(10**15) %}x{% endfor %}", "range() of 1,000,000,000,000,000 numbers"),
        ("{{ range(10**15)|list|length }}", "range() of"),
        ("{% for a in range(40) %}{% for b in range(40) %}{% endfor %}{% endfor %}",
         "more than 1,000 loop steps"),
        ("{% for i in range(1000) %}{{ range(1000)|sum }}{% endfor %}",
         "more than 20,000 operations"),
        ("{% for i in range(1000) %}{{ person.name * 4 }}{% endfor %}",
         f"more than {MAX_OUTPUT:,} characters"),
    ],
)  # fmt: skip
def test_each_limit_trips_quickly(body: str, reason: str) -> None:
    began = time.perf_counter()
    [problem] = check_template(body, "body")
    assert reason in problem
    assert time.perf_counter() - began < 0.5


def test_the_send_time_renderer_refuses_the_long_name_only() -> None:
    _, sample = SAMPLE_CONTEXTS[0]
    assert len(personalise(PER_NAME, sample)) == 40 * len(sample["person"]["name"])
    long = {**sample, "person": {**sample["person"], "name": "x" * 30}}
    with pytest.raises(PersonaliseError, match="more than 1,000 loop steps"):
        personalise(PER_NAME, long)


@pytest.mark.parametrize(
    "body",
    [
        "We fix the customer's problem, {{ person.first_name }}.",
        "From today, refunds under 50 EUR are approved at once, {{ person.first_name }}.",
        "Hi {{ person.first_name }}, every customer gets a name, not a number: greet them by "
        "name and tell them yours. Your team lead {{ manager.name }} will say more on Monday.",
        "{% if manager.name %}Ask {{ manager.first_name }}.{% else %}Ask your team.{% endif %}",
        "{% for i in range(1000) %}{{ loop.index }},{% endfor %}",
        "{% for word in person.name.split() %}{{ word|upper }} {% endfor %}",
        "x" * 39_000,
    ],
)
def test_ordinary_templates_still_render(body: str) -> None:
    assert check_template(body, "body") == []
    for _, context in SAMPLE_CONTEXTS:
        assert personalise(body, context)


def test_a_bad_limit_setting_is_named() -> None:
    from cadence.config import load_settings
    from cadence.errors import CadenceError

    with pytest.raises(CadenceError, match="CADENCE_MAX_REQUEST_BYTES"):
        load_settings(max_request_bytes=10)
