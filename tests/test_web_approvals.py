"""The approvals page over real HTTP, and the author hearing of the decision once, through
the real channels (the Slack stand-in and an aiosmtpd server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.access.api_tokens import create_token
from cadence.access.users import get_user
from cadence.bench.slack_standin import SlackStandIn
from cadence.bench.smtp_standin import SmtpStandIn
from cadence.config import Settings
from cadence.directory.audience import Audience, count_members
from cadence.messages import approvals
from cadence.messages.decisions import DECISION_PURPOSE, DECISION_TASK
from cadence.messages.planner import plan
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import Delivery, Message, Occurrence, Person
from cadence.worker import make_celery
from tests.test_browser import browser, page  # noqa: F401 (fixtures)
from tests.test_channels import TOKEN, Sender
from tests.test_dashboard import NOW, sign_in
from tests.test_web_manage import (
    COMMS,
    LEADER_A,
    LEADER_B,
    Site,
    queue_as,
    start_site,
    status_of,
)
from tests.web_helpers import browser_sign_in, form_csrf

B_TREE = Audience(trees=("lead.b@example.com",))


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
    """The worker's settings: real Slack and SMTP at the edge, the tests' database."""
    return settings.model_copy(
        update={
            "slack_bot_token": TOKEN,
            "slack_api_url": slack.base_url,
            "smtp_url": smtp.url,
            "email_from": "Comms Team <comms@example.com>",
            "base_url": "https://cadence.example.com",
            "slack_channel_gap_seconds": 0,
        }
    )


@pytest.fixture
def sender(wired: Settings) -> Iterator[Sender]:
    worker = Runtime(wired)
    yield Sender(worker)
    worker.engine.dispose()


@pytest.fixture
def site(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Site]:
    """The seeded organisation, with approval of leaders' messages turned on."""
    with start_site(settings, runtime, session) as running:
        with session_scope(runtime.sessions) as s:
            approvals.set_requires_approval(s, get_user(s, COMMS), True, NOW)
        yield running


def held(site: Site, title: str = "Quiet hours") -> int:
    message_id = queue_as(site, LEADER_B, title, B_TREE)
    assert status_of(site, message_id) == "awaiting_approval"
    return message_id


def decide(site: Site, client: object, message_id: int, verb: str, **data: str) -> object:
    shown = client.get("/dashboard/approvals").text  # type: ignore[attr-defined]
    action = f"/dashboard/approvals/{message_id}/{verb}"
    return client.post(  # type: ignore[attr-defined]
        action, data={"csrf": form_csrf(shown, action), **data}, headers={"Origin": site.url}
    )


# ---------------------------------------------------------------------------------------


def test_a_leader_can_neither_see_nor_decide_approvals(site: Site) -> None:
    message_id = held(site)
    with sign_in(site, LEADER_B) as client:  # type: ignore[arg-type]
        assert client.get("/dashboard/approvals").status_code == 404
        listed = client.get("/dashboard/messages").text
        assert 'href="/dashboard/approvals"' not in listed
        assert "Awaiting approval" in listed
        page = client.get(f"/dashboard/messages/{message_id}/cancel").text
        csrf = form_csrf(page, f"/dashboard/messages/{message_id}/cancel")
        for verb in ("approve", "reject"):
            refused = client.post(
                f"/dashboard/approvals/{message_id}/{verb}",
                data={"csrf": csrf, "reason": "mine"},
                headers={"Origin": site.url},
            )
            assert refused.status_code == 404
    with sign_in(site, LEADER_A) as client:  # type: ignore[arg-type]
        assert client.get("/dashboard/approvals").status_code == 404
    assert status_of(site, message_id) == "awaiting_approval"
    assert site.tasks == []


def test_comms_sees_what_waits_and_approving_makes_it_active_and_planned(site: Site) -> None:
    message_id = held(site)
    with site.runtime.sessions() as session:
        head_count = count_members(session, B_TREE)
    assert head_count == 3
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        page = client.get("/dashboard/approvals")
        assert page.status_code == 200
        html = page.text
        assert 'data-setting="on"' in html and "Approval of leaders' messages is on" in html
        assert "Quiet hours" in html and LEADER_B in html
        assert f'data-field="head_count">{head_count}<' in html
        # The preview is the message as its first recipient gets it, in both channels.
        assert "As bea@example.com would get it" in html
        assert html.count("Hello Bea, the queue closes at five.") == 2
        assert "{{" not in html and "<script" not in html.lower()
        assert 'for="reason-' in html

        done = decide(site, client, message_id, "approve")
        assert done.status_code == 303  # type: ignore[attr-defined]
        after = client.get(done.headers["location"]).text  # type: ignore[attr-defined]
        assert f"Message {message_id} approved" in after and "Nothing waits" in after
    assert site.tasks == [(DECISION_TASK, [message_id])]
    with site.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None and message.status == "active"
        assert message.approved_by_id == get_user(session, COMMS).id
    assert plan(site.runtime.sessions, NOW, timedelta(days=14), "UTC") > 0
    with site.runtime.sessions() as session:
        planned = session.scalar(
            select(func.count()).select_from(Occurrence).where(Occurrence.message_id == message_id)
        )
    assert planned and planned > 0
    with sign_in(site, LEADER_B) as client:  # type: ignore[arg-type]
        listed = client.get("/dashboard/messages").text
        assert f"Approved by {COMMS}" in listed
        shown = client.get(f"/dashboard/messages/{message_id}").text
        assert 'data-decision="approved"' in shown and COMMS in shown


def test_reject_needs_a_reason_and_the_leader_sees_it(site: Site) -> None:
    message_id = held(site)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        empty = decide(site, client, message_id, "reject", reason="   ")
        assert empty.status_code == 400  # type: ignore[attr-defined]
        html = empty.text  # type: ignore[attr-defined]
        assert f'id="reason-error-{message_id}"' in html and "a reason is required" in html
        assert f'href="#reason-{message_id}"' in html and 'aria-invalid="true"' in html
        long = decide(site, client, message_id, "reject", reason="x" * (approvals.MAX_REASON + 1))
        assert long.status_code == 400  # type: ignore[attr-defined]
        assert "longer than 2000 characters" in long.text  # type: ignore[attr-defined]
        page = client.get("/dashboard/approvals").text
        action = f"/dashboard/approvals/{message_id}/reject"
        foreign = client.post(
            action,
            data={"csrf": form_csrf(page, action), "reason": "From elsewhere"},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert status_of(site, message_id) == "awaiting_approval"
        assert site.tasks == []

        done = decide(site, client, message_id, "reject", reason="Say when the queue reopens.")
        assert done.status_code == 303  # type: ignore[attr-defined]
        # A second decision finds nothing waiting.
        late = client.post(
            f"/dashboard/approvals/{message_id}/approve",
            data={"csrf": form_csrf(page, f"/dashboard/approvals/{message_id}/approve")},
            headers={"Origin": site.url},
        )
        assert late.status_code == 409 and "not awaiting approval" in late.text
    assert status_of(site, message_id) == "cancelled"
    assert site.tasks == [(DECISION_TASK, [message_id])]
    with sign_in(site, LEADER_B) as client:  # type: ignore[arg-type]
        listed = client.get("/dashboard/messages").text
        assert f"Rejected by {COMMS}: Say when the queue reopens." in listed
        assert 'data-status="rejected">Rejected<' in listed
        rejected = client.get("/dashboard/messages", params={"status": "rejected"}).text
        assert "Quiet hours" in rejected and "Sales push" not in rejected
        shown = client.get(f"/dashboard/messages/{message_id}").text
        assert 'data-decision="rejected"' in shown and "Say when the queue reopens." in shown


def test_a_decision_through_the_api_tells_the_author_too(site: Site) -> None:
    approved, rejected = held(site), held(site, "Refund limits")
    with session_scope(site.runtime.sessions) as s:
        _, token = create_token(s, get_user(s, COMMS), "review", NOW)
    with site.client() as client:
        auth = {"Authorization": f"Bearer {token}"}
        ok = client.post(f"/api/approvals/{approved}/approve", headers=auth)
        no = client.post(f"/api/approvals/{rejected}/reject", headers=auth, json={"reason": "No."})
    assert ok.status_code == 200 and no.status_code == 200, (ok.text, no.text)
    assert site.tasks == [(DECISION_TASK, [approved]), (DECISION_TASK, [rejected])]


def run_decision_task(wired: Settings, message_id: int) -> dict[str, object]:
    """The worker's task, run in this process as the worker would run it."""
    assert wired.redis_url is not None
    app = make_celery(wired, wired.redis_url)
    result: dict[str, object] = app.tasks[DECISION_TASK].apply(args=[message_id]).get()
    return result


def decisions_of(session: Session, message_id: int) -> list[Delivery]:
    session.expire_all()
    return list(
        session.scalars(
            select(Delivery)
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(Occurrence.message_id == message_id, Occurrence.purpose == DECISION_PURPOSE)
        )
    )


def test_the_author_hears_of_an_approval_once_by_slack(
    site: Site, wired: Settings, sender: Sender, slack: SlackStandIn, session: Session
) -> None:
    with session_scope(site.runtime.sessions) as s:
        lead = s.scalar(select(Person).where(Person.email == "lead.b@example.com"))
        assert lead is not None
        lead.slack_user_id, lead.channel = "U0LEADB", "slack"
    message_id = held(site)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        assert decide(site, client, message_id, "approve").status_code == 303  # type: ignore[attr-defined]
    [(_, args)] = site.tasks
    first = run_decision_task(wired, *args)
    second = run_decision_task(wired, *args)  # a task run twice, or a double click
    assert first["via"] == "slack" and first["to"] == "lead.b@example.com"
    assert second["reason"] == "already told"
    for _ in range(2):
        sender.send(sender.dispatch(NOW), NOW)
    posts = [p for p in slack.requests("chat.postMessage") if p.params.get("channel") == "U0LEADB"]
    assert len(posts) == 1
    blocks = json.dumps(posts[0].params["blocks"])
    assert "approved your message" in blocks and "Quiet hours" in blocks
    assert "cadence_ack" not in blocks  # information only: nothing to acknowledge
    [delivery] = decisions_of(session, message_id)
    assert delivery.status == "sent"


def test_the_author_hears_of_a_rejection_once_by_email(
    site: Site, wired: Settings, sender: Sender, smtp: SmtpStandIn, session: Session
) -> None:
    with session_scope(site.runtime.sessions) as s:
        lead = s.scalar(select(Person).where(Person.email == "lead.b@example.com"))
        assert lead is not None
        lead.channel = "email"
    message_id = held(site)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        done = decide(site, client, message_id, "reject", reason="Name the <b>new</b> hours.")
        assert done.status_code == 303  # type: ignore[attr-defined]
    for _ in range(2):
        run_decision_task(wired, message_id)
        sender.send(sender.dispatch(NOW), NOW)
    mails = [m for m in smtp.messages if "lead.b@example.com" in m.rcpt_tos]
    assert len(mails) == 1
    [mail] = mails
    assert mail.subject == "Not approved: Quiet hours"
    text = mail.body()
    assert "did not approve your message" in text and "Name the <b>new</b> hours." in text
    assert f"/dashboard/messages/{message_id}" in text
    assert "<b>new</b>" not in mail.body(("html",))  # the reason is text, never markup
    [delivery] = decisions_of(session, message_id)
    assert delivery.status == "sent" and delivery.channel == "email"


# ---------------------------------------------------------------------------------------
# In a browser (JavaScript off: these pages are plain HTML forms)


def test_comms_approves_a_leaders_message_in_the_browser(
    page: Page,  # noqa: F811
    site: Site,
) -> None:
    message_id = held(site)
    other = queue_as(
        site,
        LEADER_B,
        "Refund limits",
        B_TREE,
        body="Refunds up to **50 EUR** need no sign-off.\n\n- Say yes first\n- Log it after",
    )
    browser_sign_in(page, site.url, COMMS)
    page.get_by_role("link", name="Approvals").click()
    page.wait_for_url(f"{site.url}/dashboard/approvals")
    panel = page.locator(f'section[data-message="{message_id}"]')
    assert panel.get_by_text("Hello Bea, the queue closes at five.").count() == 2
    # Rejecting without a reason is refused next to the field, and nothing changes.
    page.click(f"#reject-{other}")
    error = page.locator(f"#reason-error-{other}")
    assert "a reason is required" in error.inner_text()
    assert page.get_by_role("alert").first.is_visible()
    page.screenshot(path="/tmp/approvals.png", full_page=True)
    assert status_of(site, other) == "awaiting_approval"

    page.click(f"#approve-{message_id}")
    page.wait_for_url(f"**/dashboard/approvals?done=approved&id={message_id}")
    assert page.get_by_role("status").first.inner_text().startswith(f"Message {message_id}")
    assert page.locator(f'section[data-message="{message_id}"]').count() == 0
    assert status_of(site, message_id) == "active"

    page.fill(f"#reason-{other}", "Say who signs off above 50 EUR.")
    page.click(f"#reject-{other}")
    page.wait_for_url(f"**/dashboard/approvals?done=rejected&id={other}")
    assert status_of(site, other) == "cancelled"
    assert site.tasks == [(DECISION_TASK, [message_id]), (DECISION_TASK, [other])]

    page.get_by_role("link", name="Messages").click()
    row = page.locator(f'tr[data-message="{message_id}"]')
    assert row.locator('[data-status="active"]').is_visible()
    page.screenshot(path="/tmp/messages.png", full_page=True)

    page.get_by_role("link", name="Quiet hours", exact=True).click()
    assert (
        "Approved by comms@example.com" in page.locator('[data-decision="approved"]').inner_text()
    )
    page.get_by_role("navigation", name="Manage this message").get_by_role(
        "link", name="Pause"
    ).click()
    assert page.locator('[data-count="planned"]').is_visible()
    page.screenshot(path="/tmp/messages-pause.png", full_page=True)
    page.click("text=Pause the message")
    page.wait_for_url(f"**/dashboard/messages?done=paused&id={message_id}")
    assert status_of(site, message_id) == "paused"
    page.goto(f"{site.url}/dashboard/messages/{message_id}")
    page.screenshot(path="/tmp/messages-page.png")

    page.goto(f"{site.url}/dashboard/messages/{site.org.everyone_id}/cancel")
    assert page.locator("h1").inner_text().startswith("Cancel")
    page.screenshot(path="/tmp/messages-cancel.png", full_page=True)
    page.goto(f"{site.url}/dashboard/messages/{site.org.everyone_id}/edit")
    page.fill("#title", "")
    page.click("text=Save changes")
    assert "Title is empty" in page.locator("#title-error").inner_text()
    page.screenshot(path="/tmp/messages-edit.png", full_page=True)


def test_the_leader_sees_the_rejection_on_their_pages(
    page: Page,  # noqa: F811
    site: Site,
) -> None:
    message_id = held(site)
    with session_scope(site.runtime.sessions) as s:
        approvals.reject(s, message_id, get_user(s, COMMS), NOW, "Say when the queue reopens.")
    browser_sign_in(page, site.url, LEADER_B)
    assert page.get_by_role("link", name="Approvals").count() == 0
    page.get_by_role("link", name="Messages").click()
    assert (
        "Rejected by comms@example.com"
        in page.locator(f'tr[data-message="{message_id}"]').inner_text()
    )
    page.get_by_role("link", name="Quiet hours", exact=True).click()
    banner = page.locator('[data-decision="rejected"]')
    assert "Say when the queue reopens." in banner.inner_text()
    page.screenshot(path="/tmp/messages-rejected.png", full_page=True)
