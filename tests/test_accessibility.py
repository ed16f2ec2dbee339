"""Every dashboard page, as a comms user and as a leader sees it, passes axe-core's WCAG 2.1
A/AA rules and best practices in headless Chromium; so do the sign-in page and a problem page.

New pages join by adding their path to PAGES; a path may name the seeded organisation's ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from cadence.access.users import get_user
from cadence.answers.tokens import make_ack_token
from cadence.directory.audience import Audience
from cadence.messages.approvals import set_requires_approval, submit
from cadence.messages.core import CadenceSpec, CoreMessageSpec, add_core_message, pause
from cadence.messages.drafts import save_draft
from cadence.store.db import session_scope
from cadence.store.models import Delivery, Occurrence
from tests.accessibility import assert_accessible
from tests.test_browser import browser, live, sign_in  # noqa: F401  (fixtures)
from tests.test_dashboard import NOW, Live

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
    ("/dashboard/launches/{launch_id}/edit", "comms@example.com"),
    ("/dashboard/messages/999999", "comms@example.com"),
    ("/dashboard/compose", "comms@example.com"),
    ("/dashboard/compose", "lead.a@example.com"),
    ("/dashboard/my-team", "lead.a@example.com"),
    ("/dashboard/my-team", "comms@example.com"),
    ("/dashboard/my-team?leader=lead.b@example.com", "comms@example.com"),
    ("/dashboard/compose/launch", "comms@example.com"),
    ("/dashboard/compose/launch", "lead.a@example.com"),
    ("/dashboard/messages", "comms@example.com"),
    ("/dashboard/messages", "lead.a@example.com"),
    ("/dashboard/messages/{sales_id}/edit", "comms@example.com"),
    ("/dashboard/messages/{sales_id}/pause", "comms@example.com"),
    ("/dashboard/messages/{sales_id}/cancel", "comms@example.com"),
    ("/dashboard/approvals", "comms@example.com"),
    ("/dashboard/calendar", "comms@example.com"),
    ("/dashboard/calendar?view=month", "lead.a@example.com"),
    ("/dashboard/admin", "comms@example.com"),
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


def test_the_acknowledgement_pages_are_accessible(checked: Page, live: Live) -> None:  # noqa: F811
    """What staff see from an email link: the confirm page, then the thank-you page."""
    arno = live.org.people["a2"]
    with session_scope(live.runtime.sessions) as session:
        delivery_id = session.scalar(
            select(Delivery.id)
            .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
            .where(Delivery.person_id == arno.id, Occurrence.message_id == live.org.everyone_id)
            .order_by(Delivery.id)
        )
    assert delivery_id is not None
    token = make_ack_token(live.settings.secret_key.get_secret_value(), delivery_id, arno.id)
    checked.goto(f"{live.url}/ack/{token}")
    assert_accessible(checked)
    checked.get_by_role("button", name="Got it").click()
    checked.wait_for_load_state()
    assert checked.get_by_role("heading", level=1).inner_text() == "Thanks, recorded"
    assert_accessible(checked)


def test_pages_with_a_message_waiting_for_approval_are_accessible(
    checked: Page,
    live: Live,  # noqa: F811
) -> None:
    """The approvals page with something to decide, and the author's view of it waiting."""
    with session_scope(live.runtime.sessions) as session:
        comms = get_user(session, "comms@example.com")
        set_requires_approval(session, comms, True, NOW)
        spec = CoreMessageSpec(
            title="Queue closes at five",
            body="Hello {{ person.first_name }}, the queue closes at **five**.",
            audience=Audience(trees=("lead.a@example.com",)),
            channels=["email"],
            cadence=CadenceSpec(rrule="FREQ=WEEKLY;BYDAY=MO", start=datetime(2026, 3, 16, 9, 0)),
        )
        held = submit(
            session,
            add_core_message(session, spec, NOW),
            get_user(session, "lead.a@example.com"),
            NOW,
        )
        held_id = held.id
    sign_in(checked, live, "comms@example.com")
    checked.goto(f"{live.url}/dashboard/approvals")
    panel = checked.locator(f'section[data-message="{held_id}"]')
    assert "Repeats weekly on Monday, at 09:00 in each recipient's own zone" in panel.inner_text()
    assert_accessible(checked)
    checked.context.clear_cookies()
    sign_in(checked, live, "lead.a@example.com")
    for path in ("/dashboard/messages", f"/dashboard/messages/{held_id}"):
        checked.goto(live.url + path)
        assert "Queue closes at five" in checked.content()
        assert_accessible(checked)


def test_a_paused_message_and_a_reopened_draft_are_accessible(
    checked: Page,
    live: Live,  # noqa: F811
) -> None:
    """The resume confirmation of a paused message, and the compose page holding a draft."""
    with session_scope(live.runtime.sessions) as session:
        pause(session, live.org.sales_id, NOW)
        spec = CoreMessageSpec(
            title="Draft: the queue closes at five",
            body="Hello {{ person.first_name }}, the queue closes at **five**.",
            audience=Audience(trees=("lead.a@example.com",)),
            channels=["email"],
            cadence=CadenceSpec(rrule="FREQ=WEEKLY;BYDAY=MO", start=datetime(2026, 3, 16, 9, 0)),
        )
        author = get_user(session, "lead.a@example.com")
        draft_id = save_draft(session, spec, author, NOW, None).id
    sign_in(checked, live, "comms@example.com")
    checked.goto(f"{live.url}/dashboard/messages/{live.org.sales_id}/resume")
    assert checked.get_by_role("button", name="Resume").count() >= 1
    assert_accessible(checked)
    checked.context.clear_cookies()
    sign_in(checked, live, "lead.a@example.com")
    checked.goto(f"{live.url}/dashboard/compose/{draft_id}")
    assert checked.input_value("#title") == "Draft: the queue closes at five"
    assert_accessible(checked)
