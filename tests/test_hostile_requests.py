"""Hostile requests over a real socket: no answer is a 500, none shows a traceback.

Every GET route is read from the app's own route table, so a new route is covered the day it
is added; each path parameter and each query parameter the routes read gets values meant to
break parsers (ids past the database's range, superscript digits, far dates, long text, NUL,
bytes that are not UTF-8), as a signed-in comms user with an API token. Then the cases that
were found by hand, with the answers the README promises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.access import api_tokens
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.inputs import MAX_DEPTH, MAX_TEAMS
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import Message, User
from cadence.web.app import build_app
from cadence.web.dashboard.filters import FILTER_PARAMS
from cadence.web.deps import WebDeps
from cadence.web.nul_guard import REFUSAL
from tests.test_dashboard import NOW, Live, Org, add_users, csrf_of, seed, sign_in
from tests.test_web import free_port, serve

# Sent percent-encoded as they are (so "%FF" is a byte that is not UTF-8, "%00" is NUL).
HOSTILE = [
    "99999999999999999999",
    quote("²"),
    quote("\u0662\u0663"),
    "-1",
    "0",
    "9999-12-31",
    "x" * 5000,
    "%00",
    quote("%00"),
    "%FF%FE",
    quote("../../etc/passwd", safe=""),
]
# Query parameters read from the request itself rather than declared to FastAPI.
READ_BY_HAND = {*FILTER_PARAMS, "format", "table", "next", "signed_out", "token"}
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def get_routes(app: FastAPI) -> list[str]:
    """Every GET path in the app's route table, included routers and all."""
    found: list[str] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            context = getattr(route, "include_context", None)
            if context is not None:  # FastAPI's wrapper around an included router
                walk(context.included_router.routes, prefix + context.prefix)
            elif "GET" in (getattr(route, "methods", None) or ()):
                found.append(prefix + route.path)

    walk(list(app.routes), "")
    return sorted(set(found))


def query_params(app: FastAPI, path: str) -> set[str]:
    """The query parameters a route declares (from its OpenAPI description) and those the
    pages read by hand."""
    operation = app.openapi()["paths"].get(path, {}).get("get", {})
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    return declared | READ_BY_HAND


@dataclass
class Server:
    url: str
    app: FastAPI
    token: str
    org: Org
    runtime: Runtime


@pytest.fixture
def server(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Server]:
    org = seed(session)
    add_users(runtime)
    with session_scope(runtime.sessions) as s:
        comms = s.scalars(select(User).where(User.email == "comms@example.com")).one()
        token = api_tokens.create_token(s, comms, "hostile", NOW)[1]
    port = free_port()
    web_settings = settings.model_copy(
        update={"base_url": f"http://127.0.0.1:{port}", "demo_inbox": True}
    )
    assert settings.redis_url is not None
    deps = WebDeps(
        settings=web_settings,
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda name, args: None,
        clock=lambda: NOW,
    )
    with serve(deps, port) as url:
        yield Server(url, build_app(deps), token, org, runtime)


@pytest.fixture
def client(server: Server, settings: Settings) -> Iterator[httpx.Client]:
    """Signed in to the dashboard as a comms user, and carrying their API token."""
    live = Live(server.url, settings, server.runtime, server.org)
    with sign_in(live, "comms@example.com") as signed_in:
        signed_in.headers["Authorization"] = f"Bearer {server.token}"
        signed_in.timeout = httpx.Timeout(60)
        yield signed_in


def assert_handled(response: httpx.Response, what: str) -> None:
    assert response.status_code != 500, f"{what}: {response.text[:300]}"
    assert "Traceback" not in response.text, what
    assert "Internal Server Error" not in response.text, what


def fill(path: str, value: str, only: str | None = None) -> str:
    """The path with `value` in parameter `only` (every one when None), 1 in the others."""
    return _PATH_PARAM.sub(lambda m: value if only in (None, m.group(1)) else "1", path)


def test_the_route_table_is_walked(server: Server) -> None:
    routes = get_routes(server.app)
    for expected in ("/dashboard", "/dashboard/messages/{message_id}", "/api/messages/{message_id}",
                     "/api/calendar.ics", "/ack/{token}", "/health"):  # fmt: skip
        assert expected in routes


def test_no_get_route_fails_on_hostile_values(server: Server, client: httpx.Client) -> None:
    asked = 0
    for path in get_routes(server.app):
        if path.startswith(("/docs", "/redoc")):
            continue  # FastAPI's own documentation pages read no input
        names = _PATH_PARAM.findall(path)
        for name in names:
            for value in HOSTILE:
                url = fill(path, value, name)
                assert_handled(client.get(url), url[:200])
                asked += 1
        base = fill(path, "1")
        for param in sorted(query_params(server.app, path)):
            for value in HOSTILE:
                url = f"{base}?{param}={value}"
                assert_handled(client.get(url), url[:200])
                asked += 1
    assert asked > 500


def test_ids_that_name_nothing_are_404_on_pages_and_the_api(client: httpx.Client) -> None:
    for raw in ["99999999999999999999", "2147483648", quote("²"), "0", "-1", quote("\u0661")]:
        page = client.get(f"/dashboard/messages/{raw}")
        assert page.status_code == 404, raw
        assert "Not found" in page.text
        assert client.get(f"/dashboard/launches/{raw}").status_code == 404
        api = client.get(f"/api/messages/{raw}")
        assert api.status_code == 404, raw
        assert "the id must be a whole number from 1 to 2147483647" in api.json()["detail"]
        approve = client.post(f"/api/approvals/{raw}/approve")
        assert approve.status_code == 404


def test_bad_filters_are_named_on_the_page(client: httpx.Client) -> None:
    page = client.get("/dashboard", params={"message": "²"})
    assert page.status_code == 200
    assert "No such message to show; the message filter was left out." in page.text
    far = client.get("/dashboard", params={"until": "9999-12-31"})
    assert far.status_code == 200
    assert "Until 9999-12-31 is outside 2000-01-01 to 2100-12-31; it was left out" in far.text
    days = client.get("/api/calendar", params={"days": "99999999999999999999"})
    assert days.status_code == 422


def core_body(**overrides: Any) -> str:
    import json

    body = {
        "title": "Own the outcome",
        "body": "We fix the problem.",
        "audience": {"teams": ["Support"]},
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "start": "2026-04-06",
        "at": "09:00",
        **overrides,
    }
    return json.dumps(body)


def with_hours(number: str) -> str:
    return core_body()[:-1] + f', "remind_after_hours": {number}}}'


def post(client: httpx.Client, text: str, path: str = "/api/messages") -> httpx.Response:
    return client.post(path, content=text, headers={"Content-Type": "application/json"})


def messages(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Message)) or 0)


def test_hostile_bodies_are_refused_with_a_422_that_reads(
    server: Server, client: httpx.Client
) -> None:
    before = messages(server.runtime)
    cases = {
        "NaN": (core_body().replace('"Own the outcome"', "NaN"), "NaN is not a number JSON"),
        "Infinity": (with_hours("-Infinity"), "-Infinity is not a number JSON allows"),
        "huge float": (with_hours("1e999"), "the number 1e999 is too large"),
        "huge int": (with_hours("9" * 5000), "is too large"),
        "deep": ("[" * 100_000 + "]" * 100_000, f"nested more than {MAX_DEPTH} levels deep"),
        "NUL": (core_body(body="line\u0000"), "contains a NUL character"),
        "CRLF title": (core_body(title="Own\r\nthe outcome"), "title contains a control"),
        "far end": (core_body(end="9999-12-31"), "end date 9999-12-31 is outside"),
        "long zone": (core_body(tz="A" * 5000), "is too long (at most 64 characters)"),
        "dotted zone": (core_body(tz="../../etc/passwd"), "an IANA name has only"),
        "teams": (
            core_body(audience={"teams": [f"T{i}" for i in range(500)]}),
            f"too many teams: 500 given, at most {MAX_TEAMS}",
        ),
    }
    for name, (text, sentence) in cases.items():
        response = post(client, text)
        assert response.status_code == 422, (name, response.text[:300])
        answer = response.json()  # it parses: the answer is valid JSON
        assert sentence in str(answer), (name, answer)
    assert messages(server.runtime) == before


def test_a_body_of_the_wrong_type_with_nan_still_gets_fastapis_answer(
    server: Server, client: httpx.Client
) -> None:
    """The validation answer itself cannot fail to serialise, whatever the input."""
    from fastapi.exceptions import RequestValidationError

    from cadence.web.app import _printable

    error = RequestValidationError(
        [{"type": "string_type", "loc": ("body", "title"), "msg": "bad", "input": float("nan")}]
    )
    printable = _printable(list(error.errors()))
    assert printable == [{"type": "string_type", "loc": ["body", "title"], "msg": "bad"}]
    wrong = post(client, core_body(title=12))
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "title"]


def test_nul_in_a_url_or_a_form_is_refused_before_any_route(
    server: Server, client: httpx.Client
) -> None:
    for url in ["/dashboard?team=%00", "/inbox/a%00b@example.com", "/api/messages/1%00"]:
        refused = client.get(url)
        assert refused.status_code == 400, url
        assert refused.json()["detail"] == REFUSAL
    with httpx.Client(base_url=server.url) as anonymous:
        form = anonymous.get("/login")
        sign_in = anonymous.post(
            "/login",
            data={"email": "comms@example.com\x00", "password": "x", "csrf": csrf_of(form.text)},
            headers={"Origin": server.url},
        )
    assert sign_in.status_code == 400
    assert sign_in.json()["detail"] == REFUSAL
    # The guard hands every other form on unchanged: signing in still works.
    assert client.get("/dashboard").status_code == 200
