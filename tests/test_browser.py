"""The dashboard in a real browser (Debian's chromium, driven by Playwright), with
JavaScript switched off: every page must work as plain HTML, forms and inline SVG.

These tests never skip. Without chromium at /usr/bin/chromium they fail and say how to
install it, so a CI image missing it cannot pass silently.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.runtime import Runtime
from cadence.store.models import Message
from tests.test_dashboard import Live, start
from tests.test_message_page import plan_weeks
from tests.web_helpers import browser_sign_in

CHROMIUM = os.environ.get("CADENCE_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = Path("/tmp/dashboard.png")
MESSAGE_SCREENSHOT = Path("/tmp/dashboard-message.png")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"browser tests need chromium at {CHROMIUM}: install it with "
            "`apt-get install -y chromium chromium-driver` (or set CADENCE_TEST_CHROMIUM)",
            pytrace=False,
        )
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    """The seeded organisation of tests/test_dashboard.py, served on a real socket."""
    with start(settings, runtime, session) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        java_script_enabled=False,
        accept_downloads=True,
        viewport={"width": 1280, "height": 900},
    )
    opened = context.new_page()
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    opened.on("console", watch)
    yield opened
    context.close()
    assert problems == [], "the page broke its own Content-Security-Policy"


def sign_in(page: Page, live: Live, email: str) -> None:
    browser_sign_in(page, live.url, email)


def figure(page: Page, key: str) -> str:
    return page.inner_text(f'[data-figure="{key}"]').strip()


def test_sign_in_and_read_the_overview(page: Page, live: Live) -> None:
    sign_in(page, live, "comms@example.com")
    assert page.title() == "Overview · Cadence"
    assert figure(page, "sent") == "19"
    assert figure(page, "reach") == "100%"
    chart = page.locator(".chart svg").first
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 100
    assert page.locator(".chart svg rect.rect").count() >= 4  # two bars per message
    assert page.locator("script").count() == 0
    assert page.get_by_role("link", name="Own the outcome").first.is_visible()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_a_filter_changes_the_figures(page: Page, live: Live) -> None:
    sign_in(page, live, "comms@example.com")
    assert figure(page, "sent") == "19"
    page.select_option("select[name=channel]", "slack")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**channel=slack**")
    assert figure(page, "sent") == "2"
    assert figure(page, "ack_rate") == "100%"
    page.fill("input[name=since]", "2026-03-09")
    page.select_option("select[name=channel]", "")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**since=2026-03-09**")
    assert figure(page, "sent") == "9"  # the second week: seven people, and the launch
    page.click("text=Clear")
    assert figure(page, "sent") == "19"


def test_the_csv_link_downloads_a_csv_file(page: Page, live: Live, tmp_path: Path) -> None:
    sign_in(page, live, "comms@example.com")
    with page.expect_download() as info:
        page.locator("#messages a.csv").click()
    download = info.value
    assert download.suggested_filename == "cadence-overview-messages.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert {r["title"] for r in rows} == {"Own the outcome", "Sales push", "Same-day refunds"}
    assert all(r["sent"].isdigit() for r in rows)


def test_a_leader_cannot_see_another_leaders_tree(page: Page, live: Live) -> None:
    sign_in(page, live, "lead.a@example.com")
    assert figure(page, "sent") == "8"
    assert page.get_by_text("Sales push").count() == 0
    response = page.goto(f"{live.url}/dashboard/messages/{live.org.sales_id}")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert page.get_by_text("Sales push").count() == 0
    page.goto(f"{live.url}/dashboard/teams")
    assert page.get_by_text("Support/EMEA").count() > 0
    assert page.get_by_text("bea@example.com").count() == 0


def test_signing_out_ends_the_session(page: Page, live: Live) -> None:
    sign_in(page, live, "comms@example.com")
    page.click("text=Sign out")
    page.wait_for_url("**/login?signed_out=1")
    assert page.get_by_text("You have signed out.").is_visible()
    page.goto(f"{live.url}/dashboard")
    assert "/login" in page.url


def test_a_message_page_shows_what_was_sent_before_what_is_planned(
    page: Page, live: Live, session: Session
) -> None:
    everyone = session.get(Message, live.org.everyone_id)
    assert everyone is not None
    plan_weeks(session, everyone, 2, 80)  # far more planned turns than a table shows
    session.commit()
    sign_in(page, live, "comms@example.com")
    page.goto(f"{live.url}/dashboard/messages/{live.org.everyone_id}")
    sent = page.locator("#occurrences tbody tr")
    assert [sent.nth(i).locator("td").first.inner_text() for i in range(sent.count())] == [
        "2",
        "1",
    ]
    assert "dispatched" in sent.first.inner_text()
    upcoming = page.locator("#upcoming tbody tr")
    assert [upcoming.nth(i).locator("td").nth(0).inner_text() for i in range(3)] == [
        "Asia/Tokyo",
        "UTC",
        "America/New_York",
    ]
    assert upcoming.count() == 3
    assert all(
        upcoming.nth(i).locator("td").nth(2).inner_text() == "Mon 16 Mar 2026, 09:00"
        for i in range(3)
    )
    sent_box, upcoming_box = (
        page.locator(f"#{name}").bounding_box() for name in ("occurrences", "upcoming")
    )
    assert sent_box is not None and upcoming_box is not None
    assert sent_box["y"] < upcoming_box["y"]  # the story so far reads first
    assert figure(page, "next_send").startswith("Next send: Mon 16 Mar 2026, 09:00 in Asia/Tokyo")
    assert page.locator(".chart svg").count() >= 3  # the curve, the trend, times received
    assert page.locator("script").count() == 0
    page.screenshot(path=str(MESSAGE_SCREENSHOT), full_page=True)
    assert MESSAGE_SCREENSHOT.stat().st_size > 10_000
