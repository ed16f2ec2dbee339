"""Breakdowns by team and manager roll up: every row is the figure of the matching filter.

A property test over random team trees, reporting trees, audiences and answers, the
reported case (a head of Support above two sub-teams, a CEO above everyone) through the
CLI, the dashboard's teams table and heatmap over HTTP, and the one label for "no team".
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cadence.config import Settings
from cadence.figures import summaries
from cadence.figures.measures import FIGURE_COLUMNS, Filters, breakdown, heatmap, overview
from cadence.runtime import Runtime
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    FigureChange,
    FigureHistogram,
    Message,
    Occurrence,
    OccurrenceFigures,
    Person,
    PersonOccurrence,
    Team,
)
from tests import factories as f
from tests.conftest import CliResult
from tests.test_dashboard import NOW as DASHBOARD_NOW
from tests.test_dashboard import Live, parse_csv, sign_in, start
from tests.test_figures import answer, deliver, occurrence

NOW = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)
DUE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def headline(found: dict[str, Any]) -> dict[str, Any]:
    return {c: found[c] for c in FIGURE_COLUMNS}


def _clear(session: Session) -> None:
    """Everything but the messages, so that each example starts from an empty directory."""
    for model in (Acknowledgement, Delivery, PersonOccurrence, OccurrenceFigures):
        session.execute(delete(model))
    session.execute(delete(FigureHistogram))
    session.execute(delete(Occurrence))
    session.execute(update(Person).values(manager_id=None))
    session.execute(delete(Person))
    session.execute(update(Team).values(parent_id=None))
    session.execute(delete(Team))
    session.execute(delete(FigureChange))
    session.flush()


def _messages(session: Session) -> list[Message]:
    found = list(session.scalars(select(Message).order_by(Message.id)))
    if not found:
        found = [f.core_message(session, title=t) for t in ("First", "Second")]
    return found


# A directory: each team's parent is an earlier team (or none), each person's manager an
# earlier person (or none), so neither tree has a cycle.
directories = st.integers(min_value=1, max_value=5).flatmap(
    lambda n_teams: st.tuples(
        st.tuples(*(st.integers(-1, i - 1) for i in range(n_teams))),
        st.lists(
            st.tuples(st.integers(-1, n_teams - 1), st.integers(-1, 1000)),
            min_size=1,
            max_size=12,
        ),
    )
)
# Per occurrence and person: no delivery, or its status, minutes late and the answer.
sends = st.tuples(
    st.sampled_from(["none", "sent", "sent", "sent", "failed", "cancelled", "pending"]),
    st.integers(0, 40),
    st.sampled_from([None, "ack", "ack", "question"]),
    st.integers(1, 20_000),
    st.one_of(st.none(), st.integers(0, 10)),
)


def _build(
    session: Session,
    directory: tuple[tuple[int, ...], list[tuple[int, int]]],
    plan: list[list[tuple[Any, ...]]],
) -> tuple[list[Team], list[Person]]:
    messages = _messages(session)
    parents, members = directory
    teams: list[Team] = []
    for i, parent in enumerate(parents):
        above = teams[parent] if parent >= 0 else None
        path = f"{above.path}/T{i}" if above else f"T{i}"
        teams.append(f.team(session, path, above))
    people: list[Person] = []
    for i, (team, manager) in enumerate(members):
        boss = people[manager % i] if manager >= 0 and i else None
        people.append(
            f.person(
                session,
                f"p{i}@example.com",
                team=teams[team] if team >= 0 else None,
                manager=boss,
            )
        )
    for k, per_person in enumerate(plan):
        due = DUE + timedelta(days=k)
        o = occurrence(session, messages[k % 2], sequence=k // 2, zone="UTC", due=due)
        for p, (status, late, kind, wait, clarity) in zip(people, per_person, strict=False):
            if status == "none":
                continue
            sent_at = due + timedelta(minutes=late) if status == "sent" else None
            d = deliver(session, o, p, "slack", status, sent_at)
            if kind is not None and sent_at is not None:
                answer(session, d, sent_at + timedelta(seconds=wait), kind=kind, clarity=clarity)
    summaries.catch_up(session)
    session.flush()
    return teams, people


def _check_rows(session: Session, base: Filters, teams: list[Team], people: list[Person]) -> None:
    """Every team and manager row equals the figure of its filter over `base`, and every
    team and leader with anything planned has a row."""
    by_team = {r["team"]: r for r in breakdown(session, "team", base, NOW)}
    for team in teams:
        wanted = (
            overview(session, Filters(**{**base.__dict__, "team": team.path}), NOW)
            if (
                base.team is None or team.path == base.team or team.path.startswith(base.team + "/")
            )
            else None
        )
        if wanted is None:
            assert team.path not in by_team
        elif team.path in by_team:
            assert headline(by_team[team.path]) == headline(wanted), team.path
        elif _tree_root(base, people) is None or any(
            p.team_id == team.id and _below(people, p, _tree_root(base, people) or "")
            for p in people
        ):
            assert wanted["planned"] == 0, team.path
    by_manager = {r["manager"]: r for r in breakdown(session, "manager", base, NOW)}
    leaders = {p.manager_id for p in people if p.manager_id is not None}
    for person in people:
        if person.id not in leaders:
            assert person.email not in by_manager
            continue
        combined = Filters(**{**base.__dict__, "manager_email": person.email})
        root = _tree_root(base, people)
        if root is not None and not _below(people, person, root):
            assert person.email not in by_manager
            continue
        wanted = overview(session, combined, NOW)
        if person.email in by_manager:
            assert headline(by_manager[person.email]) == headline(wanted), person.email
        else:
            assert wanted["planned"] == 0, person.email
    # The heatmap's cells are the team rows per message.
    heat = heatmap(session, base)
    for cell in heat["cells"]:
        if cell["team"] is None:
            continue
        one = Filters(**{**base.__dict__, "team": cell["team"], "message_id": cell["message_id"]})
        wanted = overview(session, one, NOW)
        assert (cell["sent"], cell["acknowledged"]) == (wanted["sent"], wanted["acknowledged"])


def _tree_root(base: Filters, people: list[Person]) -> str | None:
    """The email of the top of the base view's tree, if it has one."""
    if base.manager_email is not None:
        return base.manager_email
    return next((p.email for p in people if p.id == base.scope_person_id), None)


def _below(people: list[Person], person: Person, root_email: str) -> bool:
    """Whether `person` is the person with `root_email` or below them."""
    by_id = {p.id: p for p in people}
    at: Person | None = person
    while at is not None:
        if at.email == root_email:
            return True
        at = by_id.get(at.manager_id) if at.manager_id is not None else None
    return False


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    directory=directories,
    plan=st.lists(st.lists(sends, min_size=12, max_size=12), min_size=1, max_size=3),
    view=st.tuples(st.sampled_from(["all", "team", "manager", "scope"]), st.integers(0, 1000)),
)
def test_every_rolled_up_row_equals_its_filter(
    session: Session,
    directory: tuple[tuple[int, ...], list[tuple[int, int]]],
    plan: list[list[tuple[Any, ...]]],
    view: tuple[str, int],
) -> None:
    _clear(session)
    teams, people = _build(session, directory, plan)
    kind, pick = view
    base = Filters()
    if kind == "team":
        base = Filters(team=teams[pick % len(teams)].path)
    elif kind == "manager":
        base = Filters(manager_email=people[pick % len(people)].email)
    elif kind == "scope":
        base = Filters(scope_person_id=people[pick % len(people)].id)
    _check_rows(session, base, teams, people)
    session.rollback()


# ---------------------------------------------------------------------------------------
# The reported case: Support's head above Support/EMEA and Support/US; the CEO, in no
# team, above everyone.


def _company(session: Session) -> dict[str, Person]:
    support = f.team(session, "Support")
    emea = f.team(session, "Support/EMEA", support)
    us = f.team(session, "Support/US", support)
    sales = f.team(session, "Sales")
    p: dict[str, Person] = {}
    p["ceo"] = f.person(session, "ceo@example.com")
    p["head"] = f.person(session, "head@example.com", team=support, manager=p["ceo"])
    p["vp"] = f.person(session, "vp@example.com", team=sales, manager=p["ceo"])
    p["l1"] = f.person(session, "lead1@example.com", team=emea, manager=p["head"])
    p["l2"] = f.person(session, "lead2@example.com", team=us, manager=p["head"])
    for i in range(3):
        p[f"e{i}"] = f.person(session, f"emea{i}@example.com", team=emea, manager=p["l1"])
        p[f"u{i}"] = f.person(session, f"us{i}@example.com", team=us, manager=p["l2"])
    for i in range(2):
        p[f"s{i}"] = f.person(session, f"sales{i}@example.com", team=sales, manager=p["vp"])
    message = f.core_message(session, title="Own the outcome")
    for k in range(2):
        due = DUE + timedelta(days=7 * k)
        o = occurrence(session, message, sequence=k, zone="UTC", due=due)
        for n, person in enumerate(p.values()):
            d = deliver(session, o, person, "slack", "sent", due + timedelta(minutes=1))
            if n % 2 == 0:
                answer(session, d, due + timedelta(minutes=5 + n))
    summaries.catch_up(session)
    session.commit()
    return p


def test_support_and_the_ceo_cover_their_trees(session: Session) -> None:
    _company(session)
    teams = {r["team"]: r for r in breakdown(session, "team", Filters(), NOW)}
    support = overview(session, Filters(team="Support"), NOW)
    # The head, two leads and six agents, twice: not the head alone.
    assert support["planned"] == 18
    assert headline(teams["Support"]) == headline(support)
    own = {r["team"]: r for r in breakdown(session, "team", Filters(), NOW, own=True)}
    assert own["Support"]["planned"] == 2
    managers = {r["manager"]: r for r in breakdown(session, "manager", Filters(), NOW)}
    everyone = overview(session, Filters(manager_email="ceo@example.com"), NOW)
    assert everyone["planned"] == 26
    assert headline(managers["ceo@example.com"]) == headline(everyone)
    direct = breakdown(session, "manager", Filters(), NOW, own=True)
    assert {r["manager"]: r["planned"] for r in direct}["ceo@example.com"] == 4
    # A leader's view: the head's tree, with no row for the CEO above it.
    scoped = {
        r["manager"]: r["planned"]
        for r in breakdown(
            session,
            "manager",
            Filters(
                scope_person_id=session.scalar(
                    select(Person.id).where(Person.email == "head@example.com")
                )
            ),
            NOW,
        )
    }
    assert scoped == {"head@example.com": 18, "lead1@example.com": 8, "lead2@example.com": 8}


def _json(result: CliResult) -> Any:
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_the_cli_rows_equal_the_filters(session: Session, cli: Callable[..., CliResult]) -> None:
    _company(session)
    by_team = {r["team"]: r for r in _json(cli("report", "--by", "team", "--format", "json"))}
    filtered = _json(cli("report", "--team", "Support", "--format", "json"))
    assert by_team["Support"]["planned"] == filtered["planned"] == 18
    assert headline(by_team["Support"]) == headline(filtered)
    by_manager = {
        r["manager"]: r for r in _json(cli("report", "--by", "manager", "--format", "json"))
    }
    ceo = _json(cli("report", "--manager", "ceo@example.com", "--format", "json"))
    assert by_manager["ceo@example.com"]["planned"] == ceo["planned"] == 26
    own = _json(cli("report", "--by", "team", "--own", "--format", "json"))
    assert {r["team"]: r["planned"] for r in own}["Support"] == 2
    direct = _json(cli("report", "--by", "manager", "--own", "--format", "json"))
    assert {r["manager"]: r["planned"] for r in direct}["ceo@example.com"] == 4
    refused = cli("report", "--by", "message", "--own")
    assert refused.code == 2 and "--own goes with --by team or --by manager" in refused.err


def test_no_team_has_one_label_in_each_output(
    session: Session, cli: Callable[..., CliResult]
) -> None:
    _company(session)
    rows = _json(cli("report", "--by", "team", "--format", "json"))
    # JSON: null, last.
    assert rows[-1]["team"] is None and rows[-1]["planned"] == 2
    table = cli("report", "--by", "team")
    assert table.code == 0 and "(no team)" in table.out and "None" not in table.out
    found = list(csv.DictReader(io.StringIO(cli("report", "--by", "team", "--format", "csv").out)))
    assert found[-1]["team"] == "" and found[-1]["planned"] == "2"
    managers = cli("report", "--by", "manager")
    assert "(no manager)" in managers.out
    manager_rows = _json(cli("report", "--by", "manager", "--format", "json"))
    assert manager_rows[-1]["manager"] is None
    message_id = session.scalar(select(Message.id))
    status = cli("ack-status", str(message_id))
    assert status.code == 0, status.err
    assert "(no team): " in status.out and "None" not in status.out
    status_rows = _json(cli("ack-status", str(message_id), "--format", "json"))
    assert [r["team"] for r in status_rows if r["person"] == "ceo@example.com"] == [None]


# ---------------------------------------------------------------------------------------
# The dashboard: head -> lead A (Support/EMEA: a1, a2) and lead B (Sales: b1, b2).


@pytest.fixture
def live(settings: Settings, runtime: Runtime, session: Session) -> Iterator[Live]:
    with start(settings, runtime, session) as running:
        # Someone in no team, sent the first message once.
        o = session.scalars(
            select(Occurrence).where(Occurrence.message_id == running.org.everyone_id)
        ).first()
        assert o is not None
        loner = f.person(session, "loner@example.com")
        deliver(session, o, loner, "email", "sent", o.due_at)
        session.commit()
        yield running


def test_dashboard_teams_table_and_heatmap_roll_up(live: Live) -> None:
    everyone = live.org.everyone_id
    summaries.refresh(live.runtime.sessions)
    with live.runtime.sessions() as session:
        support = overview(session, Filters(team="Support"), DASHBOARD_NOW)
        emea = overview(session, Filters(team="Support/EMEA"), DASHBOARD_NOW)
        one = overview(session, Filters(team="Support", message_id=everyone), DASHBOARD_NOW)
    with sign_in(live, "comms@example.com") as client:
        teams = {
            r["team"]: r for r in parse_csv(client.get("/dashboard/teams?format=csv&table=teams"))
        }
        # The head with lead A's team, not the head alone.
        assert teams["Support"]["planned"] == str(support["planned"])
        assert int(teams["Support"]["planned"]) > int(teams["Support/EMEA"]["planned"])
        assert teams["Support/EMEA"]["planned"] == str(emea["planned"])
        heat = parse_csv(client.get("/dashboard/teams?format=csv&table=heatmap"))
        cells = {(r["team"], r["message_id"]): r for r in heat}
        assert cells[("Support", str(everyone))]["sent"] == str(one["sent"])
        assert cells[("Support", str(everyone))]["ack_rate"] == str(one["ack_rate"])
        # No team: an empty cell in the CSVs, "(no team)" on the page.
        assert teams[""]["planned"] == "1"
        assert ("", str(everyone)) in cells
        page = client.get("/dashboard/teams")
        assert page.status_code == 200
        assert page.text.count("(no team)") >= 2  # the table's row and the heatmap's
        assert "Each team with its sub-teams." in page.text
