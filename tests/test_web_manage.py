"""Managing queued messages from the dashboard, over real HTTP against a live server.

Every confirmation page's counts are checked against the database, and against what the
action then really did; a leader may change only what they queued; a change from another
site, or a bad edit, changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.access.users import get_user
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.directory.audience import Audience
from cadence.messages import approvals
from cadence.messages.core import CadenceSpec, CoreMessageSpec, add_core_message, cancel
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import (
    Delivery,
    DeliveryStatus,
    Message,
    Occurrence,
    OccurrenceStatus,
    Person,
)
from cadence.web.deps import WebDeps
from tests.test_dashboard import NOW, Org, add_users, seed, sign_in
from tests.test_web import free_port, serve
from tests.web_helpers import form_csrf

COMMS = "comms@example.com"
LEADER_B = "b.boss@example.com"  # leads lead.b's tree: lead.b, bea, bob
LEADER_A = "lead.a@example.com"


@dataclass
class Site:
    """The seeded organisation on a live server, with the tasks it asked the workers for."""

    url: str
    settings: Settings
    runtime: Runtime
    org: Org
    tasks: list[tuple[str, list[Any]]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)


@contextmanager
def start_site(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Site]:
    org = seed(session)
    add_users(runtime)
    port = free_port()
    web_settings = settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})
    assert settings.redis_url is not None
    tasks: list[tuple[str, list[Any]]] = []
    deps = WebDeps(
        settings=web_settings,
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda name, args: tasks.append((name, args)),
        clock=lambda: NOW,
    )
    with serve(deps, port) as url:
        yield Site(url, web_settings, runtime, org, tasks)


@pytest.fixture
def site(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Site]:
    with start_site(settings, runtime, session) as running:
        yield running


def queue_as(site: Site, email: str, title: str, audience: Audience, **kw: Any) -> int:
    """A core message queued by a dashboard user, as the API and `--as` queue it."""
    with session_scope(site.runtime.sessions) as session:
        spec = CoreMessageSpec(
            title=title,
            body=kw.get("body", "Hello {{ person.first_name }}, the queue closes at five."),
            audience=audience,
            cadence=CadenceSpec("FREQ=WEEKLY;BYDAY=MO", datetime(2026, 3, 16, 9, 0)),
            channels=kw.get("channels", ["slack", "email"]),
        )
        message = add_core_message(session, spec, NOW)
        approvals.submit(session, message, get_user(session, email), NOW)
        return message.id


def post_form(
    client: httpx.Client, site: Site, page: str, data: dict[str, Any] | None = None
) -> httpx.Response:
    """Open `page`, then submit its form (with its CSRF field) to the same path."""
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    return client.post(
        page,
        data={"csrf": form_csrf(shown.text, page), **(data or {})},
        headers={"Origin": site.url},
    )


def count(html: str, key: str) -> int:
    found = re.search(rf'data-count="{key}">(\d+)<', html)
    assert found, f"no {key} count on the page"
    return int(found.group(1))


def status_of(site: Site, message_id: int) -> str:
    with site.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.status


def add_pending(site: Site, message_id: int) -> tuple[int, int]:
    """Two planned repetitions, and two written but unsent deliveries of a third."""
    with session_scope(site.runtime.sessions) as session:
        for sequence in (5, 6):
            due = NOW + timedelta(days=sequence)
            session.add(
                Occurrence(
                    message_id=message_id, purpose="cadence", sequence=sequence, zone="UTC",
                    local_time=due.replace(tzinfo=None), due_at=due,
                    status=OccurrenceStatus.PLANNED.value,
                )
            )  # fmt: skip
        written = Occurrence(
            message_id=message_id, purpose="cadence", sequence=4, zone="UTC",
            local_time=NOW.replace(tzinfo=None), due_at=NOW,
            status=OccurrenceStatus.DISPATCHED.value, dispatched_at=NOW,
        )  # fmt: skip
        session.add(written)
        session.flush()
        people = session.scalars(select(Person).order_by(Person.id).limit(2)).all()
        for person, status in zip(people, ("pending", "queued"), strict=True):
            session.add(
                Delivery(
                    occurrence_id=written.id, person_id=person.id, channel="email", variant=0,
                    status=status, attempts=0, created_at=NOW,
                )
            )  # fmt: skip
    with site.runtime.sessions() as session:
        planned = session.scalar(
            select(func.count())
            .select_from(Occurrence)
            .where(
                Occurrence.message_id == message_id,
                Occurrence.status == OccurrenceStatus.PLANNED.value,
            )
        )
        unsent = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(
                Occurrence.message_id == message_id,
                Delivery.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.QUEUED.value]),
            )
        )
    return int(planned or 0), int(unsent or 0)


# ---------------------------------------------------------------------------------------


def test_the_list_shows_status_author_and_next_send_and_filters_by_status(site: Site) -> None:
    mine = queue_as(site, LEADER_B, "Quiet hours", Audience(trees=("lead.b@example.com",)))
    with session_scope(site.runtime.sessions) as session:
        session.get(Message, site.org.sales_id).status = "paused"  # type: ignore[union-attr]
        # A status this page has never heard of is still shown, as it is spelled.
        odd = queue_as(site, COMMS, "Odd one", Audience(everyone=True))
        session.get(Message, odd).status = "on_hold"  # type: ignore[union-attr]
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        page = client.get("/dashboard/messages")
        assert page.status_code == 200, page.text
        html = page.text
        for title in ("Own the outcome", "Sales push", "Same-day refunds", "Quiet hours"):
            assert title in html
        row = re.search(rf'<tr data-message="{mine}">(.*?)</tr>', html, re.S)
        assert row and LEADER_B in row.group(1) and "Active" in row.group(1)
        assert "16 Mar, 09:00" in row.group(1)  # its first Monday, not yet planned
        assert re.search(r'data-status="on_hold">On hold<', html)
        assert "<script" not in html.lower()

        paused = client.get("/dashboard/messages", params={"status": "paused"}).text
        assert "Sales push" in paused and "Own the outcome" not in paused
        assert f'/dashboard/messages/{site.org.sales_id}/resume"' in paused
        odd_only = client.get("/dashboard/messages", params={"status": "on_hold"}).text
        assert "Odd one" in odd_only and "Quiet hours" not in odd_only
        unknown = client.get("/dashboard/messages", params={"status": "nonsense"})
        assert unknown.status_code == 200 and "There is no status" in unknown.text


def test_a_leader_lists_their_tree_and_changes_only_their_own(site: Site) -> None:
    mine = queue_as(site, LEADER_B, "Quiet hours", Audience(trees=("lead.b@example.com",)))
    theirs = queue_as(site, LEADER_A, "Team A only", Audience(trees=("lead.a@example.com",)))
    with sign_in(site, LEADER_B) as client:  # type: ignore[arg-type]
        html = client.get("/dashboard/messages").text
        assert "Quiet hours" in html and "Sales push" in html
        assert "Team A only" not in html
        assert f"/dashboard/messages/{mine}/edit" in html
        # Sales push reaches their tree, but came from the command line: not theirs to change.
        assert f"/dashboard/messages/{site.org.sales_id}/pause" not in html
        for target in (site.org.sales_id, theirs, site.org.everyone_id):
            for action in ("edit", "pause", "cancel"):
                shown = client.get(f"/dashboard/messages/{target}/{action}")
                assert shown.status_code == 404, (target, action)
        # A post with a valid CSRF field for another page still finds nothing to change.
        csrf = form_csrf(
            client.get(f"/dashboard/messages/{mine}/cancel").text,
            f"/dashboard/messages/{mine}/cancel",
        )
        refused = client.post(
            f"/dashboard/messages/{site.org.sales_id}/cancel",
            data={"csrf": csrf},
            headers={"Origin": site.url},
        )
        assert refused.status_code == 404
        assert "Sales push" not in refused.text
    assert status_of(site, site.org.sales_id) == "active"
    assert status_of(site, theirs) == "active"


def test_cancel_says_what_it_withdraws_then_withdraws_exactly_that(site: Site) -> None:
    message_id = site.org.everyone_id
    planned, unsent = add_pending(site, message_id)
    assert (planned, unsent) == (2, 2)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        shown = client.get(f"/dashboard/messages/{message_id}/cancel")
        assert shown.status_code == 200
        assert count(shown.text, "planned") == planned
        assert count(shown.text, "unsent") == unsent
        done = client.post(
            f"/dashboard/messages/{message_id}/cancel",
            data={"csrf": form_csrf(shown.text, f"/dashboard/messages/{message_id}/cancel")},
            headers={"Origin": site.url},
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/dashboard/messages?done=cancelled&id={message_id}"
        listed = client.get(done.headers["location"]).text
        assert f"Message {message_id}: Cancelled" in listed
    with site.runtime.sessions() as session:
        assert session.get(Message, message_id).status == "cancelled"  # type: ignore[union-attr]
        withdrawn = session.scalar(
            select(func.count())
            .select_from(Occurrence)
            .where(Occurrence.message_id == message_id, Occurrence.note == "message cancelled")
        )
        cancelled = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.last_error == "message cancelled")
        )
    assert (withdrawn, cancelled) == (planned, unsent)


def test_cancelling_a_launch_tells_those_already_told(site: Site) -> None:
    launch_id = site.org.launch_id
    with site.runtime.sessions() as session:
        told = session.scalar(
            select(func.count(func.distinct(Delivery.person_id)))
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(
                Occurrence.message_id == launch_id,
                Occurrence.purpose == "launch",
                Delivery.status == "sent",
            )
        )
    assert told == 2
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        shown = client.get(f"/dashboard/messages/{launch_id}/cancel").text
        assert count(shown, "told") == told
        assert f"/dashboard/messages/{launch_id}/edit" not in shown
        done = post_form(client, site, f"/dashboard/messages/{launch_id}/cancel")
        assert done.status_code == 303
    with site.runtime.sessions() as session:
        notices = session.scalars(
            select(Delivery.payload)
            .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
            .where(Occurrence.message_id == launch_id, Occurrence.purpose == "correction")
        ).all()
    assert len(notices) == told and all(p == {"withdrawn": True} for p in notices)
    assert status_of(site, launch_id) == "cancelled"


def test_pause_and_resume(site: Site) -> None:
    message_id = site.org.everyone_id
    planned, unsent = add_pending(site, message_id)
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        shown = client.get(f"/dashboard/messages/{message_id}/pause").text
        assert count(shown, "planned") == planned and count(shown, "unsent") == unsent
        assert post_form(client, site, f"/dashboard/messages/{message_id}/pause").status_code == 303
        assert status_of(site, message_id) == "paused"
        # Nothing was withdrawn: the sends are skipped only if they fall due while paused.
        cancel_page = client.get(f"/dashboard/messages/{message_id}/cancel").text
        assert count(cancel_page, "planned") == planned
        again = client.get(f"/dashboard/messages/{message_id}/pause")
        assert "cannot be paused" in again.text
        assert f'action="/dashboard/messages/{message_id}/pause"' not in again.text
        resume = client.get(f"/dashboard/messages/{message_id}/resume").text
        assert "Next send:" in resume
        assert (
            post_form(client, site, f"/dashboard/messages/{message_id}/resume").status_code == 303
        )
    assert status_of(site, message_id) == "active"


def test_cross_site_posts_change_nothing(site: Site) -> None:
    message_id = site.org.everyone_id
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        page = f"/dashboard/messages/{message_id}/cancel"
        csrf = form_csrf(client.get(page).text, page)
        foreign = client.post(
            f"/dashboard/messages/{message_id}/cancel",
            data={"csrf": csrf},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        fetched = client.post(
            f"/dashboard/messages/{message_id}/pause",
            data={"csrf": csrf},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert fetched.status_code == 403
        # The cancel page's field does not work for another action or message.
        reused = client.post(
            f"/dashboard/messages/{message_id}/pause",
            data={"csrf": csrf},
            headers={"Origin": site.url},
        )
        assert reused.status_code == 403
        edited = client.post(
            f"/dashboard/messages/{message_id}/edit",
            data={"csrf": "", "title": "Hijacked", "body": "x"},
            headers={"Origin": site.url},
        )
        assert edited.status_code == 403
    with site.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None and message.status == "active"
        assert message.title == "Own the outcome"


def test_edit_with_re_acknowledgement_asks_those_sent_the_latest_repetition(site: Site) -> None:
    message_id = site.org.everyone_id
    with site.runtime.sessions() as session:
        latest = session.scalar(
            select(Occurrence.id)
            .where(Occurrence.message_id == message_id, Occurrence.status == "dispatched")
            .order_by(Occurrence.sequence.desc())
            .limit(1)
        )
        sent_latest = session.scalar(
            select(func.count(func.distinct(Delivery.person_id))).where(
                Delivery.occurrence_id == latest, Delivery.status == "sent"
            )
        )
    assert sent_latest == 7
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        form = client.get(f"/dashboard/messages/{message_id}/edit")
        assert form.status_code == 200
        assert count(form.text, "reack") == sent_latest
        assert 'for="title"' in form.text and 'for="wording-1"' in form.text
        done = client.post(
            f"/dashboard/messages/{message_id}/edit",
            data={
                "csrf": form_csrf(form.text, f"/dashboard/messages/{message_id}/edit"),
                "title": "Own the outcome, always",
                "body": "We fix the problem, not the ticket.",
                "wording": ["Fix it once, for good.", ""],
                "require_reack": "1",
            },
            headers={"Origin": site.url},
        )
        assert done.status_code == 303, done.text
    with site.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        assert message.title == "Own the outcome, always" and message.version == 2
        assert message.ack_version == 2
        assert message.wordings() == [
            "We fix the problem, not the ticket.",
            "Fix it once, for good.",
        ]
        reack = session.scalars(
            select(Occurrence).where(
                Occurrence.message_id == message_id, Occurrence.purpose == "reack"
            )
        ).all()
    assert [o.parent_id for o in reack] == [latest]


def test_a_bad_edit_shows_each_problem_by_its_field_and_saves_nothing(site: Site) -> None:
    message_id = site.org.everyone_id
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        form = client.get(f"/dashboard/messages/{message_id}/edit").text
        refused = client.post(
            f"/dashboard/messages/{message_id}/edit",
            data={
                "csrf": form_csrf(form, f"/dashboard/messages/{message_id}/edit"),
                "title": "   ",
                "body": "Hello {{ person.shoe_size }}",
                "wording": ["fine", "{% for %}"],
            },
            headers={"Origin": site.url},
        )
        assert refused.status_code == 400
        html = refused.text
        assert 'id="title-error"' in html and "Title is empty" in html
        assert 'aria-describedby="title-error"' in html
        assert 'id="body-error"' in html and "shoe_size" in html
        assert 'id="wording-2-error"' in html and 'id="wording-1-error"' not in html
        assert 'role="alert"' in html and 'href="#title"' in html
        assert "{% for %}" in html  # what was typed is kept

        unchanged = client.post(
            f"/dashboard/messages/{message_id}/edit",
            data={
                "csrf": form_csrf(form, f"/dashboard/messages/{message_id}/edit"),
                "title": "Own the outcome",
                "body": "We fix the customer's problem, not just the ticket.",
                "require_reack": "1",
            },
            headers={"Origin": site.url},
        )
        assert unchanged.status_code == 400
        assert 'id="reack-error"' in unchanged.text
        assert "needs a changed title or wording" in unchanged.text
    with site.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        assert message.title == "Own the outcome" and message.version == 1
        assert message.ack_version == 1


def test_an_edit_posted_after_the_message_was_cancelled_changes_nothing(site: Site) -> None:
    message_id = site.org.sales_id
    edit = f"/dashboard/messages/{message_id}/edit"
    with sign_in(site, COMMS) as client:  # type: ignore[arg-type]
        csrf = form_csrf(client.get(edit).text, edit)
        with session_scope(site.runtime.sessions) as session:
            cancel(session, message_id, NOW)  # from another tab, or the command line
        late = client.post(
            edit,
            data={"csrf": csrf, "title": "Sales push, again", "body": "New words."},
            headers={"Origin": site.url},
        )
        assert late.status_code == 409
        assert "cannot be edited" in late.text
        launch_edit = client.get(f"/dashboard/messages/{site.org.launch_id}/edit").text
        assert "cadence launch edit" in launch_edit
        assert f'action="/dashboard/messages/{site.org.launch_id}/edit"' not in launch_edit
    with site.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None and message.title == "Sales push" and message.version == 1
