"""Editing a launch from the dashboard, over real HTTP against a live server.

The page's count of corrections is checked against the corrections the save then really
writes; a customer time the timeline no longer fits is refused with `edit_launch`'s own
lines and stores nothing; only comms and the launch's author may edit it.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Page
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access.users import get_user
from cadence.config import Settings
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.launches.cascade import LaunchSpec, add_launch, context_from
from cadence.launches.changes import EditRefused, LaunchEdit, cancel_launch, edit_launch
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import Delivery, Launch, Message, Occurrence
from tests.accessibility import assert_accessible
from tests.test_browser import browser  # noqa: F401  (headless Chromium)
from tests.test_dashboard import NOW, sign_in
from tests.test_web_manage import COMMS, LEADER_B, Site, count, post_form, start_site
from tests.web_helpers import axe_page, browser_sign_in, form_csrf  # noqa: F401 (a fixture)


@pytest.fixture
def site(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Site]:
    with start_site(settings, runtime, session) as running:
        yield running


def edit_path(launch_id: int) -> str:
    return f"/dashboard/launches/{launch_id}/edit"


def form_of(launch_id: int, site: Site, **changes: str) -> dict[str, str]:
    """The edit form as the page fills it from the database, with `changes` typed in."""
    with site.runtime.sessions() as session:
        message = session.get(Message, launch_id)
        launch = session.scalar(select(Launch).where(Launch.message_id == launch_id))
        assert message is not None and launch is not None
        sent = {
            "title": message.title,
            "body": message.body,
            "customer_copy": launch.customer_copy,
            "talking_points": launch.talking_points or "",
            "faq": launch.faq or "",
            "customer_at": launch.customer_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
            "tz": launch.customer_zone,
        }
    return {**sent, **changes}


def state(site: Site, launch_id: int) -> tuple[Any, ...]:
    """Everything an edit could change, and the corrections written so far."""
    with site.runtime.sessions() as session:
        message = session.get(Message, launch_id)
        launch = session.scalar(select(Launch).where(Launch.message_id == launch_id))
        assert message is not None and launch is not None
        corrections = session.scalars(
            select(Delivery.payload)
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(Occurrence.message_id == launch_id, Occurrence.purpose == "correction")
        ).all()
        return (
            message.title,
            message.body,
            message.version,
            launch.customer_copy,
            launch.talking_points,
            launch.faq,
            launch.customer_at,
            launch.planned_from,
            len(corrections),
        )


def new_launch(site: Site, author: str | None = None) -> int:
    """A launch nobody has heard of yet, customers told in five days."""
    with session_scope(site.runtime.sessions) as session:
        message = add_launch(
            session,
            LaunchSpec(
                title="Weekend opening",
                body="The shop opens on Saturdays from April.",
                customer_copy="We are now open on Saturdays.",
                customer_at=datetime(2026, 3, 19, 12, 0, tzinfo=UTC),
                customer_zone="UTC",
                audience=Audience(everyone=True),
                channels=["log"],
            ),
            NOW,
            context_from(site.settings),
        )
        if author is not None:
            message.created_by_id = get_user(session, author).id
        return message.id


def test_editing_a_launch_nobody_was_told_of_sends_no_correction(site: Site) -> None:
    launch_id = new_launch(site)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        shown = client.get(edit_path(launch_id))
        assert shown.status_code == 200
        assert count(shown.text, "corrections") == 0
        assert "Nobody has been told yet" in shown.text
        done = post_form(
            client,
            site,
            edit_path(launch_id),
            form_of(
                launch_id,
                site,
                title="Saturday opening",
                talking_points="Rotas are out on Friday.",
                customer_at="2026-03-20T14:00",
                tz="Europe/Berlin",
            ),
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/dashboard/launches/{launch_id}?edited=0"
        banner = client.get(done.headers["location"]).text
        assert "Saved. Nobody had been told yet" in banner
        assert f'href="{edit_path(launch_id)}"' in banner  # the launch's page leads back
    title, _, version, _, points, faq, customer_at, _, corrections = state(site, launch_id)
    assert (title, version, points, faq, corrections) == (
        "Saturday opening",
        2,
        "Rotas are out on Friday.",
        None,  # left empty, so still none
        0,
    )
    assert customer_at == datetime(2026, 3, 20, 13, 0, tzinfo=UTC)


def test_the_corrections_counted_are_the_corrections_written(site: Site) -> None:
    launch_id = site.org.launch_id
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        shown = client.get(edit_path(launch_id)).text
        promised = count(shown, "corrections")
        assert promised == 2 and count(shown, "told") == 2
        assert "(ann@example.com, lead.a@example.com)" in shown
        # A browser sends a textarea's line ends as CRLF: an untouched field is unchanged.
        form = form_of(launch_id, site, body="Refunds under 80 EUR\r\nare approved at once.")
        done = post_form(client, site, edit_path(launch_id), form)
        assert done.status_code == 303
        assert "Saved. 2 corrections" in client.get(done.headers["location"]).text
    with site.runtime.sessions() as session:
        written = session.scalars(
            select(Delivery.payload)
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(Occurrence.message_id == launch_id, Occurrence.purpose == "correction")
        ).all()
    assert len(written) == promised and all(p == {"correction": 2} for p in written)
    assert state(site, launch_id)[1] == "Refunds under 80 EUR\nare approved at once."


def test_changing_only_talking_points_sends_no_correction(site: Site) -> None:
    launch_id = site.org.launch_id
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        form = form_of(launch_id, site, faq="Q: Which refunds?\r\nA: Those under 50 EUR.")
        done = post_form(client, site, edit_path(launch_id), form)
        assert done.headers["location"].endswith("?edited=0")
    assert state(site, launch_id)[2] == 1  # the same version: nobody is asked again


def test_a_customer_time_too_close_is_refused_with_the_timelines_lines(site: Site) -> None:
    launch_id = site.org.launch_id
    before = state(site, launch_id)
    # What `cadence launch edit --customer-at ... --tz UTC` says, in a transaction undone.
    with site.runtime.sessions() as session:
        with pytest.raises(EditRefused) as refused:
            edit_launch(
                session,
                launch_id,
                LaunchEdit(customer_at=datetime(2026, 3, 12, 13, 0, tzinfo=UTC)),
                NOW,
                context_from(site.settings),
            )
        session.rollback()
    lines = refused.value.problems
    assert lines and all(key == "customer_at" for key, _ in refused.value.keyed)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        form = form_of(launch_id, site, title="Faster refunds", customer_at="2026-03-12T13:00")
        answer = post_form(client, site, edit_path(launch_id), form)
    assert answer.status_code == 400
    page = answer.text
    assert "Nothing was saved." in page and 'aria-invalid="true"' in page
    errors = page.split('id="customer_at"', 1)[1].split("</div>", 1)[0]
    for line in lines:
        shown = html.escape(line[:1].upper() + line[1:], quote=False)
        assert f'<p class="field-error">{shown}</p>' in errors
    assert 'value="Faster refunds"' in page  # the form comes back as it was typed
    assert state(site, launch_id) == before  # not even the new title was kept


def test_every_problem_is_shown_by_its_field_and_nothing_is_stored(site: Site) -> None:
    launch_id = site.org.launch_id
    before = state(site, launch_id)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        form = form_of(launch_id, site, title=" ", customer_copy="", customer_at="next week")
        answer = post_form(client, site, edit_path(launch_id), form)
    assert answer.status_code == 400
    for key in ("title", "customer_copy", "customer_at"):
        assert f'id="{key}-error"' in answer.text
        assert f'<a href="#{key}">' in answer.text  # listed in the summary, linked
    assert state(site, launch_id) == before


def test_a_cancelled_launch_cannot_be_edited(site: Site) -> None:
    launch_id = new_launch(site)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        page = client.get(edit_path(launch_id)).text
        csrf = form_csrf(page, edit_path(launch_id))
        with session_scope(site.runtime.sessions) as session:
            cancel_launch(session, launch_id, NOW)
        before = state(site, launch_id)
        assert "is cancelled, so it cannot be edited" in client.get(edit_path(launch_id)).text
        launch_page = client.get(f"/dashboard/launches/{launch_id}").text
        assert f'href="{edit_path(launch_id)}"' not in launch_page
        answer = client.post(
            edit_path(launch_id),
            data={"csrf": csrf, **form_of(launch_id, site, title="Back on")},
            headers={"Origin": site.url},
        )
    assert answer.status_code == 409 and "is cancelled" in answer.text
    assert state(site, launch_id) == before


def test_only_comms_and_the_author_may_edit_a_launch(site: Site) -> None:
    others = site.org.launch_id  # queued from the command line
    own = new_launch(site, author=LEADER_B)
    before = state(site, others)
    with sign_in(site, LEADER_B) as client:  # type: ignore[arg-type]
        assert client.get(edit_path(others)).status_code == 404
        assert client.get(edit_path(own)).status_code == 200
        # A form for the leader's own launch does not open another's.
        csrf = form_csrf(client.get(edit_path(own)).text, edit_path(own))
        answer = client.post(
            edit_path(others),
            data={"csrf": csrf, **form_of(others, site, title="Mine now")},
            headers={"Origin": site.url},
        )
        assert answer.status_code == 404
        assert client.get(edit_path(site.org.everyone_id)).status_code == 404  # not a launch
        assert client.get("/dashboard/launches/x/edit").status_code == 404
    assert state(site, others) == before


def test_a_crafted_banner_link_cannot_choose_the_words(site: Site) -> None:
    launch = f"/dashboard/launches/{site.org.launch_id}"
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        crafted = client.get(launch, params={"edited": "Call 555-0100"}).text
        real = client.get(launch, params={"edited": "1"}).text
    assert "555-0100" not in crafted and "Saved." not in crafted
    assert "Saved. 1 correction goes to those already told." in real


def test_a_cross_site_post_changes_nothing(site: Site) -> None:
    launch_id = site.org.launch_id
    before = state(site, launch_id)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        csrf = form_csrf(client.get(edit_path(launch_id)).text, edit_path(launch_id))
        data = {"csrf": csrf, **form_of(launch_id, site, title="Hijacked")}
        foreign = client.post(
            edit_path(launch_id), data=data, headers={"Origin": "https://evil.example"}
        )
        fetched = client.post(
            edit_path(launch_id), data=data, headers={"Sec-Fetch-Site": "cross-site"}
        )
        forged = client.post(
            edit_path(launch_id),
            data={**data, "csrf": "0" * 64},
            headers={"Origin": site.url},
        )
    assert [foreign.status_code, fetched.status_code, forged.status_code] == [403, 403, 403]
    assert state(site, launch_id) == before


def test_the_manage_edit_page_of_a_launch_leads_here(site: Site) -> None:
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        page = client.get(f"/dashboard/messages/{site.org.launch_id}/edit").text
    assert f'href="{edit_path(site.org.launch_id)}"' in page


def test_the_launch_edit_page_is_accessible(
    axe_page: Page,  # noqa: F811 (a fixture)
    site: Site,
) -> None:
    """The page as opened, then refused with problems by several fields."""
    page = axe_page
    path = edit_path(site.org.launch_id)
    browser_sign_in(page, site.url, COMMS, path)
    assert_accessible(page)
    page.screenshot(path="/tmp/launch-edit-page.png", full_page=True)
    page.fill("#customer_at", "2026-03-12T13:00")
    page.get_by_role("button", name="Save the launch").click()
    assert "staff would not all have it" in page.inner_text("#problems")
    assert page.get_attribute("#customer_at", "aria-invalid") == "true"
    assert_accessible(page)
    page.screenshot(path="/tmp/launch-edit-refused.png", full_page=True)
    page.fill("#title", "")
    page.fill("#customer_copy", "")
    page.get_by_role("button", name="Save the launch").click()
    assert page.get_attribute("#title", "aria-invalid") == "true"
    assert page.get_attribute("#customer_copy", "aria-invalid") == "true"
    assert_accessible(page)
    page.fill("#title", "Same-day refunds for all")
    page.fill("#customer_copy", "Refunds now arrive the same day.")
    page.fill("#customer_at", "2026-03-13T12:00")
    page.get_by_role("button", name="Save the launch").click()
    assert "Saved. 2 corrections" in page.inner_text("[role=status]")
    page.screenshot(path="/tmp/launch-edit-saved.png", full_page=True)


def test_a_refused_edit_is_an_input_error_for_the_command_line(site: Site) -> None:
    """The field keys are extra: the command line still prints the same lines."""
    with site.runtime.sessions() as session:
        with pytest.raises(InputError) as refused:
            edit_launch(
                session,
                site.org.launch_id,
                LaunchEdit(title=" ", customer_copy=""),
                NOW,
                context_from(site.settings),
            )
        session.rollback()
    assert refused.value.render().startswith("edit refused:\n  title")
    assert "customer copy is empty" in refused.value.render()
