"""What each dashboard page shows: its tables' columns, its cards, a launch's releases and
the heatmap, built from the figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.figures import labels
from cadence.launches.cascade import LaunchContext, get_launch, launch_occurrence, plan
from cadence.launches.status import released_and_sent
from cadence.store.models import (
    Acknowledgement,
)
from cadence.web.charts import (
    HeatCell,
    HeatTable,
    bar_chart,
    heat_cell,
    heat_table,
)
from cadence.web.dashboard.tables import (
    Card,
    Column,
    _duration,
    _hours,
    _number,
    _percent,
    _score,
)

# ---------------------------------------------------------------------------------------
# Page data the figures module leaves to the page: a launch's releases


def launch_releases(
    session: Session, message_id: int, ctx: LaunchContext, within: set[int] | None
) -> list[dict[str, Any]]:
    """Each person's place in the launch cascade: planned release, when it really went
    out and why, and when they acknowledged; only the viewer's tree for a leader."""
    message, launch = get_launch(session, message_id)
    timeline = plan(session, message, launch, ctx)
    root = launch_occurrence(session, message_id)
    reasons, first_sent = released_and_sent(session, root.id)
    acked: dict[int, datetime] = {}
    for person_id, at in session.execute(
        select(Acknowledgement.person_id, Acknowledgement.created_at)
        .where(
            Acknowledgement.occurrence_id == root.id,
            Acknowledgement.counted.is_(True),
            Acknowledgement.message_version >= message.ack_version,
        )
        .order_by(Acknowledgement.created_at)
    ):
        acked.setdefault(person_id, at)
    rows = []
    for release in timeline.releases:
        if within is not None and release.person_id not in within:
            continue
        sent_at = first_sent.get(release.person_id)
        if sent_at is None:
            status = "waiting"
        elif sent_at > launch.customer_at:
            status = "breach"
        else:
            status = "sent"
        rows.append(
            {
                "person": release.email,
                "name": release.name,
                "tier": release.tier_number,
                "role": "leader briefing" if release.briefing else "staff",
                "planned_at": release.release_at,
                "deadline": release.deadline,
                "sent_at": sent_at,
                "released": reasons.get(release.person_id) or None,
                "acknowledged_at": acked.get(release.person_id),
                "status": status,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------
# What each table shows


FIGURE_TABLE_COLUMNS = [
    Column("planned", "Planned", "count"),
    Column("sent", "Sent", "count"),
    Column("reach", "Reach", "share"),
    Column("acknowledged", "Acknowledged", "count"),
    Column("ack_rate", "Ack rate", "share"),
    Column("ack_median_s", "Median to ack", "seconds"),
    Column("questions", "Questions", "count"),
    Column("clarity_score", "Clarity", "score"),
    Column("on_time_share", "On time", "share"),
]


def _launch_link(row: Mapping[str, Any]) -> str:
    return f"/dashboard/launches/{row['launch']}"


LAUNCH_COLUMNS = [
    Column("title", "Launch", link=_launch_link),
    Column("customer_at", "Customers hear", "time"),
    Column("status", "Status", "status"),
    Column("audience", "Audience", "count"),
    Column("reached_before_customers", "Reached first", "share"),
    Column("acknowledged_before_customers", "Acked first", "share"),
    Column("leader_bypasses", "Bypasses", "count"),
    Column("breaches", "Breaches", "count"),
]
WAITING_COLUMNS = [
    Column("name", "Name"),
    Column("person", "Email"),
    Column("team", "Team", "team"),
    Column("manager", "Manager"),
    Column("repetition", "Repetition", "count"),
    Column("sent_at", "Sent", "time"),
]
TIMELINE_COLUMNS = [
    Column("repetition", "Repetition", "count"),
    Column("zone", "Zone"),
    Column("due_at", "Due", "time"),
    Column("status", "Status", "status"),
    Column("first_sent", "First sent", "time"),
    Column("planned", "Planned", "count"),
    Column("sent", "Sent", "count"),
    Column("acknowledged", "Acknowledged", "count"),
    Column("ack_rate", "Ack rate", "share"),
]
# For comms users: people a leader's message left out at send time, outside their tree.
LEFT_OUT_COLUMN = Column("outside_tree", "Left out", "count")
REPETITION_COLUMNS = [
    Column("name", "Name"),
    Column("person", "Email"),
    Column("received", "Received", "count"),
    Column("acknowledged", "Acknowledged", "count"),
]
HEAT_COLUMNS = [
    Column("team", "Team", "team"),
    Column("message_id", "Message id", "count"),
    Column("title", "Message"),
    Column("sent", "Sent", "count"),
    Column("acknowledged", "Acknowledged", "count"),
    Column("ack_rate", "Ack rate", "share"),
]
LEADER_COLUMNS = [
    Column("name", "Leader"),
    Column("leader", "Email"),
    Column("team", "Team", "team"),
    Column("direct_reports", "Reports", "count"),
    Column("briefings", "Briefings", "count"),
    Column("briefings_acknowledged", "Acknowledged", "count"),
    Column("briefing_lag_median_s", "Median lag", "seconds"),
    Column("bypassed_people", "People bypassed", "count"),
]
RELEASE_COLUMNS = [
    Column("name", "Name"),
    Column("person", "Email"),
    Column("tier", "Tier", "count"),
    Column("role", "Gets"),
    Column("planned_at", "Planned", "time"),
    Column("deadline", "Leader deadline", "time"),
    Column("sent_at", "Sent", "time"),
    Column("released", "Released because"),
    Column("acknowledged_at", "Acknowledged", "time"),
    Column("status", "Status", "status"),
]


def _launch_row(status: Mapping[str, Any]) -> dict[str, Any]:
    return {column.key: status.get(column.key) for column in LAUNCH_COLUMNS} | {
        "launch": status["launch"]
    }


@dataclass(frozen=True)
class RepetitionView:
    chart: Any
    note: str


def _repetition_view(found: Mapping[str, Any], title: str) -> RepetitionView | None:
    """How many of the audience received a core message how often, as a chart: once is
    not enough, so the share reached every time is the figure to watch."""
    audience, offered = found["audience"], found["repetitions"]
    if not audience:
        return None
    spread: dict[int, int] = found["distribution"]
    every = sum(n for times, n in spread.items() if offered and times >= offered)
    labels = [f"{times} of {offered}" for times in spread]
    chart = bar_chart(
        labels,
        {"people": [n / audience for n in spread.values()]},
        description=f"Share of the audience by how many repetitions of {title} they received",
    )
    note = (
        f"{offered} repetition{'s' if offered != 1 else ''} in this period; "
        f"{_number(every)} of {_number(audience)} people ({_percent(every / audience)}) "
        "received every one."
    )
    return RepetitionView(chart, note)


def _tone(value: Any, good: float, fair: float) -> str:
    if value is None:
        return ""
    return "good" if value >= good else ("warn" if value >= fair else "bad")


def _headline_cards(head: Mapping[str, Any], *, message_page: bool = False) -> list[Card]:
    """The few numbers a comms team reads first, each with the count behind its share."""
    sent, planned = head["sent"], head["planned"]
    cards = [
        Card("sent", "Sent", _number(sent), f"of {_number(planned)} planned"),
        Card(
            "reach",
            "Reach",
            _percent(head["reach"]),
            "planned that arrived",
            _tone(head["reach"], 0.98, 0.9),
        ),
        Card(
            "ack_rate",
            "Acknowledged",
            _percent(head["ack_rate"]),
            f"{_number(head['acknowledged'])} of {_number(sent)} sent",
            _tone(head["ack_rate"], 0.8, 0.5),
        ),
        Card(
            "ack_median_s",
            "Median time to ack",
            _duration(head["ack_median_s"]),
            f"90% within {_duration(head['ack_p90_s'])}",
        ),
        Card(
            "questions",
            "Questions",
            _number(head["questions"]),
            f"{_percent(head['question_rate'])} of those sent",
        ),
        Card(
            "clarity_score",
            "Clarity",
            _score(head["clarity_score"]),
            f"from {_number(head['ratings'])} ratings, -100 to 100",
        ),
    ]
    if not message_page or head.get("on_time_share") is not None:
        cards.append(
            Card(
                "on_time_share",
                "On time",
                _percent(head["on_time_share"]),
                f"within {head['on_time_tolerance_minutes']:g} min of due",
                _tone(head["on_time_share"], 0.95, 0.8),
            )
        )
    if head.get("missed_occurrences"):
        cards.append(
            Card(
                "missed_occurrences",
                "Missed",
                _number(head["missed_occurrences"]),
                "occurrences too late to send",
                "bad",
            )
        )
    return cards


def _launch_cards(status: Mapping[str, Any]) -> list[Card]:
    breaches = status["breaches"]
    return [
        Card(
            "audience",
            "Audience",
            _number(status["audience"]),
            f"{_number(status['reached'])} reached so far",
        ),
        Card(
            "reached_before_customers",
            "Reached before customers",
            _percent(status["reached_before_customers"]),
            "of the audience",
            _tone(status["reached_before_customers"], 1.0, 0.95),
        ),
        Card(
            "acknowledged_before_customers",
            "Acknowledged before customers",
            _percent(status["acknowledged_before_customers"]),
            "of the audience",
            _tone(status["acknowledged_before_customers"], 0.8, 0.5),
        ),
        Card(
            "leaders_briefed_before_their_teams",
            "Leaders first",
            _percent(status["leaders_briefed_before_their_teams"]),
            "people whose leader heard before them",
            _tone(status["leaders_briefed_before_their_teams"], 1.0, 0.9),
        ),
        Card(
            "leader_bypasses",
            "Leader bypasses",
            _number(status["leader_bypasses"]),
            f"{_number(status['released_after_leader_acknowledged'])} released by their "
            "leader's acknowledgement",
        ),
        Card(
            "median_lead_hours",
            "Median warning",
            _hours(status["median_lead_hours"]),
            "before customers heard",
        ),
        Card(
            "breaches",
            "Breaches",
            _number(breaches),
            "heard after customers",
            "bad" if breaches else "good",
        ),
    ]


def _heat(heat: Mapping[str, Any]) -> tuple[HeatTable, list[dict[str, Any]]]:
    """The heatmap as a coloured table, and its cells as rows for the CSV."""
    titles = {m["id"]: m["title"] or f"Message {m['id']}" for m in heat["messages"]}
    columns = [titles[m["id"]] for m in heat["messages"]]
    rows = [labels.shown("team", team) for team in heat["teams"]]
    cells: dict[tuple[str, str], HeatCell] = {}
    csv_rows: list[dict[str, Any]] = []
    for cell in heat["cells"]:
        team = labels.shown("team", cell["team"])
        title = titles.get(cell["message_id"], str(cell["message_id"]))
        cells[(team, title)] = heat_cell(
            cell["ack_rate"],
            f"{team}, {title}: {cell['acknowledged']} of {cell['sent']} acknowledged",
        )
        csv_rows.append({**cell, "title": title})
    return heat_table(rows, columns, cells), csv_rows
