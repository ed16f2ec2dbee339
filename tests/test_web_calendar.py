"""The calendar page over real HTTP against a live server: the week and month views show what
is still to be sent (per message and zone) and when customers hear of each launch, a team
filter narrows them, a leader sees only what lies in their tree, and a personal feed link
works with the API's `.ics` feed until it is revoked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access.api_tokens import FEED_TOKEN_NAME
from cadence.config import Settings
from cadence.runtime import Runtime
from cadence.store.models import ApiToken, Person, Team
from tests import factories as f
from tests.accessibility import assert_accessible
from tests.test_browser import browser  # noqa: F401  (headless Chromium)
from tests.test_dashboard import Live, sign_in, start
from tests.web_helpers import axe_page, browser_sign_in, form_csrf  # noqa: F401 (a fixture)

WEEK_SCREENSHOT = Path("/tmp/calendar-week.png")
MONTH_SCREENSHOT = Path("/tmp/calendar-month.png")

# NOW in tests.test_dashboard is Thursday 12 March 2026, 12:00 UTC. "Own the outcome" goes to
# everyone and "Sales push" to lead B's tree, both on Mondays at 09:00 in each recipient's
# zone; customers hear of "Same-day refunds" on Friday 13 March at 12:00 UTC.


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        # Someone in Sales in New York, so the weekly sends go out in two zones.
        sales = session.scalars(select(Team).where(Team.path == "Sales")).one()
        lead_b = session.scalars(select(Person).where(Person.email == "lead.b@example.com")).one()
        f.person(
            session, "nia@example.com", timezone="America/New_York", team=sales, manager=lead_b
        )
        session.commit()
        yield running


def day_cell(html: str, day: str) -> str:
    found = re.search(rf'data-day="{day}">(.*?)</td>', html, re.S)
    assert found, f"no {day} on the page"
    return found.group(1)


def test_the_week_shows_upcoming_sends_per_zone_and_the_customer_time(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        this_week = client.get("/dashboard/calendar")
        assert this_week.status_code == 200, this_week.text
        html = this_week.text
        assert "9\u201315 March 2026" in html
        assert "Times are in UTC" in html
        # Monday's sends are past; Friday has the launch's customer time, linked to its page.
        assert "Own the outcome" not in day_cell(html, "2026-03-09")
        friday = day_cell(html, "2026-03-13")
        assert "Customers hear: Same-day refunds" in friday
        assert f'href="/dashboard/launches/{live.org.launch_id}"' in friday
        assert "12:00" in friday

        next_link = re.search(r'href="([^"]+)">Next week', html)
        assert next_link, html
        following = client.get(next_link.group(1).replace("&amp;", "&"))
        assert following.status_code == 200
        monday = day_cell(following.text, "2026-03-16")
        assert f'href="/dashboard/messages/{live.org.everyone_id}"' in monday
        assert f'href="/dashboard/messages/{live.org.sales_id}"' in monday
        # 09:00 in New York is 13:00 UTC: shown in the organisation's zone, with the local time.
        assert "09:00</span> Own the outcome" in monday
        assert "13:00</span> Own the outcome" in monday
        assert "at 09:00 in America/New_York" in monday
        assert "to 7 people in UTC" in monday


def test_the_month_shows_every_monday_and_the_launch(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        page = client.get("/dashboard/calendar", params={"view": "month", "start": "2026-03-20"})
        assert page.status_code == 200, page.text
        html = page.text
        assert "<h1>March 2026</h1>" in html
        for monday in ("2026-03-16", "2026-03-23", "2026-03-30"):
            assert "Own the outcome" in day_cell(html, monday), monday
        assert "Same-day refunds" in day_cell(html, "2026-03-13")
        # The grid runs Monday to Sunday over whole weeks: 23 Feb to 5 April.
        assert 'data-day="2026-02-23"' in html and 'data-day="2026-04-05"' in html
        assert 'href="/dashboard/calendar?view=month&amp;start=2026-04-01"' in html
        assert 'href="/dashboard/calendar?view=month&amp;start=2026-02-01"' in html


def test_the_team_filter_keeps_messages_reaching_that_team(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        emea = client.get(
            "/dashboard/calendar", params={"start": "2026-03-16", "team": "Support/EMEA"}
        ).text
        sales = client.get("/dashboard/calendar", params={"start": "2026-03-16", "team": "Sales"})
        unknown = client.get("/dashboard/calendar", params={"team": "Nowhere", "view": "year"})
    monday = day_cell(emea, "2026-03-16")
    assert "Own the outcome" in monday and "Sales push" not in monday
    assert '<option value="Support/EMEA" selected>' in emea
    assert "Sales push" in day_cell(sales.text, "2026-03-16")
    assert unknown.status_code == 200
    assert "No team &#39;Nowhere&#39; to show" in unknown.text
    assert "There is no &#39;year&#39; view" in unknown.text


def test_a_leader_sees_only_what_lies_in_their_tree(live: Live) -> None:
    with sign_in(live, "b.boss@example.com") as client:
        html = client.get(
            "/dashboard/calendar", params={"view": "month", "start": "2026-03-01"}
        ).text
        options = re.findall(r'<option value="([^"]+)"', html)
    assert "Sales push" in day_cell(html, "2026-03-16")
    # Sent to everyone, so not a definition a leader of one tree may read.
    assert "Own the outcome" not in html
    assert "Same-day refunds" not in html
    assert options == ["Sales"]
    with sign_in(live, "lead.a@example.com") as client:
        html = client.get("/dashboard/calendar", params={"view": "month"}).text
    assert "Sales push" not in html and "Own the outcome" not in html
    assert 'data-figure="entries">0 entries' in html


def test_a_message_sent_every_few_minutes_is_one_entry_a_day(live: Live, session: Session) -> None:
    """144 sends a day make a week of 1008, past what one answer holds: every day still
    shows its sends, as one entry, and the weekly messages beside them."""
    f.core_message(
        session,
        title="Queue check",
        rrule="FREQ=MINUTELY;INTERVAL=10",
        start=datetime(2026, 3, 12, 0, 0),
        timezone="UTC",
    )
    session.commit()
    with sign_in(live, "comms@example.com") as client:
        html = client.get("/dashboard/calendar", params={"start": "2026-03-16"}).text
    for day in ("2026-03-16", "2026-03-19", "2026-03-22"):
        cell = day_cell(html, day)
        assert cell.count("Queue check") == 1, day
        assert "00:00&ndash;23:50</span> Queue check" in cell
        assert "144 sends" in cell
    assert "Own the outcome" in day_cell(html, "2026-03-16")


def test_a_feed_link_works_with_the_ics_feed_until_it_is_revoked(
    live: Live, session: Session
) -> None:
    with sign_in(live, "b.boss@example.com") as client:
        page = client.get("/dashboard/calendar")
        assert "Create my calendar feed link" in page.text
        made = client.post(
            "/dashboard/calendar/feed",
            data={"csrf": form_csrf(page.text, "/dashboard/calendar/feed")},
            headers={"Origin": live.url},
        )
        assert made.status_code == 200, made.text
        url = re.search(r'id="feed-url" type="text" readonly value="([^"]+)"', made.text)
        assert url, made.text
        feed_url = url.group(1).replace("&amp;", "&")
        assert feed_url.startswith(f"{live.url}/api/calendar.ics?token=cad_")
        assert "Google Calendar" in made.text

        with httpx.Client(timeout=20) as app:
            feed = app.get(feed_url)
            assert feed.status_code == 200, feed.text
            assert feed.headers["content-type"].startswith("text/calendar")
            assert "SUMMARY:Send: Sales push" in feed.text
            assert "Own the outcome" not in feed.text
            # A link passed on reads the calendar and nothing else of the API.
            token = feed_url.split("token=")[1].split("&")[0]
            for path in ("/api/messages", "/api/calendar", f"/api/messages?token={token}"):
                refused = app.get(live.url + path, headers={"Authorization": f"Bearer {token}"})
                assert refused.status_code == 401, (path, refused.text)
                assert "calendar feed token" in refused.json()["detail"]

            # The page remembers there is a link, without showing it again.
            again = client.get("/dashboard/calendar")
            assert "You have a calendar feed link" in again.text
            assert feed_url.split("token=")[1].split("&")[0] not in again.text
            revoked = client.post(
                "/dashboard/calendar/feed/revoke",
                data={"csrf": form_csrf(again.text, "/dashboard/calendar/feed/revoke")},
                headers={"Origin": live.url},
            )
            assert revoked.status_code == 303
            after = client.get(revoked.headers["location"])
            assert "no longer works" in after.text
            assert "Create my calendar feed link" in after.text
            assert app.get(feed_url).status_code == 401
    tokens = session.scalars(select(ApiToken).where(ApiToken.name == FEED_TOKEN_NAME)).all()
    assert [t.revoked for t in tokens] == [True]


def test_a_new_feed_link_replaces_the_old_one(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        urls = []
        for _ in range(2):
            page = client.get("/dashboard/calendar")
            made = client.post(
                "/dashboard/calendar/feed",
                data={"csrf": form_csrf(page.text, "/dashboard/calendar/feed")},
                headers={"Origin": live.url},
            )
            found = re.search(r'id="feed-url" type="text" readonly value="([^"]+)"', made.text)
            assert found
            urls.append(found.group(1).replace("&amp;", "&"))
    with httpx.Client(timeout=20) as app:
        assert app.get(urls[0]).status_code == 401
        assert app.get(urls[1]).status_code == 200


def test_cross_site_feed_posts_are_refused(live: Live, session: Session) -> None:
    with sign_in(live, "comms@example.com") as client:
        page = client.get("/dashboard/calendar")
        refused = client.post(
            "/dashboard/calendar/feed",
            data={"csrf": form_csrf(page.text, "/dashboard/calendar/feed")},
            headers={"Origin": "https://evil.example"},
        )
        forged = client.post("/dashboard/calendar/feed", data={"csrf": "0" * 64})
    assert refused.status_code == 403 and forged.status_code == 403
    assert session.scalars(select(ApiToken)).all() == []


def test_the_calendar_needs_a_sign_in(live: Live) -> None:
    with live.client() as client:
        page = client.get("/dashboard/calendar")
        post = client.post("/dashboard/calendar/feed", data={"csrf": "x"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert post.status_code == 303


def test_the_calendar_in_a_browser_without_javascript(
    browser: Browser,  # noqa: F811
    live: Live,
) -> None:
    """Week and month in Chromium with JavaScript off, moved between by their links."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    try:
        browser_sign_in(page, live.url, "comms@example.com")
        page.goto(f"{live.url}/dashboard/calendar")
        page.get_by_role("link", name="Next week \u2192").click()
        assert page.get_by_role("heading", level=1).inner_text() == "16\u201322 March 2026"
        assert page.locator('td[data-day="2026-03-16"] li').count() == 4  # two messages, two zones
        page.screenshot(path=str(WEEK_SCREENSHOT), full_page=True)
        page.get_by_role("link", name="Month", exact=True).click()
        assert page.get_by_role("heading", level=1).inner_text() == "March 2026"
        page.select_option("#calendar-team", "Sales")
        page.get_by_role("button", name="Show").click()
        assert "team=Sales" in page.url
        page.get_by_role("button", name="Create my calendar feed link").click()
        assert page.locator("#feed-url").input_value().startswith(f"{live.url}/api/calendar.ics")
        page.goto(f"{live.url}/dashboard/calendar?view=month&start=2026-03-01")
        page.screenshot(path=str(MONTH_SCREENSHOT), full_page=True)
        assert page.locator("script").count() == 0
    finally:
        context.close()


@pytest.mark.parametrize(
    ("query", "who"),
    [
        ("view=week&start=2026-03-16", "comms@example.com"),
        ("view=month&start=2026-03-01&team=Sales", "comms@example.com"),
        ("view=month&team=Nowhere", "b.boss@example.com"),
    ],
)
def test_the_calendar_is_accessible(
    axe_page: Page,  # noqa: F811 (a fixture)
    live: Live,
    query: str,
    who: str,
) -> None:
    page = axe_page
    browser_sign_in(page, live.url, who)
    page.goto(f"{live.url}/dashboard/calendar?{query}")
    assert_accessible(page)
    page.get_by_role("button", name="Create my calendar feed link").click()
    assert_accessible(page)
