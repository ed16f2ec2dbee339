"""The JSON API over real HTTP: a live uvicorn server, a real database and a real Redis.

The API must refuse what the CLI refuses, with the same lines; keep each leader inside
their own reporting tree; and, with approval on, keep a leader's message away from the
dispatcher until a comms user approves it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.access import api_tokens
from cadence.config import Settings
from cadence.delivery.broker import redis_client
from cadence.delivery.dispatch import DispatchPolicy, tick
from cadence.runtime import Runtime
from cadence.store.models import Delivery, Message, Occurrence, Person, User
from cadence.web.deps import WebDeps
from tests import factories as f
from tests.conftest import CliResult
from tests.test_web import free_port, serve

# A Sunday noon; core messages below start on the Monday.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = DispatchPolicy(
    org_zone="UTC",
    horizon=timedelta(days=14),
    batch_size=50,
    stuck_after=timedelta(minutes=5),
    max_lateness=timedelta(hours=12),
)

Cli = Callable[..., CliResult]


class Clock:
    """The app's clock, moved by tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Org:
    """ceo -> lead_a (Support: a1 in New York, a2) and lead_b (Sales: b1); three users."""

    people: dict[str, Person]
    comms: str  # bearer tokens
    lead_a: str
    lead_b: str
    lead_b_user_id: int


@dataclass
class Api:
    url: str
    clock: Clock
    runtime: Runtime

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)

    def messages(self) -> list[Message]:
        with self.runtime.sessions() as session:
            return list(session.scalars(select(Message).order_by(Message.id)))

    def occurrences(self, message_id: int) -> int:
        with self.runtime.sessions() as session:
            stmt = select(func.count()).select_from(Occurrence)
            return int(session.scalar(stmt.where(Occurrence.message_id == message_id)) or 0)


@pytest.fixture
def api(settings: Settings, runtime: Runtime) -> Iterator[Api]:
    port = free_port()
    clock = Clock(NOW)
    assert settings.redis_url is not None
    deps = WebDeps(
        settings=settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"}),
        sessions=runtime.sessions,
        redis=redis_client(settings.redis_url),
        send_task=lambda name, args: None,
        clock=clock,
    )
    with serve(deps, port) as url:
        yield Api(url, clock, runtime)


def user(session: Session, email: str, role: str, person: Person | None = None) -> User:
    row = User(email=email, role=role, person_id=person.id if person else None, active=True,
               created_at=f.T0)  # fmt: skip
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def org(session: Session) -> Org:
    support, sales = f.team(session, "Support"), f.team(session, "Sales")
    p: dict[str, Person] = {}
    p["ceo"] = f.person(session, "ceo@example.com")
    p["lead_a"] = f.person(session, "lead_a@example.com", team=support, manager=p["ceo"])
    p["a1"] = f.person(session, "a1@example.com", team=support, manager=p["lead_a"],
                       timezone="America/New_York")  # fmt: skip
    p["a2"] = f.person(session, "a2@example.com", team=support, manager=p["lead_a"])
    p["lead_b"] = f.person(session, "lead_b@example.com", team=sales, manager=p["ceo"])
    p["b1"] = f.person(session, "b1@example.com", team=sales, manager=p["lead_b"])
    tokens = {}
    for email, role, person in [
        ("comms@example.com", "comms", None),
        ("lead_a@example.com", "leader", p["lead_a"]),
        ("lead_b@example.com", "leader", p["lead_b"]),
    ]:
        row = user(session, email, role, person)
        tokens[email] = api_tokens.create_token(session, row, "tests", f.T0)[1]
    lead_b_id = session.scalars(select(User.id).where(User.email == "lead_b@example.com")).one()
    session.commit()
    return Org(p, tokens["comms@example.com"], tokens["lead_a@example.com"],
               tokens["lead_b@example.com"], lead_b_id)  # fmt: skip


def core(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Own the outcome",
        "body": "We fix the customer's problem, {{ person.first_name }}.",
        "variants": ["A closed ticket is not the goal."],
        "audience": {"teams": ["Support"]},
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "start": "2026-03-02",
        "at": "09:00",
        "channels": ["log"],
    }
    body.update(overrides)
    return body


def launch(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Same-day refunds",
        "body": "From Friday, refunds under 50 EUR are approved at once.",
        "customer_copy": "Refunds under 50 EUR now arrive the same day.",
        "customer_at": "2026-03-13T12:00",
        "tz": "Europe/London",
        "audience": {"trees": ["lead_a@example.com"]},
        "channels": ["log"],
    }
    body.update(overrides)
    return body


def test_comms_adds_a_core_message_and_reads_it_back(api: Api, org: Org) -> None:
    with api.client(org.comms) as client:
        created = client.post("/api/messages", json=core(tz="Europe/London", end="2026-06-01"))
        assert created.status_code == 201, created.text
        message = created.json()
        listed = client.get("/api/messages").json()
        shown = client.get(f"/api/messages/{message['id']}").json()
    assert message["status"] == "active"
    assert message["kind"] == "core"
    assert message["created_by"] == "comms@example.com"
    assert message["variants"] == ["A closed ticket is not the goal."]
    assert message["cadence"] == {
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "start": "2026-03-02T09:00",
        "end": "2026-06-01",
        "timezone": "Europe/London",
    }
    assert message["audience"]["description"] == "team Support"
    assert [m["id"] for m in listed] == [message["id"]]
    assert shown == message
    [stored] = api.messages()
    assert (stored.title, stored.created_by_id) == ("Own the outcome", 1)


@pytest.mark.parametrize(
    ("change", "cli_args", "problem"),
    [
        ({"audience": {"teams": ["Nope"]}}, ["--team", "Nope"], "unknown team 'Nope'"),
        (
            {"rrule": "FREQ=SOMETIMES"},
            ["--team", "Support", "--rrule", "FREQ=SOMETIMES"],
            "bad RRULE FREQ=SOMETIMES: unknown frequency",
        ),
        (
            {"body": "Hi {{ ''.__class__ }}"},
            ["--team", "Support", "--body", "Hi {{ ''.__class__ }}"],
            "body: line 1: '__class__' is refused",
        ),
        (
            {"channels": ["pigeon"], "tz": "Mars/Olympus"},
            ["--team", "Support", "--channel", "pigeon", "--tz", "Mars/Olympus"],
            "unknown channel 'pigeon'",
        ),
    ],
)
def test_refused_with_the_same_problems_as_the_cli(
    api: Api, org: Org, cli: Cli, change: dict[str, Any], cli_args: list[str], problem: str
) -> None:
    with api.client(org.comms) as client:
        refused = client.post("/api/messages", json=core(**change))
        previewed = client.post("/api/messages/preview", json=core(**change))
    assert refused.status_code == 422, refused.text
    answer = refused.json()
    assert any(problem in line for line in answer["problems"]), answer
    assert previewed.status_code == 422
    assert previewed.json()["problems"] == answer["problems"]
    base = ["message", "add", "--title", "Own the outcome", "--body", core()["body"],
            "--rrule", "FREQ=WEEKLY;BYDAY=MO", "--start", "2026-03-02", "--at", "09:00",
            "--channel", "log"]  # fmt: skip
    by_cli = cli(*base, *cli_args)
    assert by_cli.code == 2
    assert by_cli.err.splitlines()[1:] == [f"  {line}" for line in answer["problems"]]
    assert api.messages() == []


def test_a_body_of_the_wrong_shape_is_refused_by_the_schema(api: Api, org: Org) -> None:
    with api.client(org.comms) as client:
        missing = client.post("/api/messages", json={"title": "No body"})
        extra = client.post("/api/messages", json=core(colour="blue"))
    assert missing.status_code == 422
    assert {tuple(e["loc"]) for e in missing.json()["detail"]} >= {("body", "body")}
    assert extra.status_code == 422
    assert api.messages() == []


def test_a_leader_addresses_only_their_own_tree(api: Api, org: Org) -> None:
    with api.client(org.lead_a) as lead_a, api.client(org.lead_b) as lead_b:
        own = [
            lead_a.post("/api/messages", json=core(audience=audience))
            for audience in (
                {"trees": ["lead_a@example.com"]},
                {"teams": ["Support"]},
                {"people": ["a1@example.com", "a2@example.com"]},
            )
        ]
        other_tree = lead_a.post(
            "/api/messages", json=core(audience={"trees": ["lead_b@example.com"]})
        )
        everyone = lead_a.post("/api/messages", json=core(audience={"everyone": True}))
        mixed = lead_a.post(
            "/api/messages",
            json=core(
                audience={"teams": ["Sales"], "people": ["b1@example.com", "a1@example.com"]}
            ),
        )
        up_the_tree = lead_a.post(
            "/api/messages", json=core(audience={"trees": ["ceo@example.com"]})
        )
        preview = lead_a.post("/api/messages/preview", json=core(audience={"everyone": True}))
        ids = [r.json()["id"] for r in own]
        b_list = lead_b.get("/api/messages").json()
        b_read = lead_b.get(f"/api/messages/{ids[0]}")
        a_list = lead_a.get("/api/messages").json()
    assert [r.status_code for r in own] == [201, 201, 201]
    assert other_tree.status_code == 403
    assert other_tree.json() == {
        "detail": "the audience reaches outside your reporting tree",
        "problems": ["tree of lead_b@example.com: not in your tree"],
    }
    assert everyone.status_code == 403
    assert everyone.json()["problems"] == ["everyone: not in your tree"]
    assert mixed.status_code == 403
    # What the leader wrote, and no more: no head-count of Sales, no other member of it.
    assert mixed.json()["problems"] == [
        "team 'Sales': not in your tree",
        "person b1@example.com: not in your tree",
    ]
    assert up_the_tree.status_code == 403
    assert preview.status_code == 403
    assert b_list == []
    assert b_read.status_code == 404
    assert b_read.json()["detail"] == f"no message with id {ids[0]}"
    assert [m["id"] for m in a_list] == ids
    assert len(api.messages()) == 3


def test_a_leader_sees_messages_for_their_tree_but_not_the_whole_org(api: Api, org: Org) -> None:
    with api.client(org.comms) as comms, api.client(org.lead_a) as lead_a:
        to_support = comms.post("/api/messages", json=core()).json()
        comms.post("/api/messages", json=core(audience={"everyone": True}))
        comms.post("/api/messages", json=core(audience={"teams": ["Sales"]}))
        seen = lead_a.get("/api/messages").json()
        everything = comms.get("/api/messages").json()
    assert [m["id"] for m in seen] == [to_support["id"]]
    assert len(everything) == 3


def test_a_held_message_is_not_planned_until_approved(api: Api, org: Org) -> None:
    with api.client(org.comms) as comms, api.client(org.lead_a) as lead_a:
        assert comms.get("/api/settings/approval").json() == {"require_approval_for_leaders": False}
        on = {"require_approval_for_leaders": True}
        by_leader = lead_a.put("/api/settings/approval", json=on)
        switched = comms.put("/api/settings/approval", json=on)
        held = lead_a.post("/api/messages", json=core()).json()
        by_comms = comms.post("/api/messages", json=core(title="Not held")).json()
        queue = comms.get("/api/approvals").json()
        own_queue = lead_a.get("/api/approvals").json()
        self_approval = lead_a.post(f"/api/approvals/{held['id']}/approve")
        probing = lead_a.post("/api/approvals/999/approve")

        tick(api.runtime.sessions, POLICY, lambda ids: None, MONDAY_9)
        planned_while_held = api.occurrences(held["id"])
        calendar = comms.get("/api/calendar", params={"days": 2}).json()

        approved = comms.post(f"/api/approvals/{held['id']}/approve")
        again = comms.post(f"/api/approvals/{held['id']}/approve")
        unknown = comms.post("/api/approvals/999/approve")
    assert by_leader.status_code == 403
    assert by_leader.json()["detail"].startswith("only comms users can")
    assert switched.json() == {"require_approval_for_leaders": True}
    assert held["status"] == "awaiting_approval"
    assert by_comms["status"] == "active"
    assert [m["id"] for m in queue] == [held["id"]]
    assert [m["id"] for m in own_queue] == [held["id"]]
    assert self_approval.status_code == 403
    assert probing.status_code == 403  # a leader learns nothing about other ids
    assert planned_while_held == 0
    assert api.occurrences(by_comms["id"]) > 0
    assert {e["message_id"] for e in calendar["events"]} == {by_comms["id"]}

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
    assert approved.json()["approved_by"] == "comms@example.com"
    assert again.status_code == 409
    assert "not awaiting approval" in again.json()["detail"]
    assert unknown.status_code == 404
    tick(api.runtime.sessions, POLICY, lambda ids: None, MONDAY_9)
    assert api.occurrences(held["id"]) > 0


def test_rejecting_cancels_a_held_message(api: Api, org: Org) -> None:
    with api.client(org.comms) as comms, api.client(org.lead_a) as lead_a:
        comms.put("/api/settings/approval", json={"require_approval_for_leaders": True})
        held = lead_a.post("/api/messages", json=core()).json()
        no_reason = comms.post(f"/api/approvals/{held['id']}/reject", json={"reason": " "})
        rejected = comms.post(
            f"/api/approvals/{held['id']}/reject", json={"reason": "Say it in fewer words."}
        )
        queue = comms.get("/api/approvals").json()
    assert no_reason.status_code == 422
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "cancelled"
    assert queue == []
    tick(api.runtime.sessions, POLICY, lambda ids: None, MONDAY_9)
    assert api.occurrences(held["id"]) == 0


def test_a_launch_too_close_to_its_customer_time_is_refused(api: Api, org: Org) -> None:
    with api.client(org.comms) as comms:
        refused = comms.post("/api/launches", json=launch(customer_at="2026-03-01T14:00"))
        accepted = comms.post("/api/launches", json=launch())
        unknown_zone = comms.post("/api/launches", json=launch(tz="Mars/Olympus"))
    assert refused.status_code == 422, refused.text
    answer = refused.json()
    assert answer["detail"] == "launch refused: staff would not all have it before customers"
    assert answer["problems"][0].startswith("tier 1: 1 person would have it after")
    assert "lead_a@example.com (UTC)" in answer["problems"][0]
    assert answer["problems"][-1].startswith("earliest customer time that works: ")
    assert accepted.status_code == 201, accepted.text
    body = accepted.json()
    assert body["kind"] == "launch"
    assert body["launch"]["customer_at"] == "2026-03-13T12:00:00Z"
    assert body["launch"]["customer_zone"] == "Europe/London"
    assert unknown_zone.status_code == 422
    assert "unknown time zone 'Mars/Olympus'" in unknown_zone.json()["detail"]
    assert [m.id for m in api.messages()] == [body["id"]]


def test_a_held_launch_is_checked_again_when_approved(api: Api, org: Org) -> None:
    with api.client(org.comms) as comms, api.client(org.lead_a) as lead_a:
        comms.put("/api/settings/approval", json={"require_approval_for_leaders": True})
        outside = lead_a.post("/api/launches", json=launch(audience={"teams": ["Sales"]}))
        held = lead_a.post("/api/launches", json=launch(customer_at="2026-03-06T12:00")).json()
        # Nothing goes out while it waits, even once its first release is due.
        tick(api.runtime.sessions, POLICY, lambda ids: None, datetime(2026, 3, 4, 9, tzinfo=UTC))
        api.clock.now = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
        late = comms.post(f"/api/approvals/{held['id']}/approve")
        still_held = comms.get(f"/api/messages/{held['id']}").json()
    assert outside.status_code == 403
    assert held["status"] == "awaiting_approval"
    with api.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert late.status_code == 422, late.text
    assert late.json()["detail"].startswith("approval refused: staff would not all have it")
    assert late.json()["problems"]
    assert still_held["status"] == "awaiting_approval"


def test_calendar_lists_upcoming_sends_and_launches(api: Api, org: Org) -> None:
    with api.client(org.comms) as comms, api.client(org.lead_b) as lead_b:
        daily = comms.post("/api/messages", json=core(rrule="FREQ=DAILY")).json()
        calendar = comms.get("/api/calendar", params={"days": 2})
        for_lead_b = lead_b.get("/api/calendar").json()
    assert calendar.status_code == 200
    events = calendar.json()["events"]
    got = [(e["kind"], e["zone"], datetime.fromisoformat(e["at"]), e["recipients"]) for e in events]
    assert got == [
        ("send", "UTC", datetime(2026, 3, 2, 9, 0, tzinfo=UTC), 2),
        ("send", "America/New_York", datetime(2026, 3, 2, 14, 0, tzinfo=UTC), 1),
        ("send", "UTC", datetime(2026, 3, 3, 9, 0, tzinfo=UTC), 2),
    ]
    assert events[1]["at"] == "2026-03-02T09:00:00-05:00"
    assert {e["message_id"] for e in events} == {daily["id"]}
    assert calendar.json()["truncated"] is False
    assert for_lead_b["events"] == []


def test_the_ics_feed_parses_back(api: Api, org: Org) -> None:
    with api.client(org.comms) as comms:
        daily = comms.post("/api/messages", json=core(rrule="FREQ=DAILY")).json()
        launched = comms.post("/api/launches", json=launch()).json()
        events = comms.get("/api/calendar", params={"days": 14}).json()["events"]
    with api.client() as anonymous:
        feed = anonymous.get("/api/calendar.ics", params={"token": org.comms, "days": 14})
        no_token = anonymous.get("/api/calendar.ics")
        bad_token = anonymous.get("/api/calendar.ics", params={"token": "cad_nope"})
    assert feed.status_code == 200, feed.text
    assert feed.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(feed.content)
    vevents = list(calendar.walk("VEVENT"))
    # Fourteen mornings in UTC, thirteen in New York (the last is past the window), a launch.
    assert len(vevents) == len(events) == 14 + 13 + 1
    starts = sorted(v.decoded("dtstart") for v in vevents)
    assert starts == sorted(datetime.fromisoformat(e["at"]) for e in events)
    summaries = {str(v["summary"]) for v in vevents}
    assert summaries == {f"Send: {daily['title']}", f"Customers hear: {launched['title']}"}
    uids = [str(v["uid"]) for v in vevents]
    assert len(set(uids)) == len(uids)
    assert no_token.status_code == 401
    assert bad_token.status_code == 401


def test_preview_shows_the_next_sends_in_each_zone_and_stores_nothing(api: Api, org: Org) -> None:
    with api.client(org.lead_a) as lead_a:
        answer = lead_a.post("/api/messages/preview", params={"count": 3}, json=core())
    assert answer.status_code == 200, answer.text
    zones = {z["zone"]: z for z in answer.json()["zones"]}
    assert set(zones) == {"UTC", "America/New_York"}
    assert zones["America/New_York"]["named"] == ["a1@example.com"]
    assert zones["UTC"]["recipients"] == 2
    assert [s["at"] for s in zones["America/New_York"]["sends"]] == [
        "2026-03-02T09:00:00-05:00",
        "2026-03-09T09:00:00-04:00",
        "2026-03-16T09:00:00-04:00",
    ]
    assert [s["variant"] for s in zones["UTC"]["sends"]] == [0, 1, 0]
    assert api.messages() == []


def test_bad_missing_and_revoked_tokens_are_refused(api: Api, org: Org, runtime: Runtime) -> None:
    with api.client() as anonymous:
        missing = anonymous.get("/api/messages")
    with api.client("cad_not-a-real-token") as forged:
        bad = forged.get("/api/messages")
    with api.client(org.lead_b) as lead_b:
        assert lead_b.get("/api/messages").status_code == 200
        with runtime.sessions() as session:
            disabled_user = session.get(User, org.lead_b_user_id)
            assert disabled_user is not None
            disabled_user.active = False
            session.commit()
        disabled = lead_b.get("/api/messages")
    with api.client(org.lead_a) as lead_a:
        with runtime.sessions() as session:
            for token in api_tokens.list_tokens(session):
                if token.user.email == "lead_a@example.com":
                    api_tokens.revoke(session, token.id)
            session.commit()
        revoked = lead_a.get("/api/messages")
    for answer in (missing, bad, disabled, revoked):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["detail"]
    assert "authentication required" in missing.json()["detail"]


def test_tokens_are_stored_hashed_and_record_their_use(org: Org, runtime: Runtime) -> None:
    with runtime.sessions() as session:
        tokens = api_tokens.list_tokens(session)
        assert all(t.token_hash == api_tokens.hash_token(org.comms) for t in tokens[:1])
        assert all(org.comms not in t.token_hash for t in tokens)
        assert api_tokens.resolve(session, org.comms, NOW) is not None
        assert tokens[0].last_used_at == NOW
        assert api_tokens.resolve(session, "cad_" + org.comms[4:-1], NOW) is None
        assert api_tokens.resolve(session, org.comms[4:], NOW) is None


def test_the_openapi_schema_describes_the_api(api: Api) -> None:
    with api.client() as client:
        schema = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert docs.status_code == 200
    paths = schema["paths"]
    for path, method in [
        ("/api/messages", "post"),
        ("/api/messages", "get"),
        ("/api/messages/{message_id}", "get"),
        ("/api/messages/preview", "post"),
        ("/api/launches", "post"),
        ("/api/approvals", "get"),
        ("/api/approvals/{message_id}/approve", "post"),
        ("/api/approvals/{message_id}/reject", "post"),
        ("/api/settings/approval", "put"),
        ("/api/calendar", "get"),
        ("/api/calendar.ics", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert "text/calendar" in paths["/api/calendar.ics"]["get"]["responses"]["200"]["content"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    message_in = schema["components"]["schemas"]["MessageIn"]["properties"]
    assert "RRULE" in message_in["rrule"]["description"]
    assert "?token=" in paths["/api/calendar.ics"]["get"]["description"]


def test_token_verbs(cli: Cli, session: Session, api: Api) -> None:
    unknown = cli("token", "create", "--user", "nobody@example.com", "--name", "x")
    assert unknown.code == 2
    assert "cadence user add" in unknown.err
    user(session, "comms@example.com", "comms")
    session.commit()
    created = cli("token", "create", "--user", "Comms@Example.com", "--name", "calendar")
    assert created.code == 0, created
    token = created.out.strip()
    assert token.startswith("cad_") and "\n" not in token
    assert "will not be shown again" in created.err
    listed = cli("token", "list", "--format", "json")
    assert token not in listed.out
    assert '"name": "calendar"' in listed.out
    with api.client(token) as client:
        assert client.get("/api/messages").status_code == 200
        assert cli("token", "revoke", "1").code == 0
        assert client.get("/api/messages").status_code == 401
    again = cli("token", "revoke", "1")
    assert again.code == 2 and "already revoked" in again.err
    assert cli("token", "--help").code == 0
