"""My team, over real HTTP: a live server, a real database and Redis, and a launch released
by the dispatcher and sent to the Slack stand-in.

A leader sees their own tree, the questions their people asked and the briefings still
waiting for their team; their note, added on the page, goes with their team's messages.
Nobody adds a note to someone else's briefing. The same note from the Slack modal and the
email acknowledgement page: tests/test_web_team_channels.py, which uses the set-up here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access.users import create_user
from cadence.answers.acks import make_answer, record_answer
from cadence.bench.slack_standin import SlackStandIn
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.channels.registry import make_channel
from cadence.delivery.dispatch import tick
from cadence.delivery.sending import send_batch
from cadence.directory.audience import Audience
from cadence.launches.cascade import LaunchSpec, add_launch, context_from, get_launch, plan
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import Acknowledgement, Delivery, LeaderNote, Occurrence, Person
from cadence.web.ack_pages import csrf_field
from cadence.web.dashboard import CSRF_COOKIE
from cadence.web.deps import WebDeps
from cadence.worker import policy_from, send_policy_from
from tests import factories as f
from tests.test_dashboard import PASSWORD, csrf_of, delivery, occurrence
from tests.test_web import free_port, serve
from tests.web_helpers import form_csrf

TOKEN = "xoxb-test-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MONDAY_8 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FRIDAY_NOON = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
EARLIER = datetime(2026, 2, 23, 9, 0, tzinfo=UTC)
SLACK_PATH = "/slack/interactions"
NOTE = "Come to the 10:00 huddle & bring <questions>."


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Team:
    url: str
    settings: Settings
    runtime: Runtime
    clock: Clock
    slack: SlackStandIn
    launch_id: int
    ids: dict[str, int]
    briefing: dict[str, int]  # leader key -> their briefing's delivery id
    core_delivery: int  # a1's delivery of the core message
    tasks: list[tuple[str, list[Any]]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)

    def run(self, now: datetime) -> None:
        """One dispatcher tick at `now`, and the sends it queued, on a thread of their own
        as in a worker (the browser's driver holds this thread's event loop)."""
        rt = self.runtime
        failures: list[BaseException] = []

        def work() -> None:
            try:
                queued: list[int] = []
                tick(rt.sessions, policy_from(rt.settings), queued.extend, now)
                if queued:
                    send_batch(
                        rt.sessions,
                        lambda name: make_channel(name, rt.settings, rt.settings.redis_url),
                        queued,
                        send_policy_from(rt.settings),
                        now,
                    )
            except BaseException as exc:  # handed to the test below
                failures.append(exc)

        worker = threading.Thread(target=work)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive() and not failures, failures


def _org(session: Session) -> dict[str, Person]:
    """Lead A (ann, arno) and lead B (bea, bob); a1 also leads a1x. Everyone on Slack."""
    people: dict[str, Person] = {}
    support, sales = f.team(session, "Support"), f.team(session, "Sales")
    for key, email, team, manager in (
        ("la", "lead.a@example.com", support, None),
        ("a1", "ann@example.com", support, "la"),
        ("a2", "arno@example.com", support, "la"),
        ("a1x", "axel@example.com", support, "a1"),
        ("lb", "lead.b@example.com", sales, None),
        ("b1", "bea@example.com", sales, "lb"),
        ("b2", "bob@example.com", sales, "lb"),
    ):
        person = f.person(session, email, team=team, manager=people.get(manager or ""))
        person.slack_user_id = f"U{key.upper()}"
        people[key] = person
    session.flush()
    return people


def _question(session: Session, d: Delivery, text: str, at: datetime) -> None:
    session.add(
        Acknowledgement(
            delivery_id=d.id,
            occurrence_id=d.occurrence_id,
            person_id=d.person_id,
            kind="question",
            question=text,
            clarity=4,
            message_version=1,
            via="email",
            counted=True,
            created_at=at,
        )
    )
    session.flush()


@contextmanager
def started(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Team]:
    port = free_port()
    with SlackStandIn(token=TOKEN, accept_any=True) as slack:
        wired = settings.model_copy(
            update={
                "base_url": f"http://127.0.0.1:{port}",
                "slack_signing_secret": SECRET,
                "slack_bot_token": TOKEN,
                "slack_api_url": slack.base_url,
                "slack_rate_per_minute": 60_000,
                "slack_burst": 1000,
                "slack_channel_gap_seconds": 0,
            }
        )
        rt = Runtime(wired)
        people = _org(session)
        # A core message sent the week before, which Ann answered with a question, Bea too.
        core = f.core_message(session, title="Own the outcome", start=datetime(2026, 9, 7, 9))
        week = occurrence(session, core, 0, EARLIER)
        sent = {k: delivery(session, week, p, EARLIER) for k, p in people.items()}
        _question(session, sent["a1"], "Does this cover refunds by card?", EARLIER + timedelta(1))
        _question(session, sent["b1"], "Who signs off discounts?", EARLIER + timedelta(1))
        ctx = context_from(wired)
        launch = add_launch(
            session,
            LaunchSpec(
                title="Same-day refunds",
                body="Refunds under 50 EUR are approved at once, {{ person.first_name }}.",
                customer_copy="Refunds now arrive the same day.",
                customer_at=FRIDAY_NOON,
                customer_zone="UTC",
                audience=Audience(everyone=True),
                channels=["slack"],
            ),
            MONDAY_8,
            ctx,
        )
        session.commit()
        with session_scope(rt.sessions) as s:
            create_user(s, "comms@example.com", "comms", PASSWORD, MONDAY_8)
            create_user(s, "lead.a@example.com", "leader", PASSWORD, MONDAY_8)
            create_user(s, "lead.b@example.com", "leader", PASSWORD, MONDAY_8)
            message, row = get_launch(s, launch.id)
            releases = {r.email: r for r in plan(s, message, row, ctx).releases}
        start = releases["lead.a@example.com"].release_at
        clock = Clock(start + timedelta(minutes=5))
        tasks: list[tuple[str, list[Any]]] = []
        assert wired.redis_url is not None
        deps = WebDeps(
            settings=wired,
            sessions=rt.sessions,
            redis=redis_client(wired.redis_url),
            send_task=lambda name, args: tasks.append((name, list(args))),
            clock=clock,
        )
        with serve(deps, port) as url:
            team = Team(
                url,
                wired,
                rt,
                clock,
                slack,
                launch.id,
                {k: p.id for k, p in people.items()},
                {},
                sent["a1"].id,
                tasks,
            )
            team.run(start)
            with rt.sessions() as s:
                for key in ("la", "lb", "a1"):
                    team.briefing[key] = (
                        s.scalars(
                            select(Delivery.id)
                            .join(Occurrence)
                            .where(
                                Occurrence.purpose == "launch", Delivery.person_id == people[key].id
                            )
                        ).one_or_none()
                        or 0
                    )
            try:
                yield team
            finally:
                rt.engine.dispose()


@pytest.fixture
def team(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Team]:
    with started(settings, runtime, session) as running:
        yield running


@contextmanager
def signed_in(team: Team, email: str) -> Iterator[httpx.Client]:
    with team.client() as client:
        form = client.get("/login")
        done = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf": csrf_of(form.text)},
            headers={"Origin": team.url},
        )
        assert done.status_code == 303, done.text
        yield client


def _team_note_csrf(team: Team, client: httpx.Client) -> str:
    """The note form's proof for this browser, as the page would carry it."""
    cookie = client.cookies.get(CSRF_COOKIE)
    assert cookie
    return csrf_field(team.settings.secret_key.get_secret_value(), cookie, "team-note")


def _notes(team: Team) -> dict[int, str]:
    with team.runtime.sessions() as s:
        return {n.leader_id: n.note for n in s.scalars(select(LeaderNote))}


def _posted_blocks(team: Team, slack_user: str) -> list[list[dict[str, Any]]]:
    """The blocks of every chat.postMessage to a person's DM, oldest first."""
    found = []
    for request in team.slack.requests("chat.postMessage"):
        if request.params.get("channel") not in (slack_user, f"D{slack_user}"):
            continue
        blocks = request.params["blocks"]
        found.append(blocks if isinstance(blocks, list) else json.loads(blocks))
    return found


def _buttons(blocks: list[dict[str, Any]]) -> list[str]:
    actions = [b for b in blocks if b["type"] == "actions"]
    return [e["action_id"] for e in actions[-1]["elements"]] if actions else []


def _release_team_of(team: Team, leader: str) -> None:
    """The leader acknowledges their briefing, and the next tick sends their team theirs."""
    with session_scope(team.runtime.sessions) as s:
        record_answer(
            s,
            team.briefing[leader],
            make_answer("ack"),
            via="web",
            now=team.clock.now,
            person_id=team.ids[leader],
        )
    team.run(team.clock.now + timedelta(minutes=1))


def _rendered_for(team: Team, key: str) -> list[list[dict[str, Any]]]:
    return _posted_blocks(team, f"U{key.upper()}")


# ---------------------------------------------------------------------------------------
# The page


def test_a_leader_sees_only_their_tree_their_questions_and_pending_briefings(
    team: Team,
) -> None:
    with team.client() as anonymous:
        assert anonymous.get("/dashboard/my-team").status_code == 303
    with signed_in(team, "lead.a@example.com") as client:
        page = client.get("/dashboard/my-team")
        assert page.status_code == 200, page.text
        html = page.text
        assert "Your team" in html
        for name in ("ann@example.com", "arno@example.com", "axel@example.com"):
            assert name in html
        for outside in ("bea@example.com", "bob@example.com", "Who signs off discounts?"):
            assert outside not in html
        assert "Does this cover refunds by card?" in html
        # The launch is waiting for lead A's team: one briefing, with its note form.
        assert html.count('action="/dashboard/my-team/notes/') == 1
        assert f"/dashboard/my-team/notes/{team.briefing['la']}" in html
        assert "Add a note for my team" in html and "Same-day refunds" in html
        # Ann, Arno and Axel have not answered "Own the outcome"; Ann asked, so she answered.
        waiting = html.split('id="waiting"')[1].split("</section>")[0]
        assert "Arno" in waiting and "Axel" in waiting and "Ann" not in waiting
        assert "<script" not in html.lower()
        # The CSV of the people table follows the same tree.
        exported = client.get("/dashboard/my-team?format=csv&table=people")
        assert exported.headers["content-type"].startswith("text/csv")
        assert "arno@example.com" in exported.text and "bea@example.com" not in exported.text
        # Another leader's team is not one to pick, nor to see.
        assert client.get("/dashboard/my-team?leader=lead.b@example.com").status_code == 404
        # A leader with a leader below them may look at that team, without its note form.
        below = client.get("/dashboard/my-team?leader=ann@example.com")
        assert below.status_code == 200 and "Ann&rsquo;s team" in below.text
        assert "axel@example.com" in below.text and "arno@example.com" not in below.text


def test_a_comms_user_without_a_team_sees_why_and_can_pick_a_leader(team: Team) -> None:
    with signed_in(team, "comms@example.com") as client:
        page = client.get("/dashboard/my-team")
        assert page.status_code == 200
        assert "Nobody reports to you" in page.text
        assert '<select id="leader" name="leader">' in page.text
        picked = client.get("/dashboard/my-team?leader=lead.b@example.com")
    assert picked.status_code == 200
    assert "bea@example.com" in picked.text and "arno@example.com" not in picked.text
    assert "Who signs off discounts?" in picked.text
    # Only the leader adds their own note.
    assert "/dashboard/my-team/notes/" not in picked.text


def test_a_note_from_the_web_goes_with_the_teams_messages(team: Team) -> None:
    with signed_in(team, "lead.a@example.com") as client:
        page = client.get("/dashboard/my-team")
        csrf = form_csrf(page.text, f"/dashboard/my-team/notes/{team.briefing['la']}")
        saved = client.post(
            f"/dashboard/my-team/notes/{team.briefing['la']}",
            data={"note": NOTE, "csrf": csrf},
            headers={"Origin": team.url},
        )
        assert saved.status_code == 303
        assert saved.headers["location"].startswith("/dashboard/my-team?noted=")
        after = client.get(saved.headers["location"])
    assert "Your note is saved" in after.text
    assert "Come to the 10:00 huddle &amp; bring &lt;questions&gt;." in after.text
    assert _notes(team) == {team.ids["la"]: NOTE}

    _release_team_of(team, "la")
    for key in ("a1", "a2"):
        [blocks] = _rendered_for(team, key)
        notes = [b for b in blocks if b["type"] == "context"]
        assert notes, blocks
        assert "A note from your team leader:" in notes[0]["elements"][0]["text"]
        assert "bring &lt;questions&gt;" in notes[0]["elements"][0]["text"]
    # Lead B's team is still waiting, and got nothing of lead A's note.
    assert _rendered_for(team, "b1") == []


def test_a_bad_note_is_shown_next_to_its_field_and_nothing_is_stored(team: Team) -> None:
    briefing = team.briefing["la"]
    path = f"/dashboard/my-team/notes/{briefing}"
    with signed_in(team, "lead.a@example.com") as client:
        csrf = form_csrf(
            client.get("/dashboard/my-team").text, f"/dashboard/my-team/notes/{briefing}"
        )
        empty = client.post(path, data={"note": "   ", "csrf": csrf})
        assert empty.status_code == 400
        assert f'<p class="field-error" id="note-{briefing}-error">The note is empty.</p>' in (
            empty.text
        )
        assert f'aria-describedby="note-{briefing}-hint note-{briefing}-error"' in empty.text
        assert 'role="alert"' in empty.text and f'href="#note-{briefing}"' in empty.text
        long = client.post(path, data={"note": "x" * 2001, "csrf": csrf})
        assert long.status_code == 400
        assert "The note is longer than 2000 characters." in long.text
        assert "x" * 2001 in long.text  # what was typed is kept
        foreign = client.post(
            path, data={"note": "Hi", "csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        forged = client.post(path, data={"note": "Hi", "csrf": "0" * 64})
        assert forged.status_code == 403
    assert _notes(team) == {}


def test_another_leader_cannot_add_a_note_to_someone_elses_briefing(team: Team) -> None:
    with signed_in(team, "lead.b@example.com") as client:
        page = client.get("/dashboard/my-team")
        own = form_csrf(page.text, f"/dashboard/my-team/notes/{team.briefing['lb']}")
        for target in (team.briefing["la"], team.core_delivery, 999_999, "x1"):
            refused = client.post(
                f"/dashboard/my-team/notes/{target}",
                data={"note": "Mine now", "csrf": own},
                headers={"Origin": team.url},
            )
            assert refused.status_code == 404, target
    with signed_in(team, "comms@example.com") as client:
        client.get("/dashboard/my-team")
        refused = client.post(
            f"/dashboard/my-team/notes/{team.briefing['la']}",
            data={"note": "From comms", "csrf": _team_note_csrf(team, client)},
            headers={"Origin": team.url},
        )
        assert refused.status_code == 404
    assert _notes(team) == {}


def test_a_briefing_whose_team_has_been_sent_it_is_no_longer_waiting(team: Team) -> None:
    _release_team_of(team, "la")
    with signed_in(team, "lead.a@example.com") as client:
        page = client.get("/dashboard/my-team")
        assert "No briefing is waiting" in page.text
        csrf = _team_note_csrf(team, client)
        late = client.post(
            f"/dashboard/my-team/notes/{team.briefing['la']}",
            data={"note": "Too late", "csrf": csrf},
        )
    # The form is gone; a post from an old copy of the page says why, and saves nothing.
    assert late.status_code == 400
    assert "Your team has already been sent this launch" in late.text
    assert _notes(team) == {}
