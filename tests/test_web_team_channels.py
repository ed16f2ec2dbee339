"""My team's note from the other places a briefing arrives, over real HTTP: the Slack
briefing's third button and its modal (signed requests, the Slack stand-in's `views.open`),
and the email briefing's acknowledgement page; then the page in headless Chromium, and the
accessibility check of its forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Page
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.answers.slack_signing import sign
from cadence.answers.tokens import make_ack_token
from cadence.config import Settings
from cadence.runtime import Runtime
from cadence.store.models import Acknowledgement
from tests.accessibility import assert_accessible
from tests.test_browser import browser, page  # noqa: F401  (headless Chromium)
from tests.test_web_team import (
    NOTE,
    SECRET,
    SLACK_PATH,
    Team,
    _buttons,
    _notes,
    _release_team_of,
    _rendered_for,
    started,
)
from tests.web_helpers import axe_page, browser_sign_in  # noqa: F401 (a fixture)


@pytest.fixture
def team(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Team]:
    with started(settings, runtime, session) as running:
        yield running


def _slack_post(team: Team, payload: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = sign(secret, body, team.clock.now.timestamp())
    with team.client() as client:
        return client.post(SLACK_PATH, content=body, headers=headers)


def _click(user: str, delivery_id: int, trigger: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": trigger,
        "container": {"type": "message", "channel_id": f"D{user}", "message_ts": "1.2"},
        "actions": [
            {
                "type": "button",
                "block_id": "cadence_actions",
                "action_id": "cadence_team_note",
                "value": f"delivery:{delivery_id}",
            }
        ],
    }


def _submission(user: str, delivery_id: int, note: str) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "type": "modal",
            "callback_id": "cadence_team_note",
            "private_metadata": str(delivery_id),
            "state": {"values": {"note": {"text": {"type": "plain_text_input", "value": note}}}},
        },
    }


# ---------------------------------------------------------------------------------------
# Slack


def test_the_briefing_in_slack_carries_a_third_button_that_opens_the_note_modal(
    team: Team,
) -> None:
    [briefing] = _rendered_for(team, "la")
    assert _buttons(briefing) == ["cadence_ack", "cadence_question", "cadence_team_note"]
    assert "Add a note for my team" in json.dumps(briefing)
    assert "cadence launch note" not in json.dumps(briefing)

    stranger = _slack_post(team, _click("ULB", team.briefing["la"], "1.1.b"))
    assert stranger.status_code == 200
    assert "another leader" in stranger.json()["text"]
    assert team.slack.requests("views.open") == []

    opened = _slack_post(team, _click("ULA", team.briefing["la"], "1.1.a"))
    assert opened.status_code == 200
    [call] = team.slack.requests("views.open")
    assert call.params["trigger_id"] == "1.1.a"
    view = call.params["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert view["callback_id"] == "cadence_team_note"
    assert view["private_metadata"] == str(team.briefing["la"])
    assert "Same-day refunds" in json.dumps(view)

    # The team's own message has the two answer buttons only.
    _release_team_of(team, "la")
    [staff] = _rendered_for(team, "a2")
    assert _buttons(staff) == ["cadence_ack", "cadence_question"]


def test_a_signed_note_from_the_slack_modal_is_stored_and_sent_with_the_team(team: Team) -> None:
    briefing = team.briefing["la"]
    forged = _slack_post(team, _submission("ULA", briefing, NOTE), secret="not-the-secret")
    assert forged.status_code == 401
    wrong = _slack_post(team, _submission("ULB", briefing, NOTE))
    assert wrong.json() == {
        "response_action": "errors",
        "errors": {
            "note": "This briefing was sent to another leader, so you cannot add a note to it."
        },
    }
    empty = _slack_post(team, _submission("ULA", briefing, "  "))
    assert empty.json() == {"response_action": "errors", "errors": {"note": "The note is empty."}}
    not_a_briefing = _slack_post(team, _submission("UA1", team.core_delivery, NOTE))
    assert list(not_a_briefing.json()["errors"]) == ["note"]
    assert _notes(team) == {}

    done = _slack_post(team, _submission("ULA", briefing, NOTE))
    assert done.json() == {"response_action": "clear"}
    assert _notes(team) == {team.ids["la"]: NOTE}
    # Opening the modal again shows the note saved.
    _slack_post(team, _click("ULA", briefing, "2.2.a"))
    [call] = team.slack.requests("views.open")
    view = call.params["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert view["blocks"][1]["element"]["initial_value"] == NOTE

    _release_team_of(team, "la")
    [blocks] = _rendered_for(team, "a1")
    assert "A note from your team leader:" in json.dumps(blocks)


# ---------------------------------------------------------------------------------------
# The email briefing's acknowledgement page


def _ack_token(team: Team, delivery_id: int, person: str) -> str:
    secret = team.settings.secret_key.get_secret_value()
    return make_ack_token(secret, delivery_id, team.ids[person])


def test_a_note_from_the_email_briefings_page(team: Team) -> None:
    token = _ack_token(team, team.briefing["la"], "la")
    with team.client() as client:
        page = client.get(f"/ack/{token}")
        assert page.status_code == 200
        assert "Add a note for my team" in page.text
        assert f'action="./{token}/note"' in page.text
        note_csrf = re.findall(r'name="csrf" value="([0-9a-f]+)"', page.text)[1]
        answer_csrf = re.findall(r'name="csrf" value="([0-9a-f]+)"', page.text)[0]
        # The answer form's proof does not post a note, nor does a page of another site.
        wrong_proof = client.post(f"/ack/{token}/note", data={"note": NOTE, "csrf": answer_csrf})
        assert wrong_proof.status_code == 403
        foreign = client.post(
            f"/ack/{token}/note",
            data={"note": NOTE, "csrf": note_csrf},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        empty = client.post(f"/ack/{token}/note", data={"note": "", "csrf": note_csrf})
        assert empty.status_code == 400
        assert "The note was not saved: the note is empty." in empty.text
        assert _notes(team) == {}
        saved = client.post(f"/ack/{token}/note", data={"note": NOTE, "csrf": note_csrf})
        assert saved.status_code == 200 and "Your note is saved" in saved.text
        assert "bring &lt;questions&gt;" in saved.text
        assert _notes(team) == {team.ids["la"]: NOTE}
        # Saving the note is not an acknowledgement: the team still waits for one.
        with team.runtime.sessions() as s:
            assert (
                s.scalars(
                    select(Acknowledgement).where(Acknowledgement.person_id == team.ids["la"])
                ).all()
                == []
            )

        # A staff member's page has no note form, and its token posts no note.
        staff = _ack_token(team, team.core_delivery, "a1")
        staff_page = client.get(f"/ack/{staff}")
        assert staff_page.status_code == 200 and "Add a note" not in staff_page.text
        # The token of lead A's briefing cannot be bent to lead B's.
        bent = make_ack_token(
            team.settings.secret_key.get_secret_value(), team.briefing["lb"], team.ids["la"]
        )
        assert client.get(f"/ack/{bent}").status_code == 400
    assert _notes(team) == {team.ids["la"]: NOTE}


# ---------------------------------------------------------------------------------------
# In a browser, without JavaScript

SCREENSHOT = Path("/tmp/my-team.png")


def test_a_leader_adds_a_note_in_the_browser(team: Team, page: Page) -> None:  # noqa: F811
    browser_sign_in(page, team.url, "lead.a@example.com")
    page.get_by_role("link", name="My team").click()
    page.wait_for_url(f"{team.url}/dashboard/my-team")
    assert page.title() == "My team · Cadence"
    note = page.get_by_label("Add a note for my team")
    note.fill("Huddle at 10:00 in room 2: bring your questions.")
    page.get_by_role("button", name="Add the note").click()
    page.wait_for_url("**noted=**")
    assert "Your note is saved" in page.inner_text("main")
    assert page.locator(".briefing .current").inner_text().startswith("Huddle at 10:00")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    assert _notes(team) == {team.ids["la"]: "Huddle at 10:00 in room 2: bring your questions."}

    # A comms user has no team of their own: the page says why and offers the leaders.
    page.get_by_role("button", name="Sign out").click()
    browser_sign_in(page, team.url, "comms@example.com")
    page.goto(f"{team.url}/dashboard/my-team")
    assert page.get_by_role("heading", name="Nobody reports to you").is_visible()
    page.select_option("#leader", "lead.a@example.com")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**leader=lead.a%40example.com**")
    assert page.get_by_role("heading", name="Lead.A\u2019s team").is_visible()
    assert page.locator("textarea").count() == 0
    page.screenshot(path=str(SCREENSHOT.with_name("my-team-comms.png")), full_page=True)


def test_the_note_forms_pass_the_accessibility_check(
    team: Team,
    axe_page: Page,  # noqa: F811 (a fixture)
) -> None:
    """My team with a refused note, and the email briefing's page with its note form."""
    checked = axe_page
    browser_sign_in(checked, team.url, "lead.a@example.com", "/dashboard/my-team")
    checked.get_by_role("button", name="Add the note").click()
    checked.wait_for_load_state()
    error = checked.locator(".field-error")
    assert error.inner_text() == "The note is empty."
    assert_accessible(checked)

    token = _ack_token(team, team.briefing["la"], "la")
    checked.goto(f"{team.url}/ack/{token}")
    assert_accessible(checked)
    checked.get_by_label("Your note").fill("See you at the huddle.")
    checked.get_by_role("button", name="Save my note").click()
    checked.wait_for_load_state()
    assert "Your note is saved" in checked.inner_text("main")
    assert_accessible(checked)
    assert _notes(team) == {team.ids["la"]: "See you at the huddle."}
