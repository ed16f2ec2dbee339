"""The web app over real HTTP: a live uvicorn server, a real database and a real Redis.

The email acknowledgement link must be honest: opening it records nothing, only a form
posted from Cadence's own page records, once, and only for the person the link was sent to.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import time_machine
import uvicorn
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cadence.answers.tokens import make_ack_token
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.dispatch import DispatchPolicy, tick
from cadence.figures import summaries
from cadence.runtime import Runtime
from cadence.store.models import Acknowledgement, Delivery, DeliveryStatus, Occurrence
from cadence.web.ack_pages import CSRF_COOKIE, csrf_field
from cadence.web.app import build_app
from cadence.web.deps import WebDeps
from tests import factories as f
from tests.conftest import CliResult

# The first Monday 09:00 of the factory's weekly message; the app's clock runs an hour later.
DUE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = DUE + timedelta(hours=1)
POLICY = DispatchPolicy(
    org_zone="UTC",
    horizon=timedelta(days=14),
    batch_size=50,
    stuck_after=timedelta(minutes=5),
    max_lateness=timedelta(hours=12),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(deps: WebDeps, port: int, host: str = "127.0.0.1") -> Iterator[str]:
    """Run the app on a real socket in a thread; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(deps),
            host=host,
            port=port,
            log_level="warning",
            proxy_headers=False,  # as `cadence web` runs it
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Live:
    url: str
    settings: Settings
    runtime: Runtime
    tasks: list[tuple[str, list[Any]]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def acks(self) -> list[Acknowledgement]:
        with self.runtime.sessions() as session:
            return list(session.scalars(select(Acknowledgement).order_by(Acknowledgement.id)))


@pytest.fixture
def live(settings: Settings, runtime: Runtime) -> Iterator[Live]:
    port = free_port()
    web_settings = settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})
    assert settings.redis_url is not None
    live = Live(url="", settings=web_settings, runtime=runtime)
    deps = WebDeps(
        settings=web_settings,
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda name, args: live.tasks.append((name, args)),
        clock=lambda: NOW,
    )
    with serve(deps, port) as url:
        live.url = url
        yield live


@dataclass(frozen=True)
class Sent:
    delivery_id: int  # Ann's
    person_id: int  # Ann
    other_delivery_id: int  # her manager's, still queued
    other_person_id: int  # her manager
    token: str


@pytest.fixture
def sent(runtime: Runtime, session: Session, live: Live) -> Sent:
    """Ann (managed by Boss) has been emailed the core message; Boss's email is queued."""
    boss = f.person(session, "boss@example.com")
    ann = f.person(session, "ann@example.com", manager=boss)
    f.core_message(session, channels=["email"])
    session.commit()
    tick(runtime.sessions, POLICY, lambda ids: None, DUE)
    ann_delivery = session.scalars(select(Delivery).where(Delivery.person_id == ann.id)).one()
    boss_delivery = session.scalars(select(Delivery).where(Delivery.person_id == boss.id)).one()
    session.execute(
        update(Delivery)
        .where(Delivery.id == ann_delivery.id)
        .values(status=DeliveryStatus.SENT.value, sent_at=DUE, provider_id="<delivery@x>")
    )
    session.commit()
    token = make_ack_token(live.settings.secret_key.get_secret_value(), ann_delivery.id, ann.id)
    return Sent(ann_delivery.id, ann.id, boss_delivery.id, boss.id, token)


def open_form(client: httpx.Client, token: str) -> str:
    """GET the confirm page as a browser would; return the form's csrf field."""
    page = client.get(f"/ack/{token}")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)


def post(
    client: httpx.Client, token: str, data: dict[str, str], origin: str | None = None
) -> httpx.Response:
    headers = {"Origin": origin} if origin is not None else {}
    return client.post(f"/ack/{token}", data=data, headers=headers)


def test_opening_the_link_records_nothing_and_shows_the_form(live: Live, sent: Sent) -> None:
    with live.client() as client:
        for _ in range(3):  # a mail scanner, a link preview, then the person
            page = client.get(f"/ack/{sent.token}")
            assert page.status_code == 200
    assert live.acks() == []
    html = page.text
    assert "Own the outcome" in html and "For Ann" in html
    assert '<form method="post">' in html
    assert 'name="kind" value="ack"' in html and ">Got it</button>" in html
    assert '<textarea id="question" name="question"' in html
    assert 'name="kind" value="question"' in html
    for score in ["", *map(str, range(11))]:
        assert f'type="radio" name="clarity" value="{score}"' in html
    assert 'value="" checked><span>No rating</span>' in html
    assert "<script" not in html.lower()
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp
    cookie = page.headers["set-cookie"].lower()
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ack" in cookie
    assert "secure" not in cookie  # base URL is http here


def test_the_cookie_is_secure_when_the_base_url_is_https(
    settings: Settings, runtime: Runtime, sent: Sent
) -> None:
    port = free_port()
    assert settings.redis_url is not None
    deps = WebDeps(
        settings=settings.model_copy(update={"base_url": "https://cadence.example.com"}),
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda name, args: None,
    )
    with serve(deps, port) as url, httpx.Client(base_url=url) as client:
        page = client.get(f"/ack/{sent.token}")
    assert page.status_code == 200
    assert "; secure" in page.headers["set-cookie"].lower()


def test_a_confirmed_answer_counts_once_and_a_second_is_a_repeat(live: Live, sent: Sent) -> None:
    with live.client() as client:
        csrf = open_form(client, sent.token)
        first = post(client, sent.token, {"kind": "ack", "clarity": "8", "csrf": csrf}, live.url)
        assert first.status_code == 200, first.text
        assert "Thanks, recorded" in first.text
        assert first.headers["cache-control"] == "no-store"
        [ack] = live.acks()
        assert (ack.kind, ack.counted, ack.clarity, ack.via) == ("ack", True, 8, "email")
        assert (ack.delivery_id, ack.person_id) == (sent.delivery_id, sent.person_id)
        assert ack.created_at == NOW

        again = client.get(f"/ack/{sent.token}")
        assert "You have already acknowledged this message" in again.text
        # `Origin: null` is what browsers send under Referrer-Policy: no-referrer.
        second = post(client, sent.token, {"kind": "ack", "csrf": csrf}, "null")
        assert second.status_code == 200, second.text
        assert "You had already acknowledged this" in second.text
        assert "noted your repeat" in second.text
    assert [(a.kind, a.counted) for a in live.acks()] == [("ack", True), ("ack", False)]
    assert live.tasks == []


def test_posts_not_from_the_confirm_page_are_refused(live: Live, sent: Sent) -> None:
    with live.client() as client:
        csrf = open_form(client, sent.token)
        wrong = post(client, sent.token, {"kind": "ack", "csrf": "0" * 64}, live.url)
        missing = post(client, sent.token, {"kind": "ack"}, live.url)
        foreign = post(
            client, sent.token, {"kind": "ack", "csrf": csrf}, "https://evil.example.com"
        )
        other_port = post(client, sent.token, {"kind": "ack", "csrf": csrf}, "http://127.0.0.1:1")
    with live.client() as stranger:  # the right field, but no cookie: another browser
        no_cookie = post(stranger, sent.token, {"kind": "ack", "csrf": csrf}, live.url)
    for response in (wrong, missing, foreign, other_port, no_cookie):
        assert response.status_code == 403, response.text
        assert "Nothing was recorded" in response.text
        assert response.headers["x-frame-options"] == "DENY"
    assert "Open the acknowledgement page again" in no_cookie.text
    assert "not sent from Cadence" in foreign.text
    assert live.acks() == []


def test_the_csrf_field_is_bound_to_the_link(live: Live, sent: Sent) -> None:
    boss_token = make_ack_token(
        live.settings.secret_key.get_secret_value(), sent.other_delivery_id, sent.other_person_id
    )
    with live.client() as client:
        csrf_for_boss = open_form(client, boss_token)
        open_form(client, sent.token)
        response = post(client, sent.token, {"kind": "ack", "csrf": csrf_for_boss}, live.url)
    assert response.status_code == 403
    assert live.acks() == []


def forged_post(live: Live, token: str, data: dict[str, str]) -> httpx.Response:
    """A POST with a valid cookie and field for `token`, so only the token decides."""
    cookie = "c" * 43
    with httpx.Client(base_url=live.url, cookies={CSRF_COOKIE: cookie}) as client:
        fields = {
            "csrf": csrf_field(live.settings.secret_key.get_secret_value(), cookie, token),
            **data,
        }
        return client.post(f"/ack/{token}", data=fields, headers={"Origin": live.url})


def test_an_expired_link_shows_410_and_records_nothing(live: Live, sent: Sent) -> None:
    with time_machine.travel(datetime.now(UTC) - timedelta(days=31), tick=False):
        old = make_ack_token(
            live.settings.secret_key.get_secret_value(), sent.delivery_id, sent.person_id
        )
    with live.client() as client:
        page = client.get(f"/ack/{old}")
    assert page.status_code == 410
    assert "This link has expired" in page.text
    assert 'name="kind"' not in page.text
    answer = forged_post(live, old, {"kind": "ack"})
    assert answer.status_code == 410
    assert live.acks() == []


@pytest.mark.parametrize("which", ["tampered", "foreign", "unknown delivery", "other secret"])
def test_a_bad_link_shows_400_and_records_nothing(live: Live, sent: Sent, which: str) -> None:
    secret = live.settings.secret_key.get_secret_value()
    if which == "tampered":
        body, signature = sent.token.rsplit(".", 1)
        middle = len(signature) // 2
        flipped = "A" if signature[middle] != "A" else "B"
        token = f"{body}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    elif which == "foreign":  # Ann's delivery, but a link made out to Boss
        token = make_ack_token(secret, sent.delivery_id, sent.other_person_id)
    elif which == "unknown delivery":
        token = make_ack_token(secret, 999_999, sent.person_id)
    else:
        token = make_ack_token("another-secret", sent.delivery_id, sent.person_id)
    with live.client() as client:
        page = client.get(f"/ack/{token}")
    assert page.status_code == 400
    assert "This acknowledgement link is not valid" in page.text
    assert 'name="kind"' not in page.text
    answer = forged_post(live, token, {"kind": "ack"})
    assert answer.status_code == 400
    assert live.acks() == []


def test_bad_answers_are_named_and_record_nothing(live: Live, sent: Sent) -> None:
    with live.client() as client:
        csrf = open_form(client, sent.token)
        empty = post(client, sent.token, {"kind": "question", "question": "  ", "csrf": csrf})
        unclear = post(
            client,
            sent.token,
            {"kind": "ack", "clarity": "11", "question": "<b>bold</b>", "csrf": csrf},
        )
        unknown = post(client, sent.token, {"kind": "delete", "csrf": csrf})
    assert empty.status_code == 400
    assert "the question is empty" in empty.text
    assert unclear.status_code == 400
    assert "clarity must be a whole number from 0 to 10" in unclear.text
    # The form comes back with what was typed, escaped, and a working csrf field.
    assert "&lt;b&gt;bold&lt;/b&gt;" in unclear.text and "<b>bold" not in unclear.text
    assert 'name="csrf"' in unclear.text
    assert unknown.status_code == 400
    assert "unknown answer" in unknown.text
    assert live.acks() == []


def test_a_question_is_recorded_and_handed_to_the_worker(live: Live, sent: Sent) -> None:
    with live.client() as client:
        csrf = open_form(client, sent.token)
        data = {"kind": "question", "question": "Does this apply to refunds?", "csrf": csrf}
        asked = post(client, sent.token, data, live.url)
        assert asked.status_code == 200, asked.text
        assert "Your question was sent to Boss" in asked.text
        [row] = live.acks()
        assert (row.kind, row.question, row.counted) == (
            "question",
            "Does this apply to refunds?",
            True,
        )
        assert live.tasks == [("cadence.forward_question", [row.id])]

        double = post(client, sent.token, data, live.url)  # a double click
        assert double.status_code == 200
        assert "You had already sent this question" in double.text
        assert live.tasks == [("cadence.forward_question", [row.id])]

        follow_up = {"kind": "question", "question": "And to exchanges?", "csrf": csrf}
        assert post(client, sent.token, follow_up, live.url).status_code == 200
    rows = live.acks()
    assert [(a.kind, a.counted) for a in rows] == [
        ("question", True),
        ("question", False),
        ("question", False),
    ]
    assert live.tasks == [
        ("cadence.forward_question", [rows[0].id]),
        ("cadence.forward_question", [rows[2].id]),
    ]


def test_a_question_after_acknowledging_is_still_forwarded(live: Live, sent: Sent) -> None:
    with live.client() as client:
        csrf = open_form(client, sent.token)
        assert post(client, sent.token, {"kind": "ack", "csrf": csrf}).status_code == 200
        page = client.get(f"/ack/{sent.token}")
        assert "You can still ask a question" in page.text
        asked = post(client, sent.token, {"kind": "question", "question": "When?", "csrf": csrf})
    assert "Your question was sent to Boss" in asked.text
    assert "earlier acknowledgement of this message still stands" in asked.text
    rows = live.acks()
    assert [(a.kind, a.counted) for a in rows] == [("ack", True), ("question", False)]
    assert live.tasks == [("cadence.forward_question", [rows[1].id])]


def test_health_reports_both_dependencies(live: Live) -> None:
    with live.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_health_is_503_when_redis_is_down(settings: Settings, runtime: Runtime) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    deps = WebDeps(
        settings=settings, sessions=runtime.sessions, redis=dead, send_task=lambda n, a: None
    )
    with serve(deps, free_port()) as url, httpx.Client(base_url=url) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "ok", "redis": "unreachable"}


def test_metrics_are_read_from_the_database(live: Live, sent: Sent, session: Session) -> None:
    occurrence = session.scalars(
        select(Occurrence).where(Occurrence.sequence == 0, Occurrence.purpose == "cadence")
    ).one()
    late = Occurrence(
        message_id=occurrence.message_id,
        sequence=99,
        zone="UTC",
        local_time=DUE.replace(tzinfo=None),
        due_at=DUE,
    )
    session.add(late)  # due an hour before the app's clock and not yet dispatched
    session.commit()
    with live.client() as client:
        csrf = open_form(client, sent.token)
        post(client, sent.token, {"kind": "ack", "csrf": csrf})
        post(client, sent.token, {"kind": "ack", "csrf": csrf})
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = set(response.text.splitlines())
    assert 'cadence_deliveries{channel="email",status="queued"} 1.0' in lines
    assert "cadence_dispatcher_lag_seconds 3600.0" in lines
    assert "cadence_oldest_queued_delivery_seconds 3600.0" in lines
    pending = next(line for line in lines if line.startswith("cadence_figure_changes_pending "))
    assert float(pending.split()[1]) > 0  # no beat ran: the answers wait to be summarised
    summaries.catch_up(session)
    session.commit()
    with live.client() as client:
        after = set(client.get("/metrics").text.splitlines())
    assert "cadence_figure_changes_pending 0.0" in after
    # Sends and answers are read from the summaries, once summarised.
    assert 'cadence_deliveries{channel="email",status="sent"} 1.0' in after
    assert 'cadence_deliveries{channel="email",status="queued"} 1.0' in after
    assert 'cadence_acknowledgements_total{kind="ack"} 1.0' in after
    assert 'cadence_acknowledgements_total{kind="question"} 0.0' in after


def test_two_apps_in_one_process_keep_their_own_metrics(
    live: Live, settings: Settings, runtime: Runtime
) -> None:
    assert settings.redis_url is not None
    deps = WebDeps(
        settings=settings,
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda n, a: None,
    )
    with serve(deps, free_port()) as url, httpx.Client(base_url=url) as client:
        assert "cadence_deliveries" in client.get("/metrics").text
    with live.client() as client:
        assert "cadence_dispatcher_lag_seconds 0.0" in client.get("/metrics").text


def test_web_verb_has_help(cli: Callable[..., CliResult]) -> None:
    result = cli("web", "--help")
    assert result.code == 0, result
    assert "--host" in result.out and "--port" in result.out
    up = cli("up", "--help")
    assert up.code == 0 and "--port" in up.out


@pytest.mark.slow
def test_cadence_up_serves_the_web_app_too(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    port = free_port()
    env = dict(os.environ)
    env.update(
        CADENCE_DATABASE_URL=settings.database_url,
        CADENCE_STATE_DIR=str(tmp_path / "state"),
        CADENCE_BASE_URL=f"http://127.0.0.1:{port}",
    )
    env.pop("CADENCE_REDIS_URL", None)
    if settings.redis_url:
        env["CADENCE_REDIS_URL"] = settings.redis_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "cadence", "up", "--port", str(port), "--loglevel", "WARNING"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        health: httpx.Response | None = None
        deadline = time.monotonic() + 60
        while health is None and time.monotonic() < deadline:
            assert proc.poll() is None, "cadence up exited early"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)  # the web child is still starting
        assert health is not None, "the web app did not start"
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
