"""Comms administration over real HTTP against a live server: adding users who can then
sign in, disabling and enabling them, resetting passwords, the approval setting, and the
comms user's own API tokens working against the JSON API until revoked. Leaders get 404,
cross-site posts are refused, and bad input is shown next to its field with nothing stored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.access import users
from cadence.access.api_tokens import create_token
from cadence.config import Settings
from cadence.errors import InputError
from cadence.messages.approvals import requires_approval
from cadence.runtime import Runtime
from cadence.store.models import ApiToken, User
from tests.accessibility import assert_accessible
from tests.test_browser import browser  # noqa: F401  (headless Chromium)
from tests.test_dashboard import PASSWORD, Live, start
from tests.test_dashboard import sign_in as signed_in
from tests.web_helpers import axe_page, browser_sign_in, form_csrf  # noqa: F401 (a fixture)

ADMIN = "/dashboard/admin"
SCREENSHOT = Path("/tmp/admin.png")
NEW_PASSWORD = "a brand new long passphrase"


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        yield running


def post(client: httpx.Client, live: Live, page: str, action: str, **data: str) -> httpx.Response:
    """Post the form on `page` that goes to `action`, as a browser on our site would."""
    return client.post(
        action, data={"csrf": form_csrf(page, action), **data}, headers={"Origin": live.url}
    )


def can_sign_in(live: Live, email: str, password: str) -> bool:
    with live.client() as client:
        form = client.get("/login")
        done = client.post(
            "/login",
            data={"email": email, "password": password, "csrf": form_csrf(form.text, "/login")},
            headers={"Origin": live.url},
        )
    return done.status_code == 303


def secret_on(html: str) -> str:
    found = re.search(r'id="secret-value" type="text" readonly value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def count_users(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def test_add_a_leader_then_sign_in_as_them(live: Live, session: Session) -> None:
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        assert page.status_code == 200, page.text
        assert "b.boss@example.com" in page.text and "the tree of lead.b@example.com" in page.text
        added = post(
            client,
            live,
            page.text,
            f"{ADMIN}/users",
            email="Bea@Example.com",
            role="leader",
            person="",
            password=NEW_PASSWORD,
        )
        assert added.status_code == 303, added.text
        shown = client.get(added.headers["location"])
        assert "Added bea@example.com: they can sign in now." in shown.text
        assert "the tree of bea@example.com" in shown.text
    assert can_sign_in(live, "bea@example.com", NEW_PASSWORD)
    user = session.scalars(select(User).where(User.email == "bea@example.com")).one()
    assert user.role == "leader" and user.person is not None
    assert user.person.email == "bea@example.com"


def test_a_comms_user_with_a_temporary_password(live: Live) -> None:
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        made = post(
            client,
            live,
            page.text,
            f"{ADMIN}/users",
            email="second.comms@example.com",
            role="comms",
        )
        assert made.status_code == 200, made.text
        temporary = secret_on(made.text)
        assert len(temporary) >= users.MIN_PASSWORD_LENGTH
        # Shown once: the admin page does not show it again.
        assert temporary not in client.get(ADMIN).text
    assert can_sign_in(live, "second.comms@example.com", temporary)


def test_bad_input_shows_each_problem_by_its_field_and_stores_nothing(
    live: Live, session: Session
) -> None:
    before = count_users(session)
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        refused = post(
            client,
            live,
            page.text,
            f"{ADMIN}/users",
            email="not an email",
            role="leader",
            person="nobody@example.com",
            password="short",
        )
        again = post(
            client,
            live,
            page.text,
            f"{ADMIN}/users",
            email="comms@example.com",
            role="owner",
            password=NEW_PASSWORD,
        )
        token = post(client, live, page.text, f"{ADMIN}/tokens", name="   ")
    assert refused.status_code == 400
    html = refused.text
    assert "3 problems: nothing was saved." in html
    assert re.search(r'id="add-email-error">Invalid email', html)
    assert re.search(r"id=\"add-person-error\">No person &#39;nobody@example.com&#39;", html)
    assert re.search(r'id="add-password-error">The password must be at least 12', html)
    assert 'aria-describedby="add-email-error"' in html
    assert 'value="nobody@example.com"' in html  # kept for correcting, the password is not
    assert 'value="short"' not in html
    assert re.search(
        r"id=\"add-email-error\">A user &#39;comms@example.com&#39; already", again.text
    )
    assert re.search(r"id=\"add-role-error\">Unknown role &#39;owner&#39;", again.text)
    assert token.status_code == 400
    assert re.search(r'id="token-name-error">The token name is empty', token.text)
    assert count_users(session) == before
    assert session.scalars(select(ApiToken)).all() == []


def test_disabling_blocks_sign_in_after_a_confirmation(live: Live) -> None:
    with signed_in(live, "b.boss@example.com") as leader:
        assert leader.get("/dashboard").status_code == 200
        with signed_in(live, "comms@example.com") as client:
            page = client.get(ADMIN)
            ask = post(
                client, live, page.text, f"{ADMIN}/users/disable", email="b.boss@example.com"
            )
            assert ask.status_code == 200
            assert "Disable b.boss@example.com?" in ask.text
            assert "signed out of every browser" in ask.text
            assert can_sign_in(live, "b.boss@example.com", PASSWORD)  # not yet
            done = post(
                client,
                live,
                ask.text,
                f"{ADMIN}/users/disable",
                email="b.boss@example.com",
                confirmed="yes",
            )
            assert done.status_code == 303
            assert "Disabled b.boss@example.com" in client.get(done.headers["location"]).text
            assert not can_sign_in(live, "b.boss@example.com", PASSWORD)
            # Their open session ends too.
            assert leader.get("/dashboard").status_code == 303

            page = client.get(ADMIN)
            enabled = post(
                client, live, page.text, f"{ADMIN}/users/enable", email="b.boss@example.com"
            )
            assert enabled.status_code == 303
    assert can_sign_in(live, "b.boss@example.com", PASSWORD)


def test_a_comms_user_cannot_disable_themselves(live: Live, session: Session) -> None:
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        assert 'aria-label="Disable comms@example.com"' not in page.text
        refused = post(client, live, page.text, f"{ADMIN}/users/disable", email="comms@example.com")
        forced = post(
            client,
            live,
            page.text,
            f"{ADMIN}/users/disable",
            email="comms@example.com",
            confirmed="yes",
        )
    for answer in (refused, forced):
        assert answer.status_code == 400
        assert "Not disabled: you cannot disable yourself" in answer.text
    assert can_sign_in(live, "comms@example.com", PASSWORD)


def test_the_last_active_comms_user_stays(session: Session) -> None:
    now = datetime(2026, 3, 12, tzinfo=UTC)
    only = users.create_user(session, "only@example.com", "comms", PASSWORD, now)
    other = users.create_user(session, "other@example.com", "comms", PASSWORD, now)
    users.set_active(session, only, "other@example.com", False)
    with pytest.raises(InputError, match="last active comms user"):
        users.set_active(session, other, "only@example.com", False)


def test_reset_password_temporary_or_chosen(live: Live) -> None:
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        form = post(client, live, page.text, f"{ADMIN}/users/password", email="lead.a@example.com")
        assert form.status_code == 200
        assert "Reset the password of lead.a@example.com" in form.text
        short = post(
            client,
            live,
            form.text,
            f"{ADMIN}/users/password",
            email="lead.a@example.com",
            confirmed="yes",
            password="too short",
        )
        assert short.status_code == 400
        assert re.search(r'id="password-error">The password must be at least 12', short.text)
        assert can_sign_in(live, "lead.a@example.com", PASSWORD)

        chosen = post(
            client,
            live,
            form.text,
            f"{ADMIN}/users/password",
            email="lead.a@example.com",
            confirmed="yes",
            password=NEW_PASSWORD,
        )
        assert chosen.status_code == 303
        assert not can_sign_in(live, "lead.a@example.com", PASSWORD)
        assert can_sign_in(live, "lead.a@example.com", NEW_PASSWORD)

        temporary = post(
            client,
            live,
            form.text,
            f"{ADMIN}/users/password",
            email="lead.a@example.com",
            confirmed="yes",
        )
        assert temporary.status_code == 200
        password = secret_on(temporary.text)
    assert not can_sign_in(live, "lead.a@example.com", NEW_PASSWORD)
    assert can_sign_in(live, "lead.a@example.com", password)


def test_the_approval_toggle(live: Live, session: Session) -> None:
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        assert 'data-figure="approval">off' in page.text
        on = post(client, live, page.text, f"{ADMIN}/approval", require="on")
        assert on.status_code == 303
        session.expire_all()
        assert requires_approval(session)
        page = client.get(on.headers["location"])
        assert 'data-figure="approval">on' in page.text
        assert "now wait for a comms user" in page.text
        off = post(client, live, page.text, f"{ADMIN}/approval", require="off")
        assert off.status_code == 303
    session.expire_all()
    assert not requires_approval(session)


def test_a_token_made_here_works_against_the_api_until_revoked(live: Live) -> None:
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        made = post(client, live, page.text, f"{ADMIN}/tokens", name="intranet script")
        assert made.status_code == 200, made.text
        token = secret_on(made.text)
        assert token.startswith("cad_")
        with httpx.Client(base_url=live.url, timeout=20) as api:
            bearer = {"Authorization": f"Bearer {token}"}
            assert api.get("/api/messages", headers=bearer).status_code == 200
            page = client.get(ADMIN)
            assert "intranet script" in page.text and token not in page.text
            token_id = re.search(r'name="token_id" value="(\d+)"', page.text)
            assert token_id
            ask = post(
                client, live, page.text, f"{ADMIN}/tokens/revoke", token_id=token_id.group(1)
            )
            assert "Revoke the token \u201cintranet script\u201d?" in ask.text
            assert api.get("/api/messages", headers=bearer).status_code == 200
            done = post(
                client,
                live,
                ask.text,
                f"{ADMIN}/tokens/revoke",
                token_id=token_id.group(1),
                confirmed="yes",
            )
            assert done.status_code == 303
            assert api.get("/api/messages", headers=bearer).status_code == 401
            assert "revoked" in client.get(done.headers["location"]).text


def test_only_ones_own_tokens_can_be_revoked(live: Live, session: Session) -> None:
    now = datetime(2026, 3, 12, tzinfo=UTC)
    leader = session.scalars(select(User).where(User.email == "b.boss@example.com")).one()
    comms = session.scalars(select(User).where(User.email == "comms@example.com")).one()
    theirs, _ = create_token(session, leader, "theirs", now)
    create_token(session, comms, "mine", now)
    session.commit()
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        assert "mine" in page.text and "theirs" not in page.text
        refused = post(
            client,
            live,
            page.text,
            f"{ADMIN}/tokens/revoke",
            token_id=str(theirs.id),
            confirmed="yes",
        )
    assert refused.status_code == 404
    session.refresh(theirs)
    assert not theirs.revoked


@pytest.mark.parametrize(
    "path",
    [
        f"{ADMIN}/users",
        f"{ADMIN}/users/disable",
        f"{ADMIN}/users/enable",
        f"{ADMIN}/users/password",
        f"{ADMIN}/approval",
        f"{ADMIN}/tokens",
        f"{ADMIN}/tokens/revoke",
    ],
)
def test_leaders_get_404_everywhere(live: Live, path: str, session: Session) -> None:
    with signed_in(live, "b.boss@example.com") as client:
        page = client.get(ADMIN)
        dashboard = client.get("/dashboard").text
        answer = client.post(
            path,
            data={"csrf": form_csrf(dashboard, "/logout"), "email": "comms@example.com",
                  "require": "on", "name": "x", "token_id": "1", "confirmed": "yes"},
            headers={"Origin": live.url},
        )  # fmt: skip
    assert page.status_code == 404 and answer.status_code == 404
    assert 'href="/dashboard/admin"' not in dashboard
    assert not requires_approval(session)
    assert session.scalars(select(ApiToken)).all() == []


def test_cross_site_posts_are_refused(live: Live, session: Session) -> None:
    before = count_users(session)
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN)
        for action, data in (
            (f"{ADMIN}/users", {"email": "x@example.com", "role": "comms"}),
            (f"{ADMIN}/approval", {"require": "on"}),
            (f"{ADMIN}/tokens", {"name": "stolen"}),
        ):
            csrf = form_csrf(page.text, action)
            foreign = client.post(
                action, data={"csrf": csrf, **data}, headers={"Origin": "https://evil.example"}
            )
            sibling = client.post(
                action, data={"csrf": csrf, **data}, headers={"Sec-Fetch-Site": "same-site"}
            )
            forged = client.post(action, data={"csrf": "0" * 64, **data})
            assert (foreign.status_code, sibling.status_code, forged.status_code) == (403,) * 3
    assert count_users(session) == before
    assert not requires_approval(session)
    assert session.scalars(select(ApiToken)).all() == []


def test_admin_needs_a_sign_in(live: Live) -> None:
    with live.client() as client:
        page = client.get(ADMIN)
        added = client.post(f"{ADMIN}/users", data={"email": "x@example.com"})
    assert page.status_code == 303 and added.status_code == 303


def test_administration_in_a_browser_without_javascript(
    browser: Browser,  # noqa: F811
    live: Live,
) -> None:
    """Adding a user through the form in Chromium with JavaScript off: a mistake is shown
    by its field, then the corrected form adds them with a temporary password."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    try:
        browser_sign_in(page, live.url, "comms@example.com")
        page.goto(f"{live.url}{ADMIN}")
        page.fill("#token-name", "intranet calendar")
        page.get_by_role("button", name="Create token").click()
        assert page.locator("#secret-value").input_value().startswith("cad_")
        page.fill("#add-email", "bea@example.com")
        page.fill("#add-person", "nobody@example.com")
        page.get_by_role("button", name="Add user").click()
        assert "No person" in page.inner_text("#add-person-error")
        assert page.get_attribute("#add-person", "aria-invalid") == "true"
        page.fill("#add-person", "")
        page.get_by_role("button", name="Add user").click()
        temporary = page.locator("#secret-value").input_value()
        assert len(temporary) >= users.MIN_PASSWORD_LENGTH
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert page.locator("script").count() == 0
    finally:
        context.close()
    assert can_sign_in(live, "bea@example.com", temporary)


def test_a_crafted_notice_link_cannot_choose_the_words(live: Live) -> None:
    with signed_in(live, "comms@example.com") as client:
        page = client.get(ADMIN, params={"done": "added", "who": "Call 555-0100 to"})
        real = client.get(ADMIN, params={"done": "disabled", "who": "lead.a@example.com"})
    assert "555-0100" not in page.text and "Added the user" in page.text
    assert "Disabled lead.a@example.com" in real.text


def test_the_administration_pages_are_accessible(
    axe_page: Page,  # noqa: F811 (a fixture)
    live: Live,
) -> None:
    """The page, its problems shown by their fields, a confirmation, and the password form."""
    page = axe_page
    browser_sign_in(page, live.url, "comms@example.com")
    page.goto(f"{live.url}{ADMIN}")
    assert_accessible(page)
    page.fill("#add-email", "bad")
    page.fill("#add-password", "short")
    page.get_by_role("button", name="Add user").click()
    assert_accessible(page)
    page.get_by_role("button", name="Disable lead.a@example.com").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Disable lead.a@example.com?"
    assert_accessible(page)
    page.goto(f"{live.url}{ADMIN}")
    page.get_by_role("button", name="Reset password of lead.a@example.com").click()
    page.fill("#password-value", "short")
    page.get_by_role("button", name="Reset the password").click()
    assert "at least 12" in page.inner_text("#password-error")
    assert_accessible(page)
