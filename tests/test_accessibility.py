"""Every dashboard page, as a comms user and as a leader sees it, passes axe-core's WCAG 2.1
A/AA rules and best practices in headless Chromium; so do the sign-in page and a problem page.

New pages join by adding their path to PAGES; a path may name the seeded organisation's ids.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.accessibility import assert_accessible
from tests.test_browser import browser, live, sign_in  # noqa: F401  (fixtures)
from tests.test_dashboard import Live

# (path, who signs in); paths are formatted with the seeded Org's fields.
PAGES = [
    ("/dashboard", "comms@example.com"),
    ("/dashboard", "lead.a@example.com"),
    ("/dashboard/teams", "comms@example.com"),
    ("/dashboard/teams", "lead.a@example.com"),
    ("/dashboard/messages/{everyone_id}", "comms@example.com"),
    ("/dashboard/messages/{everyone_id}", "lead.a@example.com"),
    ("/dashboard/launches/{launch_id}", "comms@example.com"),
    ("/dashboard/launches/{launch_id}", "lead.a@example.com"),
    ("/dashboard/messages/999999", "comms@example.com"),
]


@pytest.fixture
def checked(browser: Browser) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_the_sign_in_page_is_accessible(checked: Page, live: Live) -> None:  # noqa: F811
    checked.goto(f"{live.url}/login")
    assert_accessible(checked)


@pytest.mark.parametrize(("path", "who"), PAGES)
def test_every_page_is_accessible(checked: Page, live: Live, path: str, who: str) -> None:  # noqa: F811
    sign_in(checked, live, who)
    url = live.url + path.format(**vars(live.org))
    checked.goto(url)
    assert checked.url == url
    assert_accessible(checked)
