"""What every dashboard form shares, whichever page it is on: its CSRF field checked
without ever failing, and a post made while signed out coming back to its page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.runtime import Runtime
from tests.test_dashboard import PASSWORD, Live, csrf_of, sign_in, start


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        yield running


def test_a_csrf_field_that_is_not_ascii_is_refused_not_a_failure(live: Live) -> None:
    """A hostile form's CSRF field in any characters is a form not from our pages (403),
    on sign-in and on every page's form alike, never a server error."""
    odd = ["\u00e9" * 64, "\u2603", "caf\u00e9" + "0" * 60]
    with live.client() as client:
        client.get("/login")
        for csrf in odd:
            data = {"email": "comms@example.com", "password": PASSWORD, "csrf": csrf}
            refused = client.post("/login", data=data, headers={"Origin": live.url})
            assert refused.status_code == 403, refused.text
    with sign_in(live, "comms@example.com") as client:
        client.get("/dashboard")
        for path in ("/logout", "/dashboard/calendar/feed", "/dashboard/admin/approval"):
            for csrf in odd:
                refused = client.post(path, data={"csrf": csrf}, headers={"Origin": live.url})
                assert refused.status_code == 403, (path, refused.text)
        assert client.get("/dashboard").status_code == 200  # still signed in


def test_a_form_posted_signed_out_comes_back_to_its_page_after_sign_in(live: Live) -> None:
    """A form's own path only takes posts: signing in after a signed-out post opens the
    page the form was on (our own Referer), never the post's path (405); from anywhere
    else, the dashboard."""
    with live.client() as client:
        page = f"{live.url}/dashboard/calendar?view=month"
        posts = {
            "ours": {"Referer": page},
            "elsewhere": {"Referer": "https://evil.example/dashboard/calendar"},
            "odd port": {"Referer": "http://127.0.0.1:notaport/dashboard"},
            "off the dashboard": {"Referer": f"{live.url}/api/messages"},
            "none": {},
        }
        nexts = {
            name: client.post("/dashboard/calendar/feed", data={"csrf": "x"}, headers=h)
            for name, h in posts.items()
        }
        assert {name: r.headers["location"] for name, r in nexts.items()} == {
            "ours": "/login?next=%2Fdashboard%2Fcalendar%3Fview%3Dmonth",
            "elsewhere": "/login?next=%2Fdashboard",
            "odd port": "/login?next=%2Fdashboard",
            "off the dashboard": "/login?next=%2Fdashboard",
            "none": "/login?next=%2Fdashboard",
        }
        form = client.get("/login?next=%2Fdashboard%2Fcalendar%3Fview%3Dmonth")
        signed_in = {"email": "comms@example.com", "password": PASSWORD}
        done = client.post(
            "/login",
            data={
                **signed_in,
                "csrf": csrf_of(form.text),
                "next": "/dashboard/calendar?view=month",
            },
            headers={"Origin": live.url},
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/dashboard/calendar?view=month"
        assert client.get(done.headers["location"]).status_code == 200
