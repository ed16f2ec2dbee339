"""Composing a launch in the dashboard, over real HTTP and in a real browser.

The organisation is tests/test_dashboard.py's (head -> lead A's and lead B's teams), served
with its clock stopped at Thursday 12 March 2026, 12:00 UTC. A launch that cannot reach
everyone before customers hear is refused with the very lines `cadence launch add` prints,
and the composer offers the earliest customer time that works.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import time_machine
from playwright.sync_api import Page
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.messages import approvals
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import Launch, Message, User
from tests.accessibility import assert_accessible
from tests.conftest import CliResult
from tests.test_browser import browser  # noqa: F401 (a fixture)
from tests.test_dashboard import NOW, Live, seed, sign_in, start
from tests.web_helpers import axe_page, browser_sign_in, scripted_page  # noqa: F401 (a fixture)

PATH = "/dashboard/compose/launch"
SCREENSHOT = Path("/tmp/launch-compose.png")
TIMELINE_SCREENSHOT = Path("/tmp/launch-compose-timeline.png")
FIXED_SCREENSHOT = Path("/tmp/launch-compose-fixed.png")
TOO_SOON = "2026-03-13T12:00"  # tomorrow: a working day for each tier is not there
IN_TIME = "2026-03-20T12:00"


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        yield running


def form_csrf(page: str) -> str:
    """The composer's CSRF field (the header's sign-out form has its own)."""
    found = re.search(r'id="launch-form".*?name="csrf" value="([0-9a-f]+)"', page, re.S)
    assert found, page
    return found.group(1)


def launch_form(csrf: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf": csrf,
        "title": "New prices",
        "body": "Prices change on **Friday**.",
        "customer_copy": "Our new prices start on Friday.",
        "talking_points": "Why: costs went up.",
        "faq": "Q: Old orders? A: Old prices.",
        "trees": ["head@example.com"],
        "customer_at": IN_TIME,
        "tz": "UTC",
        "lead": "24",
        "leader_lead": "",
        "margin": "60",
        "channels": ["log"],
    }
    data.update(changes)
    return data


def post(client: httpx.Client, live: Live, path: str = PATH, **changes: Any) -> httpx.Response:
    page = client.get(PATH)
    assert page.status_code == 200, page.text
    return client.post(
        path, data=launch_form(form_csrf(page.text), **changes), headers={"Origin": live.url}
    )


def launches(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Launch)) or 0)


def error_of(page: str, field: str) -> list[str]:
    """The problems shown under a field (its `-error` paragraphs)."""
    found = re.findall(rf'id="launch-{field}-error(?:-\d+)?">([^<]*)<', page)
    return [html.unescape(line) for line in found]


def cli_refusal(cli: Any, when: str) -> list[str]:
    """What `cadence launch add` prints for the same launch at the same moment."""
    with time_machine.travel(NOW, tick=False):
        result: CliResult = cli(
            "launch", "add", "--title", "New prices", "--body", "Prices change.",
            "--customer-copy", "New prices.", "--customer-at", when, "--tz", "UTC",
            "--tree", "head@example.com", "--channel", "log",
        )  # fmt: skip
    assert result.code == 2, result
    lines = result.err.removeprefix("error: ").strip().splitlines()
    return [line.strip() for line in lines]


# ---------------------------------------------------------------------------------------


def test_the_composer_needs_a_sign_in(live: Live) -> None:
    with live.client() as client:
        page = client.get(PATH)
        posted = client.post(PATH, data={"title": "x"})
        preview = client.post(f"{PATH}/preview", data={"title": "x"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert posted.status_code == 303
    assert posted.headers["location"] == "/login?next=%2Fdashboard%2Fcompose%2Flaunch"
    assert preview.status_code == 401 and "Sign in again" in preview.text


def test_a_comms_user_creates_a_launch(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        page = client.get(PATH)
        assert page.status_code == 200
        assert 'src="/static/launch.js"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'id="launch-everyone"' in page.text  # comms may address everyone
        done = post(client, live)
        assert done.status_code == 303, done.text
        target = done.headers["location"]
        assert re.fullmatch(r"/dashboard/launches/\d+", target)
        shown = client.get(target)
    assert shown.status_code == 200 and "New prices" in shown.text
    message_id = int(target.rsplit("/", 1)[1])
    with live.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None and message.status == "active"
        launch = session.scalar(select(Launch).where(Launch.message_id == message_id))
        assert launch is not None
        author = session.get(User, message.created_by_id)
        assert author is not None and author.email == "comms@example.com"
        assert message.channels == ["log"]
        assert message.audience["trees"] == ["head@example.com"]
        assert launch.customer_copy == "Our new prices start on Friday."
        assert launch.talking_points == "Why: costs went up."
        assert launch.lead_hours == 24 and launch.margin_minutes == 60
        assert launch.leader_lead_hours is None
        assert launch.customer_at.replace(tzinfo=None).isoformat(timespec="minutes") == IN_TIME


def test_too_close_to_customers_shows_the_cli_refusal_and_stores_nothing(
    live: Live, cli: Any
) -> None:
    expected = cli_refusal(cli, TOO_SOON)
    assert expected[0] == "launch refused: staff would not all have it before customers"
    assert any(line.startswith("earliest customer time that works: ") for line in expected)
    before = launches(live.runtime)
    with sign_in(live, "comms@example.com") as client:
        refused = post(client, live, customer_at=TOO_SOON)
        assert refused.status_code == 400
        page = html.unescape(refused.text)
        # Every line, as the CLI prints it: next to the customer time and in the panel.
        for line in expected:
            assert page.count(f"<li>{line}</li>") == 2, line
        assert 'id="launch-problems"' in page and 'role="alert"' in page
        assert "Customer time: launch refused" in page
        earliest = re.search(r'data-use-customer-at="([^"]+)"', page)
        assert earliest, page
        assert "The earliest customer time that works" in page
        assert "<svg" in page and 'class="send late"' in page
        # "Use it" without JavaScript: the check page with that time fills it in.
        fixed = post(client, live, f"{PATH}/check", customer_at=TOO_SOON,
                     use_customer_at=earliest.group(1))  # fmt: skip
        assert fixed.status_code == 200
        assert f'name="customer_at" value="{earliest.group(1)}"' in fixed.text
        assert 'data-verdict="ok"' in fixed.text and "launch refused" not in fixed.text
        assert launches(live.runtime) == before
        done = post(client, live, customer_at=earliest.group(1))
    assert done.status_code == 303, done.text
    assert launches(live.runtime) == before + 1


def test_the_preview_answers_the_panel_alone(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        refused = post(client, live, f"{PATH}/preview", customer_at=TOO_SOON, title="")
        fine = post(client, live, f"{PATH}/preview")
        blocked = post(client, live, f"{PATH}/preview", customer_at="")
        pristine = post(client, live, f"{PATH}/preview", customer_at="", trees=[])
    assert refused.status_code == 200
    assert "<html" not in refused.text and "launch refused" in refused.text
    assert "<svg" in refused.text and "data-use-customer-at" in refused.text
    assert 'data-verdict="ok"' in fine.text
    assert "7 people in 3 tiers" in fine.text
    assert "To check the timeline" in blocked.text
    assert "Customer time: give the time customers hear of it" in html.unescape(blocked.text)
    assert "checked as soon as the launch has an audience" in pristine.text


def test_the_earliest_time_is_given_in_the_customer_zone(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        panel = post(client, live, f"{PATH}/preview", tz="America/New_York",
                     customer_at="2026-03-13T08:00")  # fmt: skip
        assert "it waits for them" not in client.get(PATH).text
    text = html.unescape(panel.text)
    line = re.search(r"earliest customer time that works: (\S+)</li>", text)
    offered = re.search(r'data-use-customer-at="([^"]+)"', text)
    assert line and offered, text
    in_new_york = datetime.fromisoformat(line.group(1)).astimezone(ZoneInfo("America/New_York"))
    assert offered.group(1) == in_new_york.strftime("%Y-%m-%dT%H:%M")
    assert "America/New_York" in text


def test_every_problem_is_shown_next_to_its_field_and_nothing_is_stored(live: Live) -> None:
    before = launches(live.runtime)
    with sign_in(live, "comms@example.com") as client:
        refused = post(
            client,
            live,
            title="",
            body="Hello {{ name",
            customer_copy="  ",
            trees=[],
            people="nobody@example.com",
            channels=[],
            customer_at="2026-03-01T09:00",
            lead="abc",
            leader_lead="-1",
            margin="60",
        )
        bad_zone = post(client, live, tz="Mars/Olympus")
        bad_time = post(client, live, customer_at="next friday", margin="nan")
        too_long = post(client, live, lead="1e8", margin="1e9")
    assert refused.status_code == 400
    page = refused.text
    assert error_of(page, "title") == ["title is empty"]
    assert error_of(page, "body") and error_of(page, "body")[0].startswith("body")
    assert error_of(page, "customer-copy") == ["customer copy is empty"]
    assert error_of(page, "audience") == ["unknown person 'nobody@example.com'"]
    assert error_of(page, "channels") == ["choose at least one channel"]
    assert error_of(page, "lead") == ["lead 'abc' is not a number"]
    assert error_of(page, "customer-at") == [
        "the customer time 2026-03-01T09:00:00+00:00 has already passed"
    ]
    assert error_of(page, "leader-lead") == [
        "--leader-lead must be positive (or left out for one working day)"
    ]
    assert page.count('aria-invalid="true"') == 6  # and two fieldsets
    assert 'aria-describedby="launch-title-error"' in page
    assert "8 problems: nothing was stored" in page
    assert error_of(bad_zone.text, "tz")[0].startswith("unknown time zone 'Mars/Olympus'")
    assert error_of(bad_time.text, "customer-at") == [
        "customer time 'next friday' is not a date and time: YYYY-MM-DDTHH:MM"
    ]
    assert error_of(bad_time.text, "margin") == [
        "--lead, --leader-lead and --margin must be finite numbers"
    ]
    assert error_of(too_long.text, "lead") == ["--lead must be at most 8784 hours (a year)"]
    assert error_of(too_long.text, "margin") == ["--margin must be at most 527040 minutes (a year)"]
    assert launches(live.runtime) == before
    # The typed text comes back as it was sent.
    assert "Hello {{ name" in html.unescape(page)


def test_a_lead_past_a_year_is_refused_on_the_command_line_too(cli: Any, session: Session) -> None:
    seed(session)
    result = cli(
        "launch", "add", "--title", "T", "--body", "B", "--customer-copy", "C",
        "--customer-at", "2030-01-01T09:00", "--tz", "UTC", "--everyone", "--lead", "1e8",
    )  # fmt: skip
    assert result.code == 2
    assert "--lead must be at most 8784 hours (a year)" in result.err


def test_a_past_customer_time_is_the_customer_times_problem(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        refused = post(client, live, customer_at="2026-03-01T09:00")
    assert refused.status_code == 400
    assert error_of(refused.text, "customer-at") == [
        "the customer time 2026-03-01T09:00:00+00:00 has already passed"
    ]


def test_a_leader_targets_only_their_tree(live: Live) -> None:
    before = launches(live.runtime)
    with sign_in(live, "b.boss@example.com") as client:
        page = client.get(PATH).text
        assert 'id="launch-everyone"' not in page
        assert 'value="Sales"' in page and 'value="Support"' not in page
        assert 'value="lead.b@example.com"' in page
        assert 'value="head@example.com"' not in page and 'value="lead.a@example.com"' not in page
        person = post(client, live, trees=[], people="ann@example.com, bea@example.com")
        tree = post(client, live, trees=["lead.a@example.com"])
        everyone = post(client, live, trees=[], everyone="1")
        team = post(client, live, trees=[], teams=["Support"])
        preview = post(client, live, f"{PATH}/preview", trees=[], people="ann@example.com")
    assert person.status_code == 400
    assert error_of(person.text, "audience") == ["person ann@example.com: not in your tree"]
    assert error_of(tree.text, "audience") == ["tree of lead.a@example.com: not in your tree"]
    assert error_of(everyone.text, "audience") == ["everyone: not in your tree"]
    assert error_of(team.text, "audience") == ["team 'Support': not in your tree"]
    assert "not in your tree" in preview.text and "<svg" not in preview.text
    assert launches(live.runtime) == before


def test_a_leaders_launch_waits_for_approval_when_comms_require_it(live: Live) -> None:
    with session_scope(live.runtime.sessions) as session:
        comms = session.scalar(select(User).where(User.email == "comms@example.com"))
        assert comms is not None
        approvals.set_requires_approval(session, comms, True, NOW)
    with sign_in(live, "b.boss@example.com") as client:
        assert "it waits for them" in client.get(PATH).text
        done = post(client, live, trees=[], teams=["Sales"])
        assert done.status_code == 303, done.text
        shown = client.get(done.headers["location"])
    assert shown.status_code == 200
    message_id = int(done.headers["location"].rsplit("/", 1)[1])
    with live.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        assert message.status == "awaiting_approval"
        assert message.audience["teams"] == ["Sales"]


def test_cross_site_posts_are_refused(live: Live) -> None:
    before = launches(live.runtime)
    with sign_in(live, "comms@example.com") as client:
        page = client.get(PATH)
        data = launch_form(form_csrf(page.text))
        foreign = client.post(PATH, data=data, headers={"Origin": "https://evil.example"})
        fetched = client.post(PATH, data=data, headers={"Sec-Fetch-Site": "cross-site"})
        forged = client.post(PATH, data={**data, "csrf": "0" * 64}, headers={"Origin": live.url})
        wrong_purpose = client.post(
            f"{PATH}/preview", data=data, headers={"Origin": "https://evil.example"}
        )
    assert foreign.status_code == 403 and "not sent from Cadence" in foreign.text
    assert fetched.status_code == 403
    assert forged.status_code == 403
    assert wrong_purpose.status_code == 403 and "<svg" not in wrong_purpose.text
    assert launches(live.runtime) == before


# ---------------------------------------------------------------------------------------
# In a browser, with the composer's script


def test_the_timeline_is_checked_as_you_type_and_use_it_fixes_it(
    scripted_page: Page,  # noqa: F811 (the fixture)
    live: Live,
) -> None:
    page = scripted_page
    browser_sign_in(page, live.url, "comms@example.com", PATH)
    page.fill("#launch-title", "New prices")
    page.fill("#launch-body", "Prices change on **Friday**.")
    page.fill("#launch-customer-copy", "Our new prices start on Friday.")
    page.get_by_label("Head (head@example.com)").check()
    page.uncheck("#launch-channel-slack")
    page.uncheck("#launch-channel-email")
    page.check("#launch-channel-log")
    page.fill("#launch-customer-at", TOO_SOON)

    refused = page.locator("#launch-timeline [data-verdict=refused]")
    refused.wait_for()
    assert "launch refused: staff would not all have it before customers" in refused.inner_text()
    earliest = page.locator("#launch-timeline [data-earliest]")
    value = earliest.get_attribute("data-earliest")
    assert value and value > TOO_SOON
    assert page.locator("#launch-timeline svg rect.send.late").count() >= 1
    assert page.url == f"{live.url}{PATH}"  # nothing reloaded: the check ran in place

    page.get_by_role("button", name="Use it").click()
    page.locator("#launch-timeline [data-verdict=ok]").wait_for()
    assert page.input_value("#launch-customer-at") == value
    assert page.locator("#launch-timeline svg rect.send.late").count() == 0
    chart = page.locator("#launch-timeline svg").bounding_box()
    assert chart is not None and chart["width"] > 900
    page.locator(".timeline-panel").screenshot(path=str(FIXED_SCREENSHOT))

    page.fill("#launch-customer-at", TOO_SOON)
    refused.wait_for()
    page.locator("#launch-timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.locator(".timeline-panel").screenshot(path=str(TIMELINE_SCREENSHOT))
    page.get_by_role("button", name="Use it").click()
    page.locator("#launch-timeline [data-verdict=ok]").wait_for()
    page.get_by_role("button", name="Create launch").click()
    page.wait_for_url(re.compile(r".*/dashboard/launches/\d+$"))
    assert "New prices" in page.content()


@pytest.mark.parametrize("who", ["comms@example.com", "b.boss@example.com"])
def test_the_composer_is_accessible_as_written_refused_and_with_problems(
    axe_page: Page,  # noqa: F811 (a fixture)
    live: Live,
    who: str,
) -> None:
    page = axe_page
    browser_sign_in(page, live.url, who, PATH)
    assert_accessible(page)
    page.locator("#launch-trees-label + .picker input").first.check()
    page.fill("#launch-customer-at", TOO_SOON)
    page.locator("#launch-timeline [data-verdict=refused]").wait_for()
    assert_accessible(page)
    page.fill("#launch-people", "nobody@example.com")
    page.get_by_role("button", name="Create launch").click()
    page.locator("#launch-problems").wait_for()
    assert_accessible(page)
