"""`cadence launch preview` tells the truth: the installation's settings, late sends marked
(exit 2), tiers numbered as the dashboard numbers them, and durations for people."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from cadence.cli.processes import DEMO_ENVIRONMENT
from cadence.config import Settings, load_settings
from cadence.delivery.dispatch import tick
from cadence.directory.audience import Audience
from cadence.launches.cascade import LaunchSpec, add_launch, context_from, get_launch, plan
from cadence.runtime import Runtime
from cadence.store.models import Delivery, Message, Person
from cadence.units import duration
from cadence.web.dashboard.views import launch_releases
from cadence.worker import policy_from
from tests import factories as f
from tests.conftest import CliResult

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
CUSTOMERS = MONDAY.replace(hour=22, minute=4)  # customers hear at 22:04 the same day
OFFICE = {"CADENCE_WORK_START": "09:00", "CADENCE_WORK_END": "17:30",
          "CADENCE_WORK_DAYS": "mon,tue,wed,thu,fri"}  # fmt: skip
ROUND_THE_CLOCK = {k: v for k, v in DEMO_ENVIRONMENT.items() if "_WORK_" in k}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (0.04, "0 s"),
        (0.4, "0.4 s"),
        (2.4, "2.4 s"),
        (59.9, "59.9 s"),
        (59.96, "1 min"),  # rounded once: never "60 s"
        (60, "1 min"),
        (200, "3 min 20 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (86_399, "23 h 59 min"),
        (86_400, "1 d"),
        (86_400 + 5 * 3600 + 59, "1 d 5 h"),
        (40 * 86_400, "40 d"),
        (-2.4, "-2.4 s"),
    ],
)
def test_durations_read_as_people_read_them(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def _org(session: Session) -> None:
    """Twelve people in London, three deep: 12 at 300 a minute fan out in 2.4 s."""
    head = f.person(session, "head@example.com", timezone="Europe/London")
    for lead in range(3):
        leader = f.person(session, f"l{lead}@example.com", timezone="Europe/London", manager=head)
        for n in range(8 // 3 + (lead < 8 % 3)):
            f.person(session, f"l{lead}s{n}@example.com", timezone="Europe/London", manager=leader)
    session.commit()


def _launch(
    session: Session, settings: Settings, planned_from: datetime, env: dict[str, str]
) -> int:
    """The demo's launch: customers at 22:04, everyone 7 minutes before, leaders 2 minutes."""
    spec = LaunchSpec(
        title="Same-day refunds", body="Refunds are faster.",
        customer_copy="Refunds arrive the same day.", customer_at=CUSTOMERS,
        customer_zone="Europe/London", audience=Audience(everyone=True), channels=["log"],
        lead_hours=0.1, leader_lead_hours=2 / 60, margin_minutes=1,
    )  # fmt: skip
    added = settings.model_copy(update={k[len("CADENCE_") :].lower(): v for k, v in env.items()})
    message = add_launch(session, spec, planned_from, context_from(added))
    session.commit()
    return message.id


def _preview(cli: Callable[..., CliResult], launch_id: int, *fmt: str) -> CliResult:
    return cli("launch", "preview", str(launch_id), *fmt)


def test_a_plan_made_round_the_clock_previewed_in_office_hours_is_marked_late_and_exits_2(
    session: Session, settings: Settings, cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _org(session)
    launch_id = _launch(session, settings, MONDAY.replace(hour=21, minute=51), ROUND_THE_CLOCK)
    for name, value in OFFICE.items():
        monkeypatch.setenv(name, value)

    shown = _preview(cli, launch_id, "--format", "json")
    assert shown.code == 2, shown
    found = json.loads(shown.out)
    assert found["sends_count"] == 12 and found["late_count"] == 12
    assert found["after_customers_count"] == 12
    assert all(s["late"] and s["after_customers"] for s in found["sends"])
    assert found["fanout_seconds"] == pytest.approx(2.4)
    assert found["working_hours"] == "09:00-17:30 mon,tue,wed,thu,fri"
    # Tuesday 09:00 for the head, two minutes a tier, then fan-out, lead and margin.
    assert found["earliest_customer_at"] == "2026-03-03T09:12:00+00:00"
    assert "12 sends would reach people after 2026-03-02T21:57+00:00" in shown.err
    assert "the earliest customer time that works is 2026-03-03T09:12+00:00" in shown.err

    table = _preview(cli, launch_id)
    assert table.code == 2
    assert "fan-out takes 2.4 s at 300 a minute" in table.out
    assert "0:00:02" not in table.out
    assert table.out.count("after customers") == 12 + 1  # each row, and the summary line
    assert "12 of 12 sends late (12 after customers)" in table.out

    csv_out = _preview(cli, launch_id, "--format", "csv")
    assert csv_out.code == 2
    header, first = csv_out.out.splitlines()[:2]
    assert header == "tier,when,person,zone,gets,team_released_by,late,after_customers"
    assert first.endswith(",True,True") and first.startswith("1,2026-03-03T09:00:00+00:00,")


def test_the_preview_under_the_running_processes_settings_is_their_plan_and_exits_0(
    runtime: Runtime, session: Session, settings: Settings, cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _org(session)
    launch_id = _launch(session, settings, MONDAY.replace(hour=21, minute=51), ROUND_THE_CLOCK)
    for name, value in ROUND_THE_CLOCK.items():
        monkeypatch.setenv(name, value)

    shown = _preview(cli, launch_id, "--format", "json")
    assert shown.code == 0, shown
    found = json.loads(shown.out)
    assert found["late_count"] == 0 and found["earliest_customer_at"] is None
    assert not any(s["late"] or s["after_customers"] for s in found["sends"])
    # The worker of a process started with these settings plans and releases the same.
    running = load_settings(database_url=settings.database_url)
    policy = policy_from(running)
    assert policy.launch_context == context_from(running)
    message, launch = get_launch(session, launch_id)
    releases = plan(session, message, launch, policy.launch_context).releases
    planned = {r.email: r.release_at for r in releases}
    assert {s["person"]: datetime.fromisoformat(s["when"]) for s in found["sends"]} == planned
    head_at = planned["head@example.com"]
    tick(runtime.sessions, policy, lambda ids: None, head_at - timedelta(seconds=1))
    assert session.query(Delivery).count() == 0
    tick(runtime.sessions, policy, lambda ids: None, head_at)
    assert [d.person_id for d in session.query(Delivery)] == [
        session.query(Person.id).filter(Person.email == "head@example.com").scalar()
    ]
    table = _preview(cli, launch_id)
    assert table.code == 0 and "all 12 sends reach people in time" in table.out
    assert table.err == ""


def test_the_same_launch_planned_earlier_in_office_hours_exits_0(
    session: Session, settings: Settings, cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _org(session)
    launch_id = _launch(session, settings, MONDAY.replace(hour=10), OFFICE)
    for name, value in OFFICE.items():
        monkeypatch.setenv(name, value)

    shown = _preview(cli, launch_id, "--format", "json")
    assert shown.code == 0, shown
    found = json.loads(shown.out)
    assert found["late_count"] == 0
    assert all(datetime.fromisoformat(s["when"]).hour < 18 for s in found["sends"])


def test_tiers_are_numbered_as_the_dashboard_numbers_them(
    session: Session, settings: Settings, cli: Callable[..., CliResult],
) -> None:  # fmt: skip
    _org(session)
    launch_id = _launch(session, settings, MONDAY.replace(hour=10), OFFICE)
    found = json.loads(_preview(cli, launch_id, "--format", "json").out)
    preview_tiers = {s["person"]: s["tier"] for s in found["sends"]}
    page = launch_releases(session, launch_id, context_from(settings), None)
    assert preview_tiers == {row["person"]: row["tier"] for row in page}
    assert preview_tiers["head@example.com"] == 1
    assert set(preview_tiers.values()) == {1, 2, 3}
    assert session.get(Message, launch_id) is not None
