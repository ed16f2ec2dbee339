"""One message's whole journey through the web, in headless Chromium against a live server:
a comms user requires approval; a leader composes a weekly message for their team with two
wordings, watches the Slack, email and per-zone previews, and submits it; a leader of
another tree can neither see nor target it; the comms user approves it; the leader sees the
decision; it is on the calendar and in `cadence message list`; and a real Celery worker
sends it to the team, each person once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.delivery.dispatch import tick
from cadence.runtime import Runtime
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence, Person
from cadence.worker import enqueue_with, make_celery, policy_from
from tests.conftest import CliResult
from tests.test_browser import browser  # noqa: F401  (the module's chromium)
from tests.test_dashboard import PASSWORD, Live, sign_in, start

DAY_BEFORE = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
UTC_NINE = datetime(2026, 3, 16, 9, 1, tzinfo=UTC)  # just after Monday's 09:00 in UTC
NEW_YORK_NINE = datetime(2026, 3, 16, 13, 1, tzinfo=UTC)  # and 09:00 in New York (EDT)
EMEA = {"lead.a@example.com", "ann@example.com", "arno@example.com"}


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        yield running


def browser_page(browser: Browser, live: Live, email: str) -> Page:  # noqa: F811
    """A signed-in tab with JavaScript on, failing the test on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    setattr(page, "script_errors", errors)  # noqa: B010  (checked at the end)
    page.goto(f"{live.url}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/dashboard")
    return page


def deliveries_of(session: Session, message_id: int) -> list[Delivery]:
    session.expire_all()
    return list(
        session.scalars(
            select(Delivery)
            .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
            .where(Occurrence.message_id == message_id)
        )
    )


def sent_to(session: Session, message_id: int, expected: int, timeout: float = 30) -> set[str]:
    """Whom the message's deliveries went to, once `expected` are sent (the worker runs in
    another thread); fails naming the statuses if they never are."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries_of(session, message_id)
        done = [d for d in rows if d.status == DeliveryStatus.SENT.value]
        if len(done) >= expected and len(done) == len(rows):
            people = [session.get(Person, d.person_id) for d in done]
            emails = [p.email for p in people if p is not None]
            assert len(emails) == len(set(emails)), f"someone got it twice: {emails}"
            return set(emails)
        if time.monotonic() > deadline:
            raise AssertionError(f"not sent: {[(d.person_id, d.status) for d in rows]}")
        time.sleep(0.05)


def test_a_leaders_message_from_compose_to_sent(
    browser: Browser,  # noqa: F811
    live: Live,
    runtime: Runtime,
    settings: Settings,
    session: Session,
    cli: Callable[..., CliResult],
) -> None:
    # Ann reads in New York: the per-zone preview must show her zone's sends apart.
    ann = session.scalar(select(Person).where(Person.email == "ann@example.com"))
    assert ann is not None
    ann.timezone = "America/New_York"
    session.commit()

    comms = browser_page(browser, live, "comms@example.com")
    comms.get_by_role("link", name="Admin").click()
    comms.get_by_role("button", name="Require approval").click()
    expect(comms.locator('[data-figure="approval"]')).to_have_text("on")

    # The leader composes: team, two wordings, weekly on Mondays, the log channel.
    leader = browser_page(browser, live, "lead.a@example.com")
    leader.get_by_role("link", name="Compose").click()
    leader.fill("#title", "Fix the problem, not the ticket")
    leader.fill("#wording-0", "Hello {{ person.first_name }}: we fix the **problem**.")
    leader.fill("#wording-1", "{{ person.first_name }}, a closed ticket is not the goal.")
    leader.fill("#audience-search", "emea")
    leader.get_by_role("button", name="Add team Support/EMEA").click()
    expect(leader.locator("#headcount")).to_have_text("3 people will get it")
    for channel in ("slack", "email"):
        leader.uncheck(f"#channel-{channel}")
    leader.check("#channel-log")
    leader.check("#day-MO")
    leader.fill("#start", "2026-03-16")
    leader.fill("#at", "09:00")
    leader.select_option("#preview_person", "ann@example.com")
    expect(leader.locator('[data-preview="slack"]')).to_contain_text("Hello Ann: we fix the")
    expect(leader.locator('[data-preview="email"]')).to_contain_text("Hello Ann")
    sends = leader.locator('[data-preview="sends"]')
    expect(sends.locator('[data-zone="America/New_York"]')).to_be_visible()
    expect(sends.locator('[data-zone="UTC"]')).to_be_visible()
    expect(sends).to_contain_text("Mon 16 Mar 2026, 09:00")
    leader.select_option("#preview_wording", "1")
    expect(leader.locator('[data-preview="slack"]')).to_contain_text("Ann, a closed ticket")
    leader.click("#submit")
    leader.wait_for_url(re.compile(r".*/dashboard/messages/(\d+)\?done=awaiting$"))
    found = re.search(r"/dashboard/messages/(\d+)", leader.url)
    assert found is not None
    message_id = int(found[1])
    stored = session.get(Message, message_id)
    assert stored is not None and stored.status == "awaiting_approval"
    assert stored.body.startswith("Hello {{ person.first_name }}")
    assert [v.body[:33] for v in stored.variants] == ["{{ person.first_name }}, a closed"]

    # Lead B's tree is Sales: the message is not theirs to see, and EMEA is not theirs
    # to target.
    with sign_in(live, "b.boss@example.com") as other:
        assert other.get(f"/dashboard/messages/{message_id}").status_code == 404
        assert "Fix the problem" not in other.get("/dashboard/messages").text
        assert "Fix the problem" not in other.get("/dashboard/calendar?start=2026-03-16").text
        search = other.get("/dashboard/compose/search", params={"q": "emea"})
        assert "Support/EMEA" not in search.text and "ann@example.com" not in search.text

    # Comms approves it; the leader sees the decision.
    comms.get_by_role("link", name="Approvals").click()
    comms.locator(f'section[data-message="{message_id}"]').get_by_text("Hello Ann").first.wait_for()
    comms.click(f"#approve-{message_id}")
    comms.wait_for_url(f"**/dashboard/approvals?done=approved&id={message_id}")
    session.expire_all()
    assert session.get(Message, message_id).status == "active"  # type: ignore[union-attr]
    leader.goto(f"{live.url}/dashboard/messages/{message_id}")
    expect(leader.locator("body")).to_contain_text("Approved")

    # On the calendar, for the leader and for comms, linking to the message.
    for page in (leader, comms):
        page.goto(f"{live.url}/dashboard/calendar?view=week&start=2026-03-16")
        entry = page.locator('[data-day="2026-03-16"]').get_by_role(
            "link", name=re.compile("Fix the problem, not the ticket")
        )
        expect(entry.first).to_be_visible()
        assert entry.first.get_attribute("href") == f"/dashboard/messages/{message_id}"
    listed = cli("message", "list", "--format", "json")
    assert listed.code == 0, listed
    row = next(m for m in json.loads(listed.out) if m["id"] == message_id)
    assert (row["title"], row["status"]) == ("Fix the problem, not the ticket", "active")

    # A real worker sends Monday's repetition, once to each of the team, each at nine in
    # their own zone: London's at 09:00 UTC, New York's at 13:00 UTC.
    app: Celery = make_celery(settings, settings.redis_url or "")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        # Beat ticks all the time; the day before, a tick plans the sends ahead.
        tick(runtime.sessions, policy_from(settings), enqueue_with(app), DAY_BEFORE)
        assert deliveries_of(session, message_id) == []
        tick(runtime.sessions, policy_from(settings), enqueue_with(app), UTC_NINE)
        assert sent_to(session, message_id, 2) == EMEA - {"ann@example.com"}
        tick(runtime.sessions, policy_from(settings), enqueue_with(app), NEW_YORK_NINE)
        assert sent_to(session, message_id, 3) == EMEA
        tick(runtime.sessions, policy_from(settings), enqueue_with(app), NEW_YORK_NINE)
    assert sent_to(session, message_id, 3) == EMEA  # and nobody twice
    for d in deliveries_of(session, message_id):
        person = session.get(Person, d.person_id)
        assert person is not None and d.rendered is not None
        first = person.name.split()[0]
        wordings = (f"Hello {first}: we fix the **problem**.", f"{first}, a closed ticket")
        assert any(w in d.rendered for w in wordings), d.rendered
    for page in (leader, comms):
        assert getattr(page, "script_errors") == []  # noqa: B009
