"""What the dashboard pages' tests share: a form's CSRF field as the page carries it, a
browser tab with JavaScript on that fails the test on any script error or policy
violation, and signing in through the form in a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from tests.test_dashboard import PASSWORD


def form_csrf(html: str, action: str) -> str:
    """The CSRF field of the page's form that posts to `action` (not the sign-out form's)."""
    field = r'\s*<input type="hidden" name="csrf" value="([0-9a-f]+)"'
    found = re.search(rf'action="{re.escape(action)}"[^>]*>{field}', html)
    assert found, f"no form posting to {action}"
    return found.group(1)


@pytest.fixture
def scripted_page(browser: Browser) -> Iterator[Page]:
    """A tab with JavaScript on, for the composers' live previews."""
    context = browser.new_context(java_script_enabled=True, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(message.text)

    opened.on("console", watch)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert problems == [], f"a script failed or broke the page's policy: {problems}"


def browser_sign_in(page: Page, base_url: str, email: str, path: str = "/dashboard") -> None:
    """Open `path` signed out, sign in through the form it leads to, and be back on it."""
    page.goto(f"{base_url}{path}")
    assert "/login" in page.url
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{path}")


@pytest.fixture
def axe_page(browser: Browser) -> Iterator[Page]:
    """A tab for the accessibility check. Its Content-Security-Policy is bypassed only so
    that the check can inject axe-core; each page's policy is tested on its own."""
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()
