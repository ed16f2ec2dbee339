"""A leader's message is checked against their tree again at every send, and refusals of
names outside the tree say no more than "not in your tree".

Teams are resolved when an occurrence is sent, so a team can gain people outside the
leader's tree after the message was accepted; they must be left out, and counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access import api_tokens
from cadence.access.users import create_user
from cadence.delivery.dispatch import DispatchPolicy, tick
from cadence.directory.audience import Audience
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch
from cadence.launches.release import release_due
from cadence.messages import approvals
from cadence.planning.followups import WorkingHours
from cadence.runtime import Runtime
from cadence.store.models import Delivery, Occurrence, Person, Team, User
from tests import factories as f
from tests.conftest import CliResult
from tests.test_api import Api, api  # noqa: F401  (the live API server fixture)
from tests.test_dashboard import PASSWORD, csrf_of

Cli = Callable[..., CliResult]
MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = DispatchPolicy(
    org_zone="UTC",
    horizon=timedelta(days=14),
    batch_size=50,
    stuck_after=timedelta(minutes=5),
    max_lateness=timedelta(hours=12),
)


def seed(session: Session) -> None:
    """ceo -> lead A (Support: a1, and Sam, once in Support but inactive) and lead B
    (Sales: b1, b2); a comms user and a leader user for lead A."""
    support, sales = f.team(session, "Support"), f.team(session, "Sales")
    ceo = f.person(session, "ceo@example.com")
    lead_a = f.person(session, "lead.a@example.com", team=support, manager=ceo)
    f.person(session, "a1@example.com", team=support, manager=lead_a)
    lead_b = f.person(session, "lead.b@example.com", team=sales, manager=ceo)
    f.person(session, "b1@example.com", team=sales, manager=lead_b)
    f.person(session, "b2@example.com", team=sales, manager=lead_b)
    sam = f.person(session, "sam@example.com", team=support, manager=lead_b)
    sam.active = False
    session.flush()
    create_user(session, "comms@example.com", "comms", PASSWORD, f.T0)
    create_user(session, "lead.a@example.com", "leader", PASSWORD, f.T0)
    session.commit()


@contextmanager
def signed_in(url: str, email: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=20) as client:
        form = client.get("/login")
        done = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf": csrf_of(form.text)},
            headers={"Origin": url},
        )
        assert done.status_code == 303, done.text
        yield client


def add_to_support(cli: Cli, as_user: str) -> int:
    added = cli(
        "message", "add", "--title", "Own the outcome", "--body", "Fix the problem.",
        "--team", "Support", "--rrule", "FREQ=WEEKLY;BYDAY=MO", "--start", "2026-03-02",
        "--at", "09:00", "--tz", "UTC", "--as", as_user, "--format", "json",
    )  # fmt: skip
    assert added.code == 0, added.err
    return int(json.loads(added.out)[0]["id"])


def recipients(runtime: Runtime, message_id: int) -> tuple[set[str], int]:
    with runtime.sessions() as session:
        emails = set(
            session.scalars(
                select(Person.email)
                .join(Delivery, Delivery.person_id == Person.id)
                .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
                .where(Occurrence.message_id == message_id, Occurrence.purpose == "cadence")
            )
        )
        left_out = session.scalar(
            select(Occurrence.outside_tree).where(
                Occurrence.message_id == message_id, Occurrence.sequence == 0
            )
        )
    return emails, int(left_out or 0)


def test_people_put_in_a_leaders_team_later_are_left_out_and_counted(
    cli: Cli,
    api: Api,  # noqa: F811
    runtime: Runtime,
    session: Session,
) -> None:
    seed(session)
    by_leader = add_to_support(cli, "lead.a@example.com")
    by_comms = add_to_support(cli, "comms@example.com")
    # After both were accepted, b1 (lead B's report) joins Support and Sam, also lead B's,
    # is reactivated there: neither is in lead A's tree.
    support = session.scalars(select(Team).where(Team.path == "Support")).one()
    people = {p.email: p for p in session.scalars(select(Person))}
    people["b1@example.com"].team_id = support.id
    people["sam@example.com"].active = True
    session.commit()

    tick(runtime.sessions, POLICY, lambda ids: None, MONDAY_9)

    leader_got, leader_left_out = recipients(runtime, by_leader)
    comms_got, comms_left_out = recipients(runtime, by_comms)
    assert leader_got == {"lead.a@example.com", "a1@example.com"}
    assert leader_left_out == 2
    assert comms_got == leader_got | {"b1@example.com", "sam@example.com"}
    assert comms_left_out == 0
    shown = json.loads(cli("message", "show", str(by_leader), "--format", "json").out)
    assert shown["left_out"] == 2
    table = cli("message", "show", str(by_leader)).out
    assert "left_out: 2" in table

    tokens = {}
    for user in session.scalars(select(User)):
        tokens[user.email] = api_tokens.create_token(session, user, "tests", f.T0)[1]
    session.commit()
    as_json = {}
    for email, token in tokens.items():
        bearer = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=api.url, headers=bearer) as client:
            as_json[email] = client.get(f"/api/messages/{by_leader}").json()
    assert as_json["comms@example.com"]["outside_tree"] == 2
    # The leader is told nothing of how many outside their tree their team holds.
    assert as_json["lead.a@example.com"]["outside_tree"] is None
    assert as_json["lead.a@example.com"]["audience"]["description"] == "2 people in your tree"
    page = {}
    for email in tokens:
        with signed_in(api.url, email) as client:
            page[email] = client.get(f"/dashboard/messages/{by_leader}").text
    assert re.search(r'data-figure="outside_tree">2 people left out', page["comms@example.com"])
    assert 'data-figure="outside_tree"' not in page["lead.a@example.com"]


def test_one_person_moved_in_is_counted_once(cli: Cli, runtime: Runtime, session: Session) -> None:
    seed(session)
    by_leader = add_to_support(cli, "lead.a@example.com")
    support = session.scalars(select(Team).where(Team.path == "Support")).one()
    moved = session.scalars(select(Person).where(Person.email == "b2@example.com")).one()
    moved.team_id = support.id
    session.commit()
    tick(runtime.sessions, POLICY, lambda ids: None, MONDAY_9)
    got, left_out = recipients(runtime, by_leader)
    assert "b2@example.com" not in got and left_out == 1


def test_refusals_name_no_head_count_or_member_of_another_tree(
    cli: Cli,
    api: Api,  # noqa: F811
    session: Session,
) -> None:
    seed(session)
    leader = session.scalars(select(User).where(User.email == "lead.a@example.com")).one()
    token = api_tokens.create_token(session, leader, "tests", f.T0)[1]
    session.commit()
    body = {
        "title": "Probe",
        "body": "Probe.",
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "start": "2026-03-02",
        "at": "09:00",
    }
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as client:
        by_api = [
            client.post("/api/messages", json={**body, "audience": audience})
            for audience in (
                {"teams": ["Sales"]},
                {"people": ["b1@example.com"]},
                {"trees": ["lead.b@example.com"]},
                {"people": ["nobody@example.com"]},
            )
        ]
    by_cli = [
        cli("message", "add", "--title", "Probe", "--body", "Probe.", *target,
            "--rrule", "FREQ=WEEKLY;BYDAY=MO", "--start", "2026-03-02", "--at", "09:00",
            "--as", "lead.a@example.com")
        for target in (("--team", "Sales"), ("--person", "b1@example.com"))
    ]  # fmt: skip
    assert [r.status_code for r in by_api] == [403, 403, 403, 403]
    problems = [r.json()["problems"] for r in by_api]
    assert problems == [
        ["team 'Sales': not in your tree"],
        ["person b1@example.com: not in your tree"],
        ["tree of lead.b@example.com: not in your tree"],
        # Unknown or elsewhere: the same answer, so an email cannot be probed.
        ["person nobody@example.com: not in your tree"],
    ]
    assert [r.code for r in by_cli] == [2, 2]
    assert "team 'Sales': not in your tree" in by_cli[0].err
    assert "person b1@example.com: not in your tree" in by_cli[1].err
    said = " ".join([*(r.text for r in by_api), *(r.err for r in by_cli)])
    assert not re.search(r"\d+ (person|people)", said)
    for other in ("b2@example.com", "Lead.B", "B1", "B2"):
        assert other not in said


def test_a_leaders_launch_leaves_out_who_joined_their_team_from_another_tree(
    runtime: Runtime, session: Session
) -> None:
    seed(session)
    ctx = LaunchContext("UTC", 300.0, WorkingHours.parse("00:00", "23:59", "mon,tue,wed,thu,fri"))
    customer_at = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # a Friday
    spec = LaunchSpec(
        title="Same-day refunds",
        body="Refunds are approved at once.",
        customer_copy="Refunds now arrive the same day.",
        customer_at=customer_at,
        customer_zone="UTC",
        audience=Audience(teams=("Support",)),
        channels=["log"],
    )
    leader = session.scalars(select(User).where(User.email == "lead.a@example.com")).one()
    launch = add_launch(session, spec, MONDAY_9, ctx)
    approvals.submit(session, launch, leader, MONDAY_9)
    support = session.scalars(select(Team).where(Team.path == "Support")).one()
    moved = session.scalars(select(Person).where(Person.email == "b1@example.com")).one()
    moved.team_id = support.id
    session.commit()

    # At the guard everyone still without it is sent it at once: still only the tree.
    release_due(runtime.sessions, customer_at - timedelta(hours=1), ctx)

    with runtime.sessions() as s:
        got = set(
            s.scalars(
                select(Person.email)
                .join(Delivery, Delivery.person_id == Person.id)
                .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
                .where(Occurrence.message_id == launch.id, Occurrence.purpose == "launch")
            )
        )
        left_out = s.scalar(
            select(Occurrence.outside_tree).where(
                Occurrence.message_id == launch.id, Occurrence.purpose == "launch"
            )
        )
    assert got == {"lead.a@example.com", "a1@example.com"}
    assert left_out == 1
