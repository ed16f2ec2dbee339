"""The dashboard over real HTTP: a live uvicorn server, a real database and a real Redis.

Comms users see everything; a leader sees their own reporting tree and nobody else, on the
pages and in every CSV export; nobody sees anything without signing in, and sign-in and
sign-out only work from Cadence's own pages.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from cadence.access.users import create_user
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.directory.audience import Audience
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch
from cadence.planning.followups import WorkingHours
from cadence.runtime import Runtime
from cadence.store.db import session_scope
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    Occurrence,
    OccurrenceStatus,
    Person,
)
from cadence.web.dashboard import CSRF_COOKIE, SESSION_COOKIE
from cadence.web.deps import WebDeps
from tests import factories as f
from tests.test_web import free_port, serve

DUE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
HOURS = WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri")


@dataclass
class Org:
    """head -> lead A (Support/EMEA: a1, a2) and lead B (Sales: b1, b2)."""

    people: dict[str, Person]
    everyone_id: int  # "Own the outcome", to everyone, twice
    sales_id: int  # "Sales push", to lead B's tree only
    launch_id: int  # a launch to everyone
    emails: dict[str, str] = field(default_factory=dict)


def occurrence(session: Session, message: Message, sequence: int, due: datetime) -> Occurrence:
    o = Occurrence(
        message_id=message.id,
        purpose="cadence",
        sequence=sequence,
        zone="UTC",
        local_time=due.replace(tzinfo=None),
        due_at=due,
        status=OccurrenceStatus.DISPATCHED.value,
        dispatched_at=due,
    )
    session.add(o)
    session.flush()
    return o


def delivery(
    session: Session,
    o: Occurrence,
    p: Person,
    sent_at: datetime,
    channel: str = "email",
    payload: dict[str, Any] | None = None,
) -> Delivery:
    d = Delivery(
        occurrence_id=o.id,
        person_id=p.id,
        channel=channel,
        variant=0,
        status=DeliveryStatus.SENT.value,
        attempts=1,
        created_at=o.due_at,
        queued_at=o.due_at,
        sent_at=sent_at,
        content_version=1,
        payload=payload,
    )
    session.add(d)
    session.flush()
    return d


def answer(session: Session, d: Delivery, at: datetime, clarity: int | None = None) -> None:
    session.add(
        Acknowledgement(
            delivery_id=d.id,
            occurrence_id=d.occurrence_id,
            person_id=d.person_id,
            kind="ack",
            clarity=clarity,
            message_version=1,
            via=d.channel,
            counted=True,
            created_at=at,
        )
    )
    session.flush()


def seed(session: Session) -> Org:
    support = f.team(session, "Support")
    emea = f.team(session, "Support/EMEA", support)
    sales = f.team(session, "Sales")
    people: dict[str, Person] = {}
    people["head"] = f.person(session, "head@example.com", team=support)
    people["la"] = f.person(session, "lead.a@example.com", team=emea, manager=people["head"])
    people["a1"] = f.person(session, "ann@example.com", team=emea, manager=people["la"])
    people["a2"] = f.person(session, "arno@example.com", team=emea, manager=people["la"])
    people["lb"] = f.person(session, "lead.b@example.com", team=sales, manager=people["head"])
    people["b1"] = f.person(session, "bea@example.com", team=sales, manager=people["lb"])
    people["b2"] = f.person(session, "bob@example.com", team=sales, manager=people["lb"])

    everyone = f.core_message(session, title="Own the outcome")
    sales_push = f.core_message(
        session,
        title="Sales push",
        audience=Audience(trees=("lead.b@example.com",)),
        start=datetime(2026, 3, 3, 9, 0),
    )
    slack = {"a1", "b1"}
    first = occurrence(session, everyone, 0, DUE)
    sent = {
        k: delivery(session, first, p, DUE, "slack" if k in slack else "email")
        for k, p in people.items()
    }
    for k, minutes in (("la", 30), ("a1", 90), ("lb", 10), ("b1", 200), ("b2", 45)):
        answer(session, sent[k], DUE + timedelta(minutes=minutes), clarity=9)
    second = occurrence(session, everyone, 1, DUE + timedelta(days=7))
    again = {k: delivery(session, second, p, DUE + timedelta(days=7)) for k, p in people.items()}
    answer(session, again["a1"], DUE + timedelta(days=7, hours=2))

    push = occurrence(session, sales_push, 0, DUE + timedelta(days=1))
    pushed = {k: delivery(session, push, people[k], push.due_at) for k in ("lb", "b1", "b2")}
    answer(session, pushed["b1"], push.due_at + timedelta(hours=1))

    ctx = LaunchContext("UTC", 300.0, HOURS)
    launch = add_launch(
        session,
        LaunchSpec(
            title="Same-day refunds",
            body="Refunds under 50 EUR are approved at once.",
            customer_copy="Refunds now arrive the same day.",
            customer_at=datetime(2026, 3, 13, 12, 0, tzinfo=UTC),
            customer_zone="UTC",
            audience=Audience(everyone=True),
            channels=["log"],
        ),
        datetime(2026, 3, 9, 8, 0, tzinfo=UTC),
        ctx,
    )
    root = session.query(Occurrence).filter_by(message_id=launch.id, purpose="launch").one()
    briefed = delivery(
        session,
        root,
        people["la"],
        datetime(2026, 3, 11, 9, 0, tzinfo=UTC),
        "log",
        {"briefing": True, "release": "briefing"},
    )
    answer(session, briefed, datetime(2026, 3, 11, 10, 0, tzinfo=UTC))
    delivery(
        session,
        root,
        people["a1"],
        datetime(2026, 3, 11, 10, 0, tzinfo=UTC),
        "log",
        {"briefing": False, "release": "briefed by leader"},
    )
    session.commit()
    return Org(people, everyone.id, sales_push.id, launch.id)


@dataclass
class Live:
    url: str
    settings: Settings
    runtime: Runtime
    org: Org

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)


def add_users(runtime: Runtime) -> None:
    with session_scope(runtime.sessions) as session:
        create_user(session, "comms@example.com", "comms", PASSWORD, NOW)
        create_user(session, "lead.a@example.com", "leader", PASSWORD, NOW)
        create_user(
            session,
            "b.boss@example.com",
            "leader",
            PASSWORD,
            NOW,
            person_email="lead.b@example.com",
        )


@contextmanager
def start(
    settings: Settings, runtime: Runtime, session: Session, zone: str = "UTC"
) -> Iterator[Live]:
    org = seed(session)
    add_users(runtime)
    port = free_port()
    web_settings = settings.model_copy(
        update={"base_url": f"http://127.0.0.1:{port}", "timezone": zone}
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
        yield Live(url, web_settings, runtime, org)


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        yield running


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


@contextmanager
def sign_in(live: Live, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A client signed in through the form, as a browser would."""
    with live.client() as client:
        form = client.get("/login")
        assert form.status_code == 200, form.text
        done = client.post(
            "/login",
            data={"email": email, "password": password, "csrf": csrf_of(form.text)},
            headers={"Origin": live.url},
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/dashboard"
        yield client


def figure(html: str, key: str) -> str:
    found = re.search(rf'data-figure="{key}">([^<]*)<', html)
    assert found, f"no {key} on the page"
    return found.group(1)


def parse_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="cadence-')
    return list(csv.DictReader(io.StringIO(response.text)))


# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/dashboard", "/dashboard/teams", "/dashboard/messages/1", "/dashboard/launches/3"],
)
def test_every_page_needs_a_sign_in(live: Live, path: str) -> None:
    with live.client() as client:
        page = client.get(path + "?format=csv")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")
    assert "Own the outcome" not in page.text


def test_sign_in_then_the_overview_shows_everything_to_comms(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
        assert cookie.has_nonstandard_attr("HttpOnly")
        page = client.get("/dashboard")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Own the outcome" in html and "Sales push" in html and "Same-day refunds" in html
    # Own the outcome: 7 + 7 sent; Sales push: 3; the launch: 2.
    assert figure(html, "sent") == "19"
    assert "<svg" in html and "<script" not in html.lower()
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src 'self' data:" in csp
    assert "script-src" not in csp
    assert page.headers["cache-control"] == "no-store"


def test_session_cookie_attributes(live: Live) -> None:
    with live.client() as client:
        form = client.get("/login")
        assert "httponly" in form.headers["set-cookie"].lower()
        assert "samesite=strict" in form.headers["set-cookie"].lower()
        done = client.post(
            "/login",
            data={"email": "comms@example.com", "password": PASSWORD, "csrf": csrf_of(form.text)},
        )
    cookie = done.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "max-age=28800" in cookie
    assert "secure" not in cookie  # the base URL is http here


def test_a_wrong_password_or_unknown_email_is_refused_alike(live: Live) -> None:
    with live.client() as client:
        for email, password in (
            ("comms@example.com", "not the password at all"),
            ("nobody@example.com", PASSWORD),
        ):
            form = client.get("/login")
            refused = client.post(
                "/login",
                data={"email": email, "password": password, "csrf": csrf_of(form.text)},
                headers={"Origin": live.url},
            )
            assert refused.status_code == 401
            assert "do not match an active account" in refused.text
            assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
        assert client.get("/dashboard").status_code == 303


def test_repeated_failures_are_throttled(live: Live) -> None:
    with live.client() as client:
        csrf = csrf_of(client.get("/login").text)
        data = {"email": "comms@example.com", "password": "wrong password!!", "csrf": csrf}
        codes = [client.post("/login", data=data).status_code for _ in range(6)]
        right = client.post("/login", data={**data, "password": PASSWORD})
    assert codes == [401] * 5 + [429]
    assert right.status_code == 429 and "Too many failed sign-ins" in right.text


def test_cross_site_posts_to_login_and_logout_are_refused(live: Live) -> None:
    with live.client() as client:
        csrf = csrf_of(client.get("/login").text)
        good = {"email": "comms@example.com", "password": PASSWORD, "csrf": csrf}
        foreign = client.post("/login", data=good, headers={"Origin": "https://evil.example"})
        fetched = client.post("/login", data=good, headers={"Sec-Fetch-Site": "cross-site"})
        wrong = client.post("/login", data={**good, "csrf": "0" * 64})
    with live.client() as stranger:  # a page elsewhere: no CSRF cookie, so no match
        no_cookie = stranger.post("/login", data=good)
    for refused in (foreign, fetched, wrong, no_cookie):
        assert refused.status_code == 403, refused.text
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")

    with sign_in(live, "comms@example.com") as client:
        page = client.get("/dashboard")
        logout_csrf = csrf_of(page.text)
        cross = client.post(
            "/logout", data={"csrf": logout_csrf}, headers={"Origin": "https://evil.example"}
        )
        forged = client.post("/logout", data={"csrf": "f" * 64})
        assert cross.status_code == 403 and forged.status_code == 403
        assert client.get("/dashboard").status_code == 200  # still signed in
        out = client.post("/logout", data={"csrf": logout_csrf}, headers={"Origin": live.url})
        assert out.status_code == 303 and out.headers["location"] == "/login?signed_out=1"
        assert client.get("/dashboard").status_code == 303


def test_a_leader_sees_only_their_tree(live: Live) -> None:
    with sign_in(live, "lead.a@example.com") as client:
        page = client.get("/dashboard")
        assert page.status_code == 200
        # Lead A's tree: lead A, Ann and Arno; twice "Own the outcome", and the launch.
        assert figure(page.text, "sent") == "8"
        assert "Own the outcome" in page.text and "Sales push" not in page.text
        assert client.get(f"/dashboard/messages/{live.org.everyone_id}").status_code == 200
        other = client.get(f"/dashboard/messages/{live.org.sales_id}")
        assert other.status_code == 404 and "Not found" in other.text
        assert "Sales push" not in other.text
        missing = client.get("/dashboard/messages/9999")
        assert missing.status_code == 404

        exported = parse_csv(
            client.get(
                f"/dashboard/messages/{live.org.everyone_id}",
                params={"format": "csv", "table": "not_acknowledged"},
            )
        )
        assert [r["person"] for r in exported] == ["arno@example.com", "lead.a@example.com"]
        teams = client.get("/dashboard/teams")
        assert "Support/EMEA" in teams.text and "Sales" not in teams.text
        heat = parse_csv(
            client.get("/dashboard/teams", params={"format": "csv", "table": "heatmap"})
        )
        assert {r["team"] for r in heat} == {"Support/EMEA"}
        launch = client.get(f"/dashboard/launches/{live.org.launch_id}")
        assert launch.status_code == 200
        releases = parse_csv(
            client.get(f"/dashboard/launches/{live.org.launch_id}", params={"format": "csv"})
        )
        assert {r["person"] for r in releases} == {
            "lead.a@example.com",
            "ann@example.com",
            "arno@example.com",
        }
        for html in (page.text, teams.text, launch.text):
            for outsider in ("bea@example.com", "bob@example.com", "head@example.com"):
                assert outsider not in html

    with sign_in(live, "b.boss@example.com") as client:
        own = client.get(f"/dashboard/messages/{live.org.sales_id}")
        assert own.status_code == 200 and "Sales push" in own.text
        assert "ann@example.com" not in own.text


def test_comms_csv_export_of_every_table(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        messages = parse_csv(client.get("/dashboard", params={"format": "csv"}))
        by_title = {r["title"]: r for r in messages}
        assert by_title["Own the outcome"]["sent"] == "14"
        assert by_title["Own the outcome"]["acknowledged"] == "6"
        assert by_title["Sales push"]["ack_rate"] == "0.3333"
        launches = parse_csv(client.get("/dashboard?format=csv&table=launches"))
        assert [r["title"] for r in launches] == ["Same-day refunds"]
        waiting = parse_csv(
            client.get(
                f"/dashboard/messages/{live.org.everyone_id}?format=csv&table=not_acknowledged"
            )
        )
        assert len(waiting) == 6  # all but Ann, the one who answered the latest
        occurrences = parse_csv(
            client.get(f"/dashboard/messages/{live.org.everyone_id}?format=csv&table=occurrences")
        )
        assert [(r["repetition"], r["sent"], r["acknowledged"]) for r in occurrences] == [
            ("2", "7", "1"),
            ("1", "7", "5"),
        ]
        assert occurrences[0]["due_at"] == "2026-03-09T09:00:00+00:00"
        teams = parse_csv(client.get("/dashboard/teams?format=csv&table=teams"))
        assert {r["team"] for r in teams} == {"Support", "Support/EMEA", "Sales"}
        leaders = parse_csv(client.get("/dashboard/teams?format=csv&table=leaders"))
        assert [r["leader"] for r in leaders] == ["lead.a@example.com"]
        unknown = client.get("/dashboard?format=csv&table=nope")
        assert unknown.status_code == 404


def test_filters_narrow_the_figures(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        week_one = client.get("/dashboard", params={"since": "2026-03-02", "until": "2026-03-08"})
        assert figure(week_one.text, "sent") == "10"  # first occurrence and the sales push
        assert 'value="2026-03-02"' in week_one.text
        slack = client.get("/dashboard", params={"channel": "slack"})
        assert figure(slack.text, "sent") == "2"
        assert figure(slack.text, "ack_rate") == "100%"
        team = client.get("/dashboard", params={"team": "Sales"})
        assert figure(team.text, "sent") == "9"
        one = client.get("/dashboard", params={"message": str(live.org.sales_id)})
        assert figure(one.text, "sent") == "3"
        bad = client.get("/dashboard", params={"since": "March", "team": "Nowhere"})
        assert bad.status_code == 200
        assert "is not a date" in bad.text and "No team" in bad.text
        assert figure(bad.text, "sent") == "19"
        csv_rows = parse_csv(client.get("/dashboard", params={"channel": "slack", "format": "csv"}))
        assert [r["title"] for r in csv_rows] == ["Own the outcome"]


def test_message_and_launch_pages(live: Live) -> None:
    with sign_in(live, "comms@example.com") as client:
        page = client.get(f"/dashboard/messages/{live.org.everyone_id}")
        assert page.status_code == 200
        html = page.text
        assert "How fast people acknowledged" in html and "<svg" in html
        assert "Not acknowledged yet" in html and "arno@example.com" in html
        assert "9 Mar, 09:00" in html  # the second occurrence, in the org zone
        launch = client.get(f"/dashboard/launches/{live.org.launch_id}")
        assert launch.status_code == 200
        assert "Same-day refunds" in launch.text and "Reached before customers" in launch.text
        assert client.get(f"/dashboard/launches/{live.org.everyone_id}").status_code == 404


def test_next_only_leads_inside_the_dashboard(live: Live) -> None:
    with live.client() as client:
        redirect = client.get("/dashboard/teams?team=Sales")
        assert redirect.headers["location"] == "/login?next=%2Fdashboard%2Fteams%3Fteam%3DSales"
        form = client.get(redirect.headers["location"])
        assert 'name="next" value="/dashboard/teams?team=Sales"' in form.text
        csrf = csrf_of(form.text)
        for target, expected in (
            ("/dashboard/teams?team=Sales", "/dashboard/teams?team=Sales"),
            ("https://evil.example/dashboard", "/dashboard"),
            ("//evil.example/dashboard", "/dashboard"),
        ):
            client.cookies.delete(SESSION_COOKIE)
            done = client.post(
                "/login",
                data={
                    "email": "comms@example.com",
                    "password": PASSWORD,
                    "csrf": csrf,
                    "next": target,
                },
            )
            assert done.headers["location"] == expected
    assert CSRF_COOKIE


def test_times_and_date_filters_follow_the_organisations_zone(
    settings: Settings, runtime: Runtime, session: Session
) -> None:
    with (
        start(settings, runtime, session, "America/New_York") as running,
        sign_in(running, "comms@example.com") as client,
    ):
        page = client.get(f"/dashboard/messages/{running.org.everyone_id}")
        assert "9 Mar, 05:00" in page.text  # 09:00 UTC, the day after clocks went forward
        assert "Times are shown in America/New_York" in page.text
        rows = parse_csv(
            client.get(
                f"/dashboard/messages/{running.org.everyone_id}?format=csv&table=occurrences"
            )
        )
        assert rows[0]["due_at"] == "2026-03-09T05:00:00-04:00"
        assert rows[1]["due_at"] == "2026-03-02T04:00:00-05:00"
        # "Until 8 March" ends at midnight in New York: 04:00 UTC on the 9th, before the
        # second occurrence; "from 9 March" starts there.
        first = client.get("/dashboard", params={"until": "2026-03-08"})
        assert figure(first.text, "sent") == "10"
        second = client.get("/dashboard", params={"since": "2026-03-09"})
        assert figure(second.text, "sent") == "9"


def test_a_long_table_shows_its_first_rows_and_the_csv_has_them_all(
    live: Live, session: Session
) -> None:
    message = f.core_message(session, title="Say sorry once")
    first = occurrence(session, message, 0, DUE)
    for i in range(205):
        delivery(session, first, f.person(session, f"agent{i:03d}@example.com"), DUE)
    session.commit()
    with sign_in(live, "comms@example.com") as client:
        page = client.get(f"/dashboard/messages/{message.id}")
        assert page.status_code == 200
        table = page.text.split('id="not_acknowledged"', 1)[1].split("</section>", 1)[0]
        assert table.count("agent") == 200
        assert "Showing the first 200 of 205 rows" in table
        waiting = parse_csv(
            client.get(f"/dashboard/messages/{message.id}?format=csv&table=not_acknowledged")
        )
        assert len(waiting) == 205


def test_a_core_message_shows_how_often_people_received_it(live: Live) -> None:
    path = f"/dashboard/messages/{live.org.everyone_id}"
    with sign_in(live, "comms@example.com") as client:
        page = client.get(path)
        assert "How often people received it" in page.text
        assert "2 repetitions in this period; 7 of 7 people (100%) received every one." in page.text
        rows = parse_csv(client.get(path, params={"format": "csv", "table": "repetition"}))
        assert len(rows) == 7 and {r["received"] for r in rows} == {"2"}
        ann = next(r for r in rows if r["person"] == "ann@example.com")
        assert ann["acknowledged"] == "2"
        first_week = client.get(path, params={"until": "2026-03-08"})
        assert "1 repetition in this period; 7 of 7 people (100%)" in first_week.text
        launch = client.get(f"/dashboard/messages/{live.org.launch_id}")
        assert "How often people received it" not in launch.text  # a launch goes out once
    with sign_in(live, "lead.a@example.com") as client:
        mine = parse_csv(client.get(path, params={"format": "csv", "table": "repetition"}))
        assert {r["person"] for r in mine} == {
            "lead.a@example.com",
            "ann@example.com",
            "arno@example.com",
        }
