"""The demo's inbox preview over real HTTP: renderings, and answers that really count."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.dispatch import tick
from cadence.runtime import Runtime
from cadence.store.models import Acknowledgement, Delivery
from cadence.web.deps import WebDeps
from cadence.web.inbox import mrkdwn_html
from cadence.worker import policy_from
from tests import factories as f
from tests.test_web import free_port, serve

DUE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def start(settings: Settings, runtime: Runtime, demo_inbox: bool) -> Iterator[str]:
    port = free_port()
    web = settings.model_copy(
        update={"base_url": f"http://127.0.0.1:{port}", "demo_inbox": demo_inbox}
    )
    assert settings.redis_url
    deps = WebDeps(web, runtime.sessions, redis_client(settings.redis_url),
                   lambda name, args: None, clock=lambda: DUE)  # fmt: skip
    with serve(deps, port) as url:
        yield url


@pytest.fixture
def inbox(settings: Settings, runtime: Runtime) -> Iterator[str]:
    yield from start(settings, runtime, demo_inbox=True)


def test_inbox_shows_what_a_person_received_and_answers_count(
    inbox: str, runtime: Runtime, session: Session
) -> None:
    f.person(session, "ada@example.com").name = "Ada <b>Lovelace</b>"
    f.core_message(session, body="Hello **{{ person.first_name }}**, see <https://example.com>.")
    session.commit()
    tick(runtime.sessions, policy_from(runtime.settings), lambda ids: None, DUE)
    session.execute(update(Delivery).values(status="sent", sent_at=DUE))
    session.commit()
    with httpx.Client(base_url=inbox, timeout=10) as client:
        people = client.get("/inbox")
        assert people.status_code == 200 and "ada@example.com" in people.text
        assert "<b>Lovelace</b>" not in people.text  # names are escaped
        page = client.get("/inbox/ada@example.com")
        assert page.status_code == 200
        assert "Own the outcome" in page.text
        assert "<strong>Ada</strong>" in page.text  # mrkdwn bold, as Slack shows it
        assert "As the email shows it" in page.text
        check = re.search(r'name="check" value="([0-9a-f]+)"', page.text)
        delivery_id = re.search(r'name="delivery_id" value="(\d+)"', page.text)
        assert check and delivery_id
        form = {"delivery_id": delivery_id.group(1), "kind": "ack", "check": check.group(1)}
        forged = client.post("/inbox/ada@example.com/answer", data={**form, "check": "0" * 64})
        assert forged.status_code == 403
        other_site = client.post("/inbox/ada@example.com/answer", data=form,
                                 headers={"Origin": "https://evil.example"})  # fmt: skip
        assert other_site.status_code == 403
        assert session.scalars(select(Acknowledgement)).all() == []
        answered = client.post("/inbox/ada@example.com/answer", data=form)
        assert answered.status_code == 303
        assert "acknowledged" in client.get("/inbox/ada@example.com").text
    session.expire_all()
    [ack] = session.scalars(select(Acknowledgement)).all()
    assert (ack.kind, ack.via, ack.counted) == ("ack", "web", True)


def test_inbox_does_not_exist_outside_the_demo(settings: Settings, runtime: Runtime) -> None:
    for url in start(settings, runtime, demo_inbox=False):
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/inbox").status_code == 404
            assert client.get("/inbox/ada@example.com").status_code == 404


def test_mrkdwn_preview_escapes_and_formats() -> None:
    html = mrkdwn_html("*bold* _it_ &lt;https://x.example|link&gt; <script>")
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert '<a href="https://x.example">link</a>' in html
    assert "<script>" not in html
