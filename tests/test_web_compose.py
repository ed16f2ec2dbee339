"""The compose page over real HTTP and in a real browser: a live server, a real database.

Leaders and comms users compose a core message, preview it as Slack and email will show it
with its sends per zone, save it as a draft and submit it (held for approval when comms
require it). Every problem is shown by its field at once and nothing is stored; a leader can
only target their own tree, even with a crafted post; a post from another site is refused.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from cadence.config import Settings
from cadence.directory.audience import Audience
from cadence.messages import approvals
from cadence.messages.core import CadenceSpec, CoreMessageSpec, spec_problems, validate_spec
from cadence.messages.planner import plan
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import Cadence, Message, Occurrence, Person, User
from cadence.web.dashboard.compose_form import ComposeForm, form_from_message, rule_of
from tests.accessibility import assert_accessible
from tests.conftest import CliResult
from tests.test_browser import browser  # noqa: F401  (the module's chromium)
from tests.test_dashboard import NOW, Live, csrf_of, sign_in, start
from tests.web_helpers import axe_page, browser_sign_in, scripted_page  # noqa: F401 (a fixture)

SCREENSHOT = Path("/tmp/compose.png")
FormFields = dict[str, Any]


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        yield running


def weekly_for_emea(**changes: Any) -> FormFields:
    """Lead A's team, on Mondays and Thursdays at 09:00 from Monday 16 March."""
    fields: FormFields = {
        "title": "Own the outcome",
        "wording": [
            "Hello {{ person.first_name }}, we fix the **problem**.",
            "Solve it, {{ person.first_name }}.",
        ],
        "team": ["Support/EMEA"],
        "people": "",
        "trees": "",
        "channel": ["slack", "email"],
        "channel_mode": "first",
        "preset": "weekly",
        "day": ["MO", "TH"],
        "at": "09:00",
        "zone_mode": "recipient",
        "start": "2026-03-16",
        "end": "",
        "remind_after": "",
        "max_reminders": "",
        "escalate": "",
    }
    fields.update(changes)
    return fields


def post(
    client: httpx.Client, live: Live, fields: FormFields, op: str, path: str = "/dashboard/compose"
) -> httpx.Response:
    page = client.get("/dashboard/compose")
    assert page.status_code == 200, page.text
    data = {**fields, "op": op, "csrf": compose_csrf(page.text)}
    return client.post(path, data=data, headers={"Origin": live.url})


def compose_csrf(page: str) -> str:
    """The compose form's own CSRF field (the sign-out form's comes first on the page)."""
    return csrf_of(page.split('id="compose-form"', 1)[1])


def messages(live: Live) -> list[Message]:
    with live.runtime.sessions() as session:
        found = list(
            session.scalars(
                select(Message)
                .options(selectinload(Message.variants), selectinload(Message.cadence))
                .order_by(Message.id)
            )
        )
        session.expunge_all()
        return found


def text_of(page: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", page))


def error_of(page: str, key: str) -> str:
    found = re.search(rf'<p class="field-error" id="error-{key}">([^<]*)</p>', page)
    assert found, f"no error for {key}"
    return html_lib.unescape(found.group(1))


# ---------------------------------------------------------------------------------------


def test_the_domain_keys_each_problem_by_its_field_and_keeps_the_cli_lines() -> None:
    spec = CoreMessageSpec(
        "",
        "Hi {{ person.nickname }}",
        Audience(everyone=True),
        CadenceSpec("FREQ=SOMETIMES", datetime(2026, 3, 2, 9, 0), date(2026, 3, 1), "Mars/Base"),
        ["  "],
        ["pigeon"],
        "some",
        remind_after_hours=-1,
        max_reminders=99,
    )
    keyed = spec_problems(spec)
    assert [line for _, line in keyed] == validate_spec(spec)
    assert [key for key, _ in keyed] == [
        "title",
        "body",
        "variant 1",
        "remind_after_hours",
        "max_reminders",
        "channels",
        "channel_mode",
        "timezone",
        "rrule",
        "end_date",
    ]


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"preset": "weekdays"}, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
        ({"preset": "weekly", "days": ["TH", "MO"]}, "FREQ=WEEKLY;BYDAY=MO,TH"),
        ({"preset": "monthly", "month_day": "MO"}, "FREQ=MONTHLY;BYDAY=1MO"),
        (
            {"preset": "every_n_weeks", "interval": "3", "days": ["WE"]},
            "FREQ=WEEKLY;INTERVAL=3;BYDAY=WE",
        ),
        ({"preset": "advanced", "rrule": "FREQ=DAILY;COUNT=3"}, "FREQ=DAILY;COUNT=3"),
    ],
)
def test_each_preset_is_a_readable_rrule_and_a_draft_reopens_as_it(
    fields: dict[str, Any], rule: str
) -> None:
    problems: dict[str, list[str]] = {}
    assert rule_of(ComposeForm(**fields), problems) == rule and problems == {}
    stored = Message(title="t", body="b", audience={}, channels=["slack"], channel_mode="first")
    stored.cadence = Cadence(rrule=rule, start_local=datetime(2026, 3, 2, 9, 0))
    reopened = form_from_message(stored)
    assert reopened.preset == fields["preset"]
    assert rule_of(reopened, problems) == rule


def test_the_page_needs_a_sign_in(live: Live) -> None:
    with live.client() as client:
        for path in ("/dashboard/compose", "/dashboard/compose/1"):
            page = client.get(path)
            assert page.status_code == 303
            assert page.headers["location"].startswith("/login?next=")
        assert client.get("/dashboard/compose/search?q=a").status_code == 401


def test_preview_without_javascript_shows_slack_email_and_sends(live: Live) -> None:
    before = len(messages(live))
    with sign_in(live, "lead.a@example.com") as client:
        blank = client.get("/dashboard/compose")
        assert blank.status_code == 200
        assert "script-src 'self'" in blank.headers["content-security-policy"]
        assert '<script src="/static/compose.js" defer></script>' in blank.text
        assert 'name="everyone"' not in blank.text  # only comms may send to everyone
        assert 'value="Support/EMEA"' in blank.text and 'value="Sales"' not in blank.text
        page = post(client, live, weekly_for_emea(preview_person="arno@example.com"), "preview")
    assert page.status_code == 200, page.text
    shown = text_of(page.text)
    assert "3 people will get it" in shown  # lead A, Ann and Arno
    slack = page.text.split('data-preview="slack"')[1].split('data-preview="email"')[0]
    assert (
        "Own the outcome" in slack and "Hello Arno, we fix the <strong>problem</strong>." in slack
    )
    assert "Got it" in slack and "I have a question" in slack
    email = page.text.split('data-preview="email"')[1].split("<h3>")[0]
    assert "Hello Arno, we fix the <strong>problem</strong>." in email
    assert f"{live.url}/ack/preview" in email
    assert "Acknowledge this message:" in html_lib.unescape(page.text)  # the text part
    sends = page.text.split('data-preview="sends"')[1]
    assert 'data-zone="UTC"' in sends
    assert "Mon 16 Mar 2026, 09:00" in sends and "Thu 19 Mar 2026, 09:00" in sends
    assert len(messages(live)) == before  # a preview stores nothing


def test_live_preview_endpoint_for_the_script(live: Live) -> None:
    with sign_in(live, "lead.a@example.com") as client:
        answer = post(
            client,
            live,
            weekly_for_emea(preview_person="ann@example.com", preview_wording="1"),
            "preview",
            "/dashboard/compose/preview",
        )
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert found["problems"] == 0
        assert "Solve it, Ann." in found["previews"]
        assert "3 people will get it" in found["headcount"]
        # Someone outside the leader's tree is never a preview's recipient.
        crafted = post(
            client,
            live,
            weekly_for_emea(preview_person="bea@example.com"),
            "preview",
            "/dashboard/compose/preview",
        ).json()
        assert "Bea" not in crafted["previews"] and "bea@" not in crafted["previews"]
        broken = post(
            client, live, weekly_for_emea(title=""), "preview", "/dashboard/compose/preview"
        ).json()
        assert broken["problems"] == 1 and "title is empty" in broken["previews"]


def test_comms_schedule_at_once(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        done = post(client, live, weekly_for_emea(team=[], everyone="yes"), "submit")
        assert done.status_code == 303, done.text
        target = done.headers["location"]
        assert re.fullmatch(r"/dashboard/messages/\d+\?done=scheduled", target)
        page = client.get(target)
    assert "Scheduled. It goes out on its cadence" in page.text
    stored = messages(live)[-1]
    assert stored.status == "active" and stored.audience["everyone"] is True
    assert stored.wordings() == weekly_for_emea()["wording"]
    assert stored.cadence is not None and stored.cadence.rrule == "FREQ=WEEKLY;BYDAY=MO,TH"


@pytest.mark.parametrize("required", [True, False])
def test_a_leaders_message_waits_for_approval_when_required(live: Live, required: bool) -> None:
    with session_scope(live.runtime.sessions) as session:
        comms = session.scalar(select(User).where(User.email == "comms@example.com"))
        assert comms is not None
        approvals.set_requires_approval(session, comms, required, NOW)
    with sign_in(live, "lead.a@example.com") as client:
        note = client.get("/dashboard/compose").text
        assert ("waits for their approval" in note) is required
        done = post(client, live, weekly_for_emea(), "submit")
        assert done.status_code == 303, done.text
        assert done.headers["location"].endswith(
            "?done=awaiting" if required else "?done=scheduled"
        )
        page = client.get(done.headers["location"])
        assert page.status_code == 200
    stored = messages(live)[-1]
    assert stored.status == ("awaiting_approval" if required else "active")
    assert stored.title == "Own the outcome" and stored.audience["teams"] == ["Support/EMEA"]
    if required:
        assert "waits for a comms user's approval" in html_lib.unescape(page.text)


def test_a_draft_is_never_planned_and_is_opened_again_and_submitted(live: Live) -> None:
    with sign_in(live, "lead.a@example.com") as client:
        saved = post(client, live, weekly_for_emea(title="Draft idea"), "draft")
        assert saved.status_code == 303, saved.text
        draft_id = int(re.findall(r"\d+", saved.headers["location"])[0])
        assert saved.headers["location"].endswith("?done=draft")
        page = client.get(saved.headers["location"])
        assert "Saved as a draft" in page.text
        assert f'href="/dashboard/compose/{draft_id}"' in page.text
        # The planner plans only active messages: a draft gets no occurrence.
        plan(live.runtime.sessions, NOW + timedelta(days=5), timedelta(days=30), "UTC")
        with live.runtime.sessions() as session:
            planned = session.scalar(select(func.count()).where(Occurrence.message_id == draft_id))
        assert planned == 0
        again = client.get(f"/dashboard/compose?draft={draft_id}")
        assert again.status_code == 200
        assert 'value="Draft idea"' in again.text and 'name="draft_id"' in again.text
        assert client.get(f"/dashboard/compose/{draft_id}").status_code == 200
        assert "Solve it, {{ person.first_name }}." in html_lib.unescape(again.text)
        form = {**weekly_for_emea(title="Draft, finished"), "draft_id": str(draft_id)}
        done = post(client, live, form, "submit")
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"/dashboard/messages/{draft_id}?done=scheduled"
    stored = next(m for m in messages(live) if m.id == draft_id)
    assert stored.status == "active" and stored.title == "Draft, finished"
    assert stored.wordings() == weekly_for_emea()["wording"]
    # Someone else's draft, or a message that is not a draft, is not there for them.
    with sign_in(live, "b.boss@example.com") as other:
        assert other.get(f"/dashboard/compose/{draft_id}").status_code == 404
        theirs = post(
            other, live, {**weekly_for_emea(team=[]), "people": "bea@example.com"}, "draft"
        )
        their_id = int(re.findall(r"\d+", theirs.headers["location"])[0])
    with sign_in(live, "lead.a@example.com") as client:
        crafted = {**weekly_for_emea(title="Taken over"), "draft_id": str(their_id)}
        assert post(client, live, crafted, "submit").status_code == 404
    assert next(m for m in messages(live) if m.id == their_id).status == "draft"
    with sign_in(live, "lead.a@example.com") as client:
        assert client.get(f"/dashboard/compose/{draft_id}").status_code == 404
        assert client.get("/dashboard/compose/nope").status_code == 404
        assert client.get("/dashboard/compose?draft=99999").status_code == 404
        assert client.get(f"/dashboard/compose/{live.org.everyone_id}").status_code == 404


def test_every_problem_is_shown_by_its_field_and_nothing_is_stored(live: Live) -> None:
    before = len(messages(live))
    bad = weekly_for_emea(
        title="",
        wording=["Hi {{ person.nickname }}", "   ", "{% for %}"],
        day=[],
        channel=[],
        end="2026-03-01",
        remind_after="5000",
        max_reminders="many",
        zone_mode="fixed",
        fixed_zone="Mars/Olympus",
    )
    with sign_in(live, "lead.a@example.com") as client:
        page = post(client, live, bad, "submit")
    assert page.status_code == 400
    assert len(messages(live)) == before
    assert error_of(page.text, "title") == "title is empty"
    assert "person.nickname" in error_of(page.text, "body")
    assert error_of(page.text, "variant-1").startswith("variant 1")  # the blank box is dropped
    assert error_of(page.text, "days") == "choose at least one day of the week"
    assert error_of(page.text, "channels") == "no channel given"
    assert error_of(page.text, "end-date") == "end date 2026-03-01 is before the start 2026-03-16"
    assert error_of(page.text, "remind-after-hours").startswith("remind after must be")
    assert error_of(page.text, "max-reminders") == "'many' is not a whole number"
    assert "unknown time zone 'Mars/Olympus'" in error_of(page.text, "timezone")
    assert 'aria-describedby="error-title" aria-invalid="true"' in page.text
    summary = page.text.split('role="alert" id="problems"')[1].split("</div>")[0]
    assert summary.count("<li>") == 9 and 'href="#title"' in summary
    assert 'value="Mars/Olympus"' in page.text  # what was typed is kept


def test_a_leader_cannot_target_anyone_outside_their_tree(live: Live) -> None:
    before = len(messages(live))
    with sign_in(live, "lead.a@example.com") as client:
        crafted = weekly_for_emea(
            team=["Sales", "Support"], people="bea@example.com", trees="lead.b@example.com"
        )
        page = post(client, live, crafted, "submit")
        everyone = post(client, live, weekly_for_emea(team=[], everyone="yes"), "draft")
        found = client.get("/dashboard/compose/search", params={"q": "b"}).json()
        mine = client.get("/dashboard/compose/search", params={"q": "ann"}).json()
    assert page.status_code == 400 and everyone.status_code == 400
    assert len(messages(live)) == before
    lines = re.findall(r'<p class="field-error" id="error-audience[^"]*">([^<]*)</p>', page.text)
    assert [html_lib.unescape(line) for line in lines] == [
        "team 'Sales': not in your tree",
        "team 'Support': not in your tree",
        "person bea@example.com: not in your tree",
        "tree of lead.b@example.com: not in your tree",
    ]
    assert "everyone: not in your tree" in html_lib.unescape(everyone.text)
    assert found["people"] == [] and found["teams"] == []
    assert [p["email"] for p in mine["people"]] == ["ann@example.com"]
    with sign_in(live, "comms@example.com") as client:
        wide = client.get("/dashboard/compose/search", params={"q": "b"}).json()
    assert {"bea@example.com", "bob@example.com"} <= {p["email"] for p in wide["people"]}


def test_a_post_from_another_site_is_refused(live: Live) -> None:
    before = len(messages(live))
    with sign_in(live, "comms@example.com") as client:
        page = client.get("/dashboard/compose")
        data = {**weekly_for_emea(), "op": "submit", "csrf": compose_csrf(page.text)}
        foreign = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        refused = client.post("/dashboard/compose", data=data, headers=foreign)
        preview = client.post("/dashboard/compose/preview", data=data, headers=foreign)
        no_csrf = client.post(
            "/dashboard/compose", data={**data, "csrf": "0" * 64}, headers={"Origin": live.url}
        )
    assert refused.status_code == 403 and "not sent from Cadence" in refused.text
    assert preview.status_code == 403
    assert no_csrf.status_code == 403
    assert len(messages(live)) == before


def test_what_the_author_writes_cannot_run_in_the_previews(live: Live) -> None:
    body = '<script>alert(1)</script> [click](javascript:alert(2)) <img src=x onerror="alert(3)">'
    fields = weekly_for_emea(title="<b>Loud</b>", wording=[body])
    with sign_in(live, "comms@example.com") as client:
        page = post(client, live, fields, "preview")
    previews = page.text.split('id="previews"')[1].split("</aside>")[0]
    assert "<script>" not in previews and 'href="javascript:' not in previews
    assert "<img" not in previews and "<b>Loud" not in previews
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in previews


def test_wordings_move_and_are_removed_without_javascript(live: Live) -> None:
    fields = weekly_for_emea(wording=["First", "Second", "Third"])
    with sign_in(live, "lead.a@example.com") as client:
        moved = post(client, live, fields, "up:2")
        removed = post(client, live, fields, "remove:1")
        down = post(client, live, fields, "down:0")
        added = post(client, live, fields, "add")

    def boxes(page: httpx.Response) -> list[str]:
        return re.findall(
            r'<textarea id="wording-\d+" name="wording"[^>]*>([^<]*)</textarea>', page.text
        )

    assert boxes(moved) == ["First", "Third", "Second", ""]
    assert boxes(removed) == ["First", "Third", ""]
    assert boxes(down) == ["Second", "First", "Third", ""]
    assert boxes(added) == ["First", "Second", "Third", ""]
    assert 'role="alert"' not in added.text  # rearranging is not checking


# ---------------------------------------------------------------------------------------
# In a browser, with JavaScript on


def test_a_leader_composes_with_live_previews_and_submits(
    scripted_page: Page,  # noqa: F811 (the fixture)
    live: Live,
    cli: Callable[..., CliResult],
) -> None:
    page = scripted_page
    with session_scope(live.runtime.sessions) as session:
        ann = session.scalar(select(Person).where(Person.email == "ann@example.com"))
        assert ann is not None
        ann.timezone = "America/New_York"
    browser_sign_in(page, live.url, "lead.a@example.com", "/dashboard/compose")
    # The script shows only the parts of the cadence builder the preset uses.
    expect(page.locator("#rrule")).to_be_hidden()
    page.fill("#title", "Own the outcome, weekly")
    page.fill(
        "#wording-0", "Hello {{ person.first_name }}: we fix the **problem**, not the ticket."
    )
    page.fill("#wording-1", "Hi {{ person.first_name }}, a solved problem is the goal.")
    page.fill("#audience-search", "emea")
    page.get_by_role("button", name="Add team Support/EMEA").click()
    expect(page.locator("#headcount")).to_have_text("3 people will get it")
    page.check("#day-TH")
    page.select_option("#preview_person", "ann@example.com")
    slack = page.locator('[data-preview="slack"]')
    expect(slack).to_contain_text("Own the outcome, weekly")
    expect(slack).to_contain_text("Hello Ann: we fix the problem, not the ticket.")
    expect(page.locator('[data-preview="email"]')).to_contain_text("Hello Ann")
    sends = page.locator('[data-preview="sends"]')
    expect(sends.locator('[data-zone="UTC"]')).to_be_visible()
    expect(sends.locator('[data-zone="America/New_York"]')).to_be_visible()
    expect(sends).to_contain_text("America/New_York · 1 person")
    start = page.input_value("#start")
    assert start == "2026-03-12"
    expect(sends).to_contain_text("Mon 16 Mar 2026, 09:00")
    expect(sends).to_contain_text("Thu 19 Mar 2026, 09:00")
    # The second wording, live.
    page.select_option("#preview_wording", "1")
    expect(slack).to_contain_text("Hi Ann, a solved problem is the goal.")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/dashboard/messages/\d+\?done=scheduled$"))
    expect(page.locator("p.notice")).to_contain_text("Scheduled.")
    listed = cli("message", "list")
    assert listed.code == 0, listed
    assert "Own the outcome, weekly" in listed.out


def test_without_javascript_problems_sit_by_their_fields(browser: Browser, live: Live) -> None:  # noqa: F811
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    browser_sign_in(page, live.url, "comms@example.com", "/dashboard/compose")
    page.fill("#wording-0", "Hello {{ person.nickname }}")
    page.uncheck("#day-MO")
    page.click("#submit")
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("4 problems to fix")
    title = page.locator("#title")
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#error-title")).to_have_text("title is empty")
    expect(page.locator("#error-days")).to_have_text("choose at least one day of the week")
    expect(page.locator("#error-audience")).to_have_text("choose who gets it")
    summary.get_by_role("link", name="title is empty").click()
    expect(title).to_be_focused()
    page.screenshot(path="/tmp/compose-problems.png", full_page=True)
    context.close()


def test_the_page_with_its_problems_and_previews_is_accessible(
    axe_page: Page,  # noqa: F811 (a fixture)
    live: Live,
) -> None:
    page = axe_page
    browser_sign_in(page, live.url, "lead.a@example.com", "/dashboard/compose")
    page.fill("#wording-0", "# Heading\n\nHello {{ person.first_name }}")
    page.check("text=Support/EMEA")
    page.click("#submit")
    expect(page.locator("#error-title")).to_have_text("title is empty")
    expect(page.locator('[data-preview="sends"]')).to_have_count(0)
    assert_accessible(page)
    page.fill("#title", "Now complete")
    expect(page.locator('[data-preview="sends"]')).to_be_visible()
    assert_accessible(page)


def test_digits_that_are_not_ascii_are_a_field_problem_not_a_failure(live: Live) -> None:
    """ "²" is a digit to `str.isdigit` but not to `int`: the every-N-weeks field refuses it,
    and a move button naming such a row is ignored."""
    before = len(messages(live))
    form = weekly_for_emea(preset="every_n_weeks", interval="²")
    with sign_in(live, "lead.a@example.com") as client:
        page = post(client, live, form, "submit")
        moved = post(client, live, weekly_for_emea(), "up-²")
    assert page.status_code == 400, page.text[:300]
    assert error_of(page.text, "interval") == "every N weeks: N must be from 1 to 52"
    assert moved.status_code < 500
    assert len(messages(live)) == before
