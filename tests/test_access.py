"""The access policy, walked route by route over real HTTP against a live server.

Every dashboard route and API endpoint is read from the app's own route table, so a route
added later is walked too (and a path parameter nobody taught this test to fill fails it).
Signed in as lead A, nothing of lead B's tree may show: not its people, its team, its
messages' titles, nor links to their ids; signed in as comms, all of it shows, so the walk
proves something.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access import api_tokens
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.directory.audience import Audience
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import Occurrence, Person, User
from cadence.web.app import build_app
from cadence.web.deps import WebDeps
from tests.test_dashboard import HOURS, NOW, Live, delivery, sign_in, start

# What only lead B's tree holds: its people (emails and names), its team, its messages.
OTHER_TREE = [
    r"bea@example\.com",
    r"bob@example\.com",
    r"lead\.b@example\.com",
    r"\bBea\b",
    r"\bBob\b",
    r"\bLead\.B\b",
    r"\bSales\b",
    r"Quota relief",
]
LEADER_TOKEN_EMAIL = "lead.a@example.com"


@dataclass
class World:
    live: Live
    other_ids: list[int]  # lead B's message and launch
    tokens: dict[str, str]
    paths: list[tuple[str, str]]  # (method, path) of every dashboard and API route
    other_deliveries: list[int] = field(default_factory=list)  # lead B's briefing


def _routes(live: Live) -> list[tuple[str, str]]:
    assert live.settings.redis_url is not None
    app = build_app(
        WebDeps(
            settings=live.settings,
            sessions=live.runtime.sessions,
            redis=redis_client(live.settings.redis_url),
            send_task=lambda name, args: None,
        )
    )
    found = []
    for route in app.routes:
        # An included router is one entry of the table, holding its routes as mounted.
        contexts = getattr(route, "effective_route_contexts", None)
        mounted = list(contexts()) if contexts else [route]
        for one in mounted:
            path, methods = getattr(one, "path", ""), getattr(one, "methods", None) or ()
            if path.startswith(("/dashboard", "/api")):
                found += [(method, path) for method in sorted(methods)]
    return sorted(set(found))


@pytest.fixture
def world(settings: Settings, runtime: Runtime, session: Session) -> Iterator[World]:
    with start(settings, runtime, session) as live:
        with session_scope(runtime.sessions) as s:
            people = {p.email: p for p in s.scalars(select(Person))}
            launch = add_launch(
                s,
                LaunchSpec(
                    title="Quota relief",
                    body="Quotas are lowered this quarter.",
                    customer_copy="Nothing for customers.",
                    customer_at=datetime(2026, 3, 13, 12, 0, tzinfo=UTC),
                    customer_zone="UTC",
                    audience=Audience(trees=("lead.b@example.com",)),
                    channels=["log"],
                ),
                datetime(2026, 3, 9, 8, 0, tzinfo=UTC),
                LaunchContext("UTC", 300.0, HOURS),
            )
            root = s.scalars(
                select(Occurrence).where(
                    Occurrence.message_id == launch.id, Occurrence.purpose == "launch"
                )
            ).one()
            briefing = {"briefing": True, "release": "briefing"}
            briefed = delivery(s, root, people["lead.b@example.com"], root.due_at, "log", briefing)
            bypassed = {"briefing": False, "release": "leader bypassed"}
            delivery(s, root, people["bea@example.com"], NOW, "log", bypassed)
            tokens = {}
            for email in ("comms@example.com", LEADER_TOKEN_EMAIL):
                user = s.scalars(select(User).where(User.email == email)).one()
                tokens[email] = api_tokens.create_token(s, user, "tests", NOW)[1]
            launch_id, briefing_id = launch.id, briefed.id
        yield World(live, [live.org.sales_id, launch_id], tokens, _routes(live), [briefing_id])


def _fill(path: str, world: World) -> list[str]:
    """The path with its parameters set to the other tree's ids."""
    names = re.findall(r"{(\w+)}", path)
    if not names:
        return [path]
    values: dict[str, list[int]] = {
        "message_id": world.other_ids,
        "delivery_id": world.other_deliveries,
    }
    unknown = [n for n in names if n not in values]
    assert not unknown, f"{path}: teach this test which of lead B's ids to put in {unknown}"
    (name,) = names
    return [path.replace(f"{{{name}}}", str(v)) for v in values[name]]


def _ids_in(value: Any) -> set[int]:
    """Every message id a JSON answer mentions."""
    found: set[int] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("id", "message_id", "launch") and isinstance(inner, int):
                found.add(inner)
            found |= _ids_in(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _ids_in(inner)
    return found


def _leaks(text: str, world: World) -> list[str]:
    """What of lead B's tree the text shows: names, titles, and links to its ids."""
    found = [p for p in OTHER_TREE if re.search(p, text)]
    for other in world.other_ids:
        if re.search(rf"/(messages|launches)/{other}\b", text):
            found.append(f"a link to {other}")
    return found


def _csv_links(page: str) -> list[str]:
    return sorted({html.unescape(h) for h in re.findall(r'href="([^"]*format=csv[^"]*)"', page)})


def _read(client: httpx.Client, method: str, path: str) -> list[httpx.Response]:
    """A route's answer, and for a page every CSV export it links to."""
    if method == "GET":
        answer = client.get(path)
        exports = [client.get(link) for link in _csv_links(answer.text)]
        return [answer, *exports]
    body = {
        "title": "Probe",
        "body": "Probe.",
        "audience": {"teams": ["Sales"]},
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "start": "2026-03-16",
        "at": "09:00",
    }
    return [client.request(method, path, json=body)]


def _walk(world: World, dashboard: httpx.Client, api: httpx.Client) -> dict[str, list[str]]:
    """(method path) -> what each answer showed, for every route."""
    shown: dict[str, list[str]] = {}
    for method, template in world.paths:
        client = dashboard if template.startswith("/dashboard") else api
        for path in _fill(template, world):
            for answer in _read(client, method, path):
                assert answer.status_code < 500, f"{method} {path}: {answer.text}"
                text = answer.text
                if answer.headers.get("content-type", "").startswith("application/json"):
                    ids = _ids_in(json.loads(text))
                    text += "".join(f" /messages/{i}" for i in ids & set(world.other_ids))
                shown.setdefault(f"{method} {answer.request.url}", []).extend(
                    _leaks(text, world) if method == "GET" else _leaks_beyond_input(text, world)
                )
    return shown


def _leaks_beyond_input(text: str, world: World) -> list[str]:
    """A refusal may repeat the team the caller named, and nothing else of the tree."""
    return [leak for leak in _leaks(text, world) if leak != r"\bSales\b"]


def test_a_leader_sees_nothing_of_another_tree_on_any_route(world: World) -> None:
    live = world.live
    assert len(world.paths) >= 10
    bearer = {"Authorization": f"Bearer {world.tokens[LEADER_TOKEN_EMAIL]}"}
    with (
        sign_in(live, "lead.a@example.com") as dashboard,
        httpx.Client(base_url=live.url, headers=bearer, timeout=20) as api,
    ):
        shown = _walk(world, dashboard, api)
        overview = dashboard.get("/dashboard").text
        by_id = [dashboard.get(f"/dashboard/launches/{i}").status_code for i in world.other_ids]
    leaked = {where: what for where, what in shown.items() if what}
    assert leaked == {}
    assert "Own the outcome" in overview and "Same-day refunds" in overview
    assert by_id == [404, 404]


def test_comms_sees_the_other_tree_on_the_same_routes(world: World) -> None:
    live = world.live
    bearer = {"Authorization": f"Bearer {world.tokens['comms@example.com']}"}
    with (
        sign_in(live, "comms@example.com") as dashboard,
        httpx.Client(base_url=live.url, headers=bearer, timeout=20) as api,
    ):
        shown = _walk(world, dashboard, api)
        launches_csv = dashboard.get("/dashboard?format=csv&table=launches").text
    seen = {leak for what in shown.values() for leak in what}
    assert seen >= {*OTHER_TREE, *(f"a link to {i}" for i in world.other_ids)}
    assert "Quota relief" in launches_csv


def test_a_leader_without_a_linked_person_sees_nothing(world: World, session: Session) -> None:
    row = User(email="orphan@example.com", role="leader", person_id=None, active=True,
               created_at=NOW)  # fmt: skip
    session.add(row)
    session.flush()
    token = api_tokens.create_token(session, row, "tests", NOW)[1]
    session.commit()
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=world.live.url, headers=bearer, timeout=20) as api:
        listed = api.get("/api/messages")
        calendar = api.get("/api/calendar")
        one = api.get(f"/api/messages/{world.live.org.everyone_id}")
        refused = api.post(
            "/api/messages",
            json={
                "title": "Probe",
                "body": "Probe.",
                "audience": {"people": ["orphan@example.com"]},
                "rrule": "FREQ=WEEKLY;BYDAY=MO",
                "start": "2026-03-16",
                "at": "09:00",
            },
        )
    assert listed.status_code == 200 and listed.json() == []
    assert calendar.json()["events"] == []
    assert one.status_code == 404
    assert refused.status_code == 403
