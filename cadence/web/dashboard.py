"""The dashboard: acknowledgement figures for comms users and team leaders.

Comms users see every message and person; a leader sees their own reporting tree and
nothing else: pages about a message or launch that reached nobody in their tree answer 404
(not 403, which would confirm it exists), and tables never list anyone outside it.

Pages are server-rendered HTML with inline SVG charts and no JavaScript. Sign-in is a signed,
expiring cookie (see `cadence.access.users`). Every form that changes state (sign in, sign out) is
protected like the acknowledgement pages: a double-submit CSRF cookie whose HMAC is in the
form, plus the browser's `Origin` and `Sec-Fetch-Site` when it sends them. Filters are GET
query parameters, so a filtered page can be bookmarked and shared. Every table can be
downloaded as CSV with the same filters.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import redis
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cadence.access import users
from cadence.access.users import SESSION_LIFETIME, Viewer, issue_session
from cadence.clock import utcnow
from cadence.config import KNOWN_CHANNELS
from cadence.directory.audience import Audience, audience_filter, tree_of
from cadence.errors import CadenceError, InputError
from cadence.figures import summaries
from cadence.figures.measures import (
    TIMELINE_LIMIT,
    Filters,
    ack_curve,
    breakdown,
    heatmap,
    leaders,
    not_acknowledged,
    occurrence_timeline,
    overview,
    repetition,
)
from cadence.launches.cascade import (
    LaunchContext,
    context_from,
    get_launch,
    launch_occurrence,
    launch_status,
    plan,
)
from cadence.rendering import render
from cadence.store.db import session_scope
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Message,
    MessageKind,
    Occurrence,
    Person,
    Team,
)
from cadence.web.ack_pages import SECURITY_HEADERS, csrf_field, origin_of
from cadence.web.charts import (
    HeatCell,
    HeatTable,
    ack_curve_chart,
    bar_chart,
    heat_cell,
    heat_table,
)
from cadence.web.deps import WebDeps

log = logging.getLogger(__name__)

SESSION_COOKIE = "cadence_session"
CSRF_COOKIE = "cadence_dashboard_csrf"
LOGIN_PURPOSE = "dashboard-login"
LOGOUT_PURPOSE = "dashboard-logout"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{32,128}")
# Sign-in failures allowed per email in the window, before sign-in is refused for a while.
MAX_FAILURES = 10
FAILURE_WINDOW = timedelta(minutes=15)

DASHBOARD_HEADERS = {
    **SECURITY_HEADERS,
    # Our own pages send a real Origin on their forms; nothing leaks to other sites.
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


# ---------------------------------------------------------------------------------------
# Presenting values: times in the organisation's zone, shares as percentages


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class Present:
    """Formats values for people (pages) and for spreadsheets (CSV), in one zone."""

    zone: ZoneInfo
    clock: Callable[[], datetime] = utcnow

    def local(self, value: Any) -> datetime | None:
        moment = _parse_time(value)
        return moment.astimezone(self.zone) if moment is not None else None

    def when(self, value: Any) -> str:
        moment = self.local(value)
        if moment is None:
            return "\u2013"
        return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"

    def brief(self, value: Any) -> str:
        """A time in a table cell: no weekday, and the year only when it is not this one,
        so wide tables of times stay on one screen."""
        moment = self.local(value)
        if moment is None:
            return "\u2013"
        year = "" if moment.year == self.clock().astimezone(self.zone).year else f" {moment.year}"
        return f"{moment.day} {moment:%b}{year}, {moment:%H:%M}"

    def csv_time(self, value: Any) -> str:
        moment = self.local(value)
        return moment.isoformat(timespec="seconds") if moment is not None else ""


def _percent(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):.0%}"


def _duration(seconds: Any) -> str:
    """Seconds as a person reads them: the two largest units are plenty."""
    if seconds is None:
        return "\u2013"
    total = round(float(seconds))
    if total < 60:
        return f"{total}s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def _number(value: Any) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _score(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):+.0f}"


def _hours(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):,.1f} h"


# ---------------------------------------------------------------------------------------
# Tables: one definition renders the HTML table and the CSV export


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text, count, share, seconds, time, score, hours, status, yesno
    link: Callable[[Mapping[str, Any]], str | None] | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("count", "share", "seconds", "score", "hours")


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    numeric: bool = False
    pill: str | None = None
    kind: str = "text"


_FORMATS: dict[str, Callable[[Any], str]] = {
    "count": _number,
    "share": _percent,
    "seconds": _duration,
    "score": _score,
    "hours": _hours,
}


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    present: Present
    csv_url: str = ""
    note: str = ""
    empty: str = "Nothing in this period."
    # Rows shown on the page; the CSV always has them all.
    shown: int = 200
    cells: list[list[Cell]] = field(init=False)

    def __post_init__(self) -> None:
        self.cells = [[self._cell(c, row) for c in self.columns] for row in self.rows[: self.shown]]

    @property
    def hidden(self) -> int:
        """Rows left off the page."""
        return max(0, len(self.rows) - self.shown)

    def _cell(self, column: Column, row: Mapping[str, Any]) -> Cell:
        value = row.get(column.key)
        if column.kind == "time":
            text = self.present.brief(value)
        elif column.kind == "yesno":
            text = "\u2013" if value is None else ("yes" if value else "no")
        elif column.kind in _FORMATS:
            text = _FORMATS[column.kind](value)
        else:
            text = "\u2013" if value is None or value == "" else str(value)
        href = column.link(row) if column.link is not None else None
        pill = str(value).replace(" ", "-") if column.kind == "status" and value else None
        return Cell(text, href, column.numeric, pill, column.kind)

    def csv_value(self, column: Column, value: Any) -> str:
        if value is None:
            return ""
        if column.kind == "time":
            return self.present.csv_time(value)
        if column.kind == "yesno":
            return "yes" if value else "no"
        if isinstance(value, bool | int | float):
            return str(value)
        text = str(value)
        # A spreadsheet would run a cell starting like a formula: titles and names are
        # typed by people, so they are written as plain text.
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow([self.csv_value(c, row.get(c.key)) for c in self.columns])
        return out.getvalue()


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    value: str
    note: str = ""
    tone: str = ""


# ---------------------------------------------------------------------------------------
# Filters: GET query parameters, dates read as whole days in the organisation's zone

FILTER_PARAMS = ("since", "until", "team", "channel", "message")


@dataclass
class FilterForm:
    """What the filter form shows, and what it asked for."""

    since: str = ""
    until: str = ""
    team: str = ""
    channel: str = ""
    message: str = ""
    problem: str = ""
    teams: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    messages: list[tuple[int, str]] = field(default_factory=list)
    show_team: bool = True
    show_message: bool = True

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in FILTER_PARAMS)

    def query(self) -> dict[str, str]:
        """The filters in force, as query parameters for links that keep them."""
        return {name: getattr(self, name) for name in FILTER_PARAMS if getattr(self, name)}


def _day(text: str, zone: ZoneInfo, name: str, problems: list[str]) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        problems.append(f"{name} {text!r} is not a date (YYYY-MM-DD); it was left out")
        return None
    return datetime.combine(day, time(0), tzinfo=zone)


def read_filters(
    params: Mapping[str, str],
    zone: ZoneInfo,
    *,
    teams: Sequence[str],
    channels: Sequence[str],
    messages: Sequence[tuple[int, str]],
    scope: int | None,
) -> tuple[FilterForm, Filters]:
    """The figures' Filters for a page's query string; anything unusable is dropped and
    said so, rather than failing the whole page."""
    problems: list[str] = []
    form = FilterForm(teams=list(teams), channels=list(channels), messages=list(messages))
    form.since = params.get("since", "").strip()
    form.until = params.get("until", "").strip()
    since = _day(form.since, zone, "from", problems)
    until_day = _day(form.until, zone, "until", problems)
    # "Until" names the last day shown, so the window ends at the next local midnight.
    until = (
        datetime.combine(until_day.date() + timedelta(days=1), time(0), tzinfo=zone)
        if until_day is not None
        else None
    )
    if since is not None and until is not None and since >= until:
        problems.append("the period ends before it starts; the dates were left out")
        since = until = None
        form.since = form.until = ""
    if not since:
        form.since = ""
    if not until:
        form.until = ""
    team = params.get("team", "").strip().strip("/")
    if team and team not in teams:
        problems.append(f"no team {team!r} to show; the team filter was left out")
        team = ""
    form.team = team
    channel = params.get("channel", "").strip().lower()
    if channel and channel not in channels:
        problems.append(f"unknown channel {channel!r}; the channel filter was left out")
        channel = ""
    form.channel = channel
    message_id: int | None = None
    raw = params.get("message", "").strip()
    if raw:
        known = {m for m, _ in messages}
        if raw.isdigit() and int(raw) in known:
            message_id = int(raw)
            form.message = raw
        else:
            problems.append("no such message to show; the message filter was left out")
    form.problem = " ".join(p[0].upper() + p[1:] + "." for p in problems)
    filters = Filters(
        since=since.astimezone(UTC) if since else None,
        until=until.astimezone(UTC) if until else None,
        message_id=message_id,
        team=team or None,
        channel=channel or None,
        scope_person_id=scope,
    )
    return form, filters


# ---------------------------------------------------------------------------------------
# What a viewer may see


def _delivered_to_tree(message_id: Any, scope: int) -> Any:
    """SQL: someone in the tree was sent (or planned) something of this message. Asked
    occurrence by occurrence, so it stops at the first delivery it finds."""
    return exists().where(
        Occurrence.message_id == message_id,
        Delivery.occurrence_id == Occurrence.id,
        Delivery.person_id.in_(tree_of(scope)),
    )


def _audience_reaches(session: Session, message: Message, scope: int) -> bool:
    audience = audience_filter(Audience.from_json(message.audience or {}))
    return bool(session.scalar(select(exists().where(audience, Person.id.in_(tree_of(scope))))))


def visible_messages(session: Session, viewer: Viewer) -> list[tuple[int, str]]:
    """(id, title) of the messages a viewer may look at, newest first: all of them for
    comms, and for a leader those whose audience or deliveries include their tree."""
    messages = session.scalars(select(Message).order_by(Message.id.desc())).all()
    scope = viewer.scope
    if scope is None:
        return [(m.id, m.title) for m in messages]
    reached = set(session.scalars(select(Message.id).where(_delivered_to_tree(Message.id, scope))))
    return [
        (m.id, m.title) for m in messages if m.id in reached or _audience_reaches(session, m, scope)
    ]


def _needing_attention(session: Session, viewer: Viewer) -> list[dict[str, Any]]:
    """Messages the viewer may see that are flagged (see cadence.messages.attention)."""
    flagged = {
        m.id: m
        for m in session.scalars(select(Message).where(Message.attention.is_not(None))).all()
    }
    if not flagged:
        return []
    return [
        {"id": mid, "title": title, "problem": flagged[mid].attention}
        for mid, title in visible_messages(session, viewer)
        if mid in flagged
    ]


def can_see_message(session: Session, viewer: Viewer, message: Message) -> bool:
    scope = viewer.scope
    if scope is None:
        return True
    delivered = session.scalar(select(_delivered_to_tree(message.id, scope)))
    return bool(delivered) or _audience_reaches(session, message, scope)


def visible_teams(session: Session, viewer: Viewer) -> list[str]:
    if viewer.scope is None:
        return list(session.scalars(select(Team.path).order_by(Team.path)))
    return list(
        session.scalars(
            select(Team.path)
            .join(Person, Person.team_id == Team.id)
            .where(Person.id.in_(tree_of(viewer.scope)))
            .distinct()
            .order_by(Team.path)
        )
    )


def _tree_emails(session: Session, scope: int | None, emails: Iterable[str]) -> set[str]:
    wanted = set(emails)
    if scope is None or not wanted:
        return wanted
    return set(
        session.scalars(
            select(Person.email).where(Person.email.in_(wanted), Person.id.in_(tree_of(scope)))
        )
    )


# ---------------------------------------------------------------------------------------
# Page data the figures module leaves to the page: a launch's releases


def launch_releases(
    session: Session, message_id: int, ctx: LaunchContext, scope: int | None
) -> list[dict[str, Any]]:
    """Each person's place in the launch cascade: planned release, when it really went
    out and why, and when they acknowledged; only the viewer's tree for a leader."""
    message, launch = get_launch(session, message_id)
    timeline = plan(session, message, launch, ctx)
    root = launch_occurrence(session, message_id)
    first_sent: dict[int, datetime] = {}
    reasons: dict[int, str] = {}
    for delivery in session.scalars(
        select(Delivery).where(Delivery.occurrence_id == root.id).order_by(Delivery.id)
    ):
        reasons.setdefault(delivery.person_id, (delivery.payload or {}).get("release", ""))
        if delivery.status == DeliveryStatus.SENT.value and delivery.sent_at is not None:
            earlier = first_sent.get(delivery.person_id, delivery.sent_at)
            first_sent[delivery.person_id] = min(earlier, delivery.sent_at)
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
    inside: set[int] | None = None
    if scope is not None:
        inside = set(session.scalars(tree_of(scope)))
    rows = []
    for release in timeline.releases:
        if inside is not None and release.person_id not in inside:
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
                "tier": release.tier + 1,
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
    Column("team", "Team"),
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
REPETITION_COLUMNS = [
    Column("name", "Name"),
    Column("person", "Email"),
    Column("received", "Received", "count"),
    Column("acknowledged", "Acknowledged", "count"),
]
HEAT_COLUMNS = [
    Column("team", "Team"),
    Column("message_id", "Message id", "count"),
    Column("title", "Message"),
    Column("sent", "Sent", "count"),
    Column("acknowledged", "Acknowledged", "count"),
    Column("ack_rate", "Ack rate", "share"),
]
LEADER_COLUMNS = [
    Column("name", "Leader"),
    Column("leader", "Email"),
    Column("team", "Team"),
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
    rows = [team or "(no team)" for team in heat["teams"]]
    cells: dict[tuple[str, str], HeatCell] = {}
    csv_rows: list[dict[str, Any]] = []
    for cell in heat["cells"]:
        team = cell["team"] or "(no team)"
        title = titles.get(cell["message_id"], str(cell["message_id"]))
        cells[(team, title)] = heat_cell(
            cell["ack_rate"],
            f"{team}, {title}: {cell['acknowledged']} of {cell['sent']} acknowledged",
        )
        csv_rows.append({**cell, "team": team, "title": title})
    return heat_table(rows, columns, cells), csv_rows


# ---------------------------------------------------------------------------------------
# Responses


class Refused(Exception):
    """A request answered with the dashboard's problem page."""

    def __init__(self, status: int, heading: str, detail: str) -> None:
        super().__init__(heading)
        self.status, self.heading, self.detail = status, heading, detail


NOT_FOUND = (404, "Not found", "There is no such page, or it is not one you can see.")


def _html(template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        render(template, **context), status_code=http_status, headers=DASHBOARD_HEADERS
    )


def _csv(table: Table, filename: str) -> Response:
    headers = {
        **DASHBOARD_HEADERS,
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    return Response(table.to_csv(), media_type="text/csv; charset=utf-8", headers=headers)


def _url(path: str, query: Mapping[str, str]) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def _safe_next(target: str) -> str:
    """Only a path on this site's dashboard: never an open redirect to somewhere else."""
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith("/dashboard")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/dashboard"
    return target


def _filename(*parts: object) -> str:
    name = "-".join(re.sub(r"[^a-z0-9]+", "-", str(p).lower()).strip("-") for p in parts)
    return f"cadence-{name}.csv"


def router(deps: WebDeps) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    settings = deps.settings
    secret = settings.secret_key
    zone = ZoneInfo(settings.timezone)
    present = Present(zone, deps.clock)
    our_origin = origin_of(settings.base_url)
    secure_cookie = urlsplit(settings.base_url).scheme.lower() == "https"
    launch_ctx = context_from(settings)

    # -- cookies and cross-site checks ------------------------------------------------

    def csrf_cookie(request: Request) -> str:
        """Keep the browser's CSRF cookie, so every open dashboard tab's forms stay valid."""
        sent = request.cookies.get(CSRF_COOKIE, "")
        return sent if _COOKIE_VALUE.fullmatch(sent) else secrets.token_urlsafe(32)

    def with_csrf_cookie(response: Response, cookie: str) -> Response:
        response.set_cookie(
            CSRF_COOKIE, cookie, path="/", secure=secure_cookie, httponly=True, samesite="strict"
        )
        return response

    def check_same_site(request: Request, csrf: str, purpose: str) -> None:
        """Refuse a form post that did not come from one of our own pages."""
        fetch_site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        foreign_origin = (
            origin is not None and origin != "null" and origin.rstrip("/") != our_origin
        )
        if foreign_origin or fetch_site in ("cross-site", "same-site"):
            raise Refused(
                403,
                "This form was not sent from Cadence",
                "Sign-in and sign-out only work from Cadence's own pages.",
            )
        cookie = request.cookies.get(CSRF_COOKIE, "")
        expected = csrf_field(secret, cookie, purpose) if cookie else ""
        if not cookie or not csrf or not hmac.compare_digest(expected, csrf):
            raise Refused(
                403,
                "Please try again",
                "This form could not be checked: it may have been open for a long time. "
                "Open the page again and resubmit it.",
            )

    # -- who is asking ----------------------------------------------------------------

    def viewer_of(request: Request) -> Viewer | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        with deps.sessions() as session:
            try:
                return users.viewer_of(users.read_session(session, secret, cookie, deps.clock()))
            except CadenceError:
                return None

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def page(
        request: Request,
        viewer: Viewer,
        template: str,
        section: str,
        http_status: int = 200,
        **context: Any,
    ) -> Response:
        cookie = csrf_cookie(request)
        response = _html(
            template,
            http_status,
            viewer=viewer,
            section=section,
            logout_csrf=csrf_field(secret, cookie, LOGOUT_PURPOSE),
            zone_name=settings.timezone,
            **context,
        )
        return with_csrf_cookie(response, cookie)

    def problem_page(request: Request, viewer: Viewer | None, refused: Refused) -> Response:
        if viewer is None:
            return _html(
                "web/dashboard/problem.html",
                refused.status,
                status=refused.status,
                heading=refused.heading,
                detail=refused.detail,
                zone_name=settings.timezone,
            )
        return page(
            request,
            viewer,
            "web/dashboard/problem.html",
            "",
            refused.status,
            status=refused.status,
            heading=refused.heading,
            detail=refused.detail,
        )

    # -- sign in and out ---------------------------------------------------------------

    def login_page(
        request: Request,
        *,
        http_status: int = 200,
        problem: str = "",
        notice: str = "",
        email: str = "",
        next_url: str = "/dashboard",
    ) -> Response:
        cookie = csrf_cookie(request)
        response = _html(
            "web/dashboard/login.html",
            http_status,
            csrf=csrf_field(secret, cookie, LOGIN_PURPOSE),
            problem=problem,
            notice=notice,
            email=email,
            next=_safe_next(next_url),
            zone_name=settings.timezone,
        )
        return with_csrf_cookie(response, cookie)

    def failures_key(email: str) -> str:
        return f"cadence:dashboard:sign-in-failures:{users.normalise_email(email)}"

    def too_many_failures(email: str) -> bool:
        try:
            count = deps.redis.get(failures_key(email))
        except redis.RedisError as exc:
            log.warning("sign-in throttle unavailable: %s", exc)
            return False
        return count is not None and int(count) >= MAX_FAILURES

    def count_failure(email: str) -> None:
        """Count a failure; the window starts at the first, so a locked-out person is let
        in again FAILURE_WINDOW after it, however often they keep trying."""
        try:
            key = failures_key(email)
            if deps.redis.incr(key) == 1:
                deps.redis.expire(key, int(FAILURE_WINDOW.total_seconds()))
        except redis.RedisError as exc:
            log.warning("sign-in throttle unavailable: %s", exc)

    @routes.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/dashboard", signed_out: str = "") -> Response:
        """The sign-in form; someone already signed in goes straight on."""
        if viewer_of(request) is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        notice = "You have signed out." if signed_out else ""
        return login_page(request, notice=notice, next_url=next)

    @routes.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        email: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/dashboard",
    ) -> Response:
        """Check the password and set the sign-in cookie; the same answer for a wrong email
        or a wrong password, so the form does not tell who has an account."""
        try:
            check_same_site(request, csrf, LOGIN_PURPOSE)
        except Refused as refused:
            return problem_page(request, None, refused)
        email = email.strip()
        if too_many_failures(email):
            return login_page(
                request,
                http_status=429,
                problem="Too many failed attempts for this email. Wait 15 minutes and try "
                "again, or ask your comms team to reset your password.",
                email=email,
                next_url=next,
            )
        with session_scope(deps.sessions) as session:
            user = users.authenticate(session, email, password) if email and password else None
            cookie = issue_session(secret, user, deps.clock()) if user is not None else None
        if cookie is None:
            if email:
                count_failure(email)
            return login_page(
                request,
                http_status=401,
                problem="That email and password do not match an active account.",
                email=email,
                next_url=next,
            )
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path="/",
            secure=secure_cookie,
            httponly=True,
            samesite="lax",
        )
        return response

    @routes.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        """Forget the sign-in cookie. A form post with the CSRF field, so another site
        cannot sign people out."""
        try:
            check_same_site(request, csrf, LOGOUT_PURPOSE)
        except Refused as refused:
            return problem_page(request, viewer_of(request), refused)
        response = RedirectResponse("/login?signed_out=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=secure_cookie, httponly=True)
        return response

    # -- the pages ---------------------------------------------------------------------

    def filters_for(
        session: Session,
        request: Request,
        viewer: Viewer,
        *,
        show_team: bool = True,
        show_message: bool = True,
    ) -> tuple[FilterForm, Filters]:
        form, filters = read_filters(
            request.query_params,
            zone,
            teams=visible_teams(session, viewer),
            channels=KNOWN_CHANNELS,
            messages=visible_messages(session, viewer) if show_message else [],
            scope=viewer.scope,
        )
        form.show_team, form.show_message = show_team, show_message
        return form, filters

    def respond(
        request: Request,
        viewer: Viewer,
        template: str,
        section: str,
        exports: Sequence[Table],
        filename: Callable[[Table], str],
        http_status: int = 200,
        **context: Any,
    ) -> Response:
        """The page, or one of its tables as CSV when `?format=csv` asks for it."""
        if request.query_params.get("format") == "csv":
            wanted = request.query_params.get("table") or exports[0].name
            for table in exports:
                if table.name == wanted:
                    return _csv(table, filename(table))
            raise Refused(*NOT_FOUND)
        return page(request, viewer, template, section, http_status, **context)

    def csv_url(path: str, form: FilterForm, table: str) -> str:
        return _url(path, {**form.query(), "format": "csv", "table": table})

    def run(request: Request, handler: Callable[[Viewer], Response]) -> Response:
        """Sign-in required; refusals and bad input become the problem page."""
        viewer = viewer_of(request)
        if viewer is None:
            return to_login(request)
        # Summarise what changed since the beat last did, in a short transaction of its
        # own, so that the page reads current figures without holding a write lock (if a
        # refresh is already running, the page reads what it last committed).
        summaries.refresh(deps.sessions, wait=False)
        try:
            return handler(viewer)
        except Refused as refused:
            return problem_page(request, viewer, refused)
        except InputError as exc:
            return problem_page(request, viewer, Refused(400, "Cannot show this", str(exc)))

    @routes.get("/dashboard", response_class=HTMLResponse)
    def overview_page(request: Request) -> Response:
        """Headline figures, then reach and acknowledgement per message, and launches."""

        def build(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                form, filters = filters_for(session, request, viewer)
                now = deps.clock()
                head = overview(session, filters, now, launch_context=launch_ctx)
                by_message = breakdown(session, "message", filters, now)
                attention = _needing_attention(session, viewer)
            path = "/dashboard"
            messages = Table(
                "messages",
                "By message",
                [
                    Column(
                        "title", "Message", link=lambda r: f"/dashboard/messages/{r['message']}"
                    ),
                    *FIGURE_TABLE_COLUMNS,
                ],
                by_message,
                present,
                csv_url(path, form, "messages"),
                note="Each person counts once per occurrence, whatever the channel.",
            )
            for row in messages.rows:
                row.setdefault("title", f"Message {row['message']}")
            launches = Table(
                "launches",
                "Launches",
                LAUNCH_COLUMNS,
                [_launch_row(status) for status in head["launches"]],
                present,
                csv_url(path, form, "launches"),
                note="Whole-launch figures: staff should hear before customers.",
                empty="No launch falls due in this period.",
            )
            chart = bar_chart(
                [str(r.get("title") or r["message"]) for r in by_message],
                {
                    "reach": [r["reach"] for r in by_message],
                    "acknowledged": [r["ack_rate"] for r in by_message],
                },
                description="Reach and acknowledgement rate by message",
            )
            return respond(
                request,
                viewer,
                "web/dashboard/overview.html",
                "overview",
                [messages, launches],
                lambda t: _filename("overview", t.name),
                form=form,
                action=path,
                cards=_headline_cards(head),
                chart=chart,
                has_rows=bool(by_message),
                tables=[messages, launches],
                attention=attention,
                as_of=present.when(now),
            )

        return run(request, build)

    @routes.get("/dashboard/messages/{message_id}", response_class=HTMLResponse)
    def message_page(request: Request, message_id: int) -> Response:
        """One message: its figures, how fast people acknowledged, who has not yet, and
        each occurrence."""

        def build(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                message = session.get(Message, message_id)
                if message is None or not can_see_message(session, viewer, message):
                    raise Refused(*NOT_FOUND)
                form, filters = filters_for(session, request, viewer, show_message=False)
                filters = replace(filters, message_id=message_id)
                now = deps.clock()
                head = overview(session, filters, now, launch_context=launch_ctx)
                curve = ack_curve(session, message_id, filters)
                waiting = not_acknowledged(session, message_id, filters)
                timeline = occurrence_timeline(session, message_id, filters)
                repeated = (
                    repetition(
                        session, message_id, filters.since, filters.until, 1, filters=filters
                    )
                    if message.kind == MessageKind.CORE.value
                    else None
                )
                title, kind, status = message.title, message.kind, message.status
                attention = message.attention
                audience = Audience.from_json(message.audience or {}).describe()
                allowed = _tree_emails(session, viewer.scope, [r["person"] for r in waiting])
                waiting = [r for r in waiting if r["person"] in allowed]
            path = f"/dashboard/messages/{message_id}"
            waiting_table = Table(
                "not_acknowledged",
                "Not acknowledged yet",
                WAITING_COLUMNS,
                waiting,
                present,
                csv_url(path, form, "not_acknowledged"),
                note="Active people sent the latest occurrence who have not answered it.",
                empty="Everyone sent this message has acknowledged it.",
            )
            timeline_table = Table(
                "occurrences",
                "Occurrences",
                TIMELINE_COLUMNS,
                timeline,
                present,
                csv_url(path, form, "occurrences"),
                note=f"Newest first; at most {TIMELINE_LIMIT}. Planned, sent and acknowledged "
                "count people.",
                empty="No occurrence in this period.",
            )
            chart = ack_curve_chart(
                curve, description=f"Share of recipients who acknowledged {title}, by hour"
            )
            tables = [waiting_table, timeline_table]
            received = None
            if repeated is not None:
                received = _repetition_view(repeated, title)
                tables.append(
                    Table(
                        "repetition",
                        "Times received, by person",
                        REPETITION_COLUMNS,
                        repeated["people"],
                        present,
                        csv_url(path, form, "repetition"),
                        note="Each repetition counts once per person, whatever the channel.",
                        empty="Nobody was planned a repetition in this period.",
                    )
                )
            return respond(
                request,
                viewer,
                "web/dashboard/message.html",
                "overview",
                tables,
                lambda t: _filename("message", message_id, t.name),
                form=form,
                action=path,
                title=title,
                kind=kind,
                message_status=status,
                audience=audience,
                message_id=message_id,
                cards=_headline_cards(head, message_page=True),
                chart=chart,
                has_curve=bool(curve),
                attention=attention,
                received=received,
                tables=tables,
                as_of=present.when(now),
            )

        return run(request, build)

    @routes.get("/dashboard/teams", response_class=HTMLResponse)
    def teams_page(request: Request) -> Response:
        """Acknowledgement rate per team and message, with each team's and leader's figures."""

        def build(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                form, filters = filters_for(session, request, viewer)
                now = deps.clock()
                heat = heatmap(session, filters)
                by_team = breakdown(session, "team", filters, now)
                leader_rows = leaders(session, filters)
            path = "/dashboard/teams"
            heat_view, heat_rows = _heat(heat)
            heat_csv = Table(
                "heatmap",
                "Acknowledgement rate by team and message",
                HEAT_COLUMNS,
                heat_rows,
                present,
                csv_url(path, form, "heatmap"),
            )
            teams_table = Table(
                "teams",
                "By team",
                [Column("team", "Team"), *FIGURE_TABLE_COLUMNS],
                [{**r, "team": r["team"] or "(no team)"} for r in by_team],
                present,
                csv_url(path, form, "teams"),
                note="Each person counts in their own team (not its parents).",
            )
            leaders_table = Table(
                "leaders",
                "Leaders in launches",
                LEADER_COLUMNS,
                leader_rows,
                present,
                csv_url(path, form, "leaders"),
                note="Briefings before their teams, and people released without them.",
                empty="No leader was briefed for a launch in this period.",
            )
            return respond(
                request,
                viewer,
                "web/dashboard/teams.html",
                "teams",
                [heat_csv, teams_table, leaders_table],
                lambda t: _filename("teams", t.name),
                form=form,
                action=path,
                heat=heat_view,
                heat_csv_url=heat_csv.csv_url,
                tables=[teams_table, leaders_table],
                as_of=present.when(now),
            )

        return run(request, build)

    @routes.get("/dashboard/launches/{message_id}", response_class=HTMLResponse)
    def launch_page(request: Request, message_id: int) -> Response:
        """A launch's compliance: did staff hear before customers, leaders before teams."""

        def build(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                message = session.get(Message, message_id)
                if (
                    message is None
                    or message.kind != MessageKind.LAUNCH.value
                    or not can_see_message(session, viewer, message)
                ):
                    raise Refused(*NOT_FOUND)
                now = deps.clock()
                status = launch_status(session, message_id, launch_ctx, now)
                releases = launch_releases(session, message_id, launch_ctx, viewer.scope)
                if viewer.scope is not None:
                    for key in ("breached", "not_yet_reached"):
                        inside = _tree_emails(session, viewer.scope, status[key])
                        status[key] = [e for e in status[key] if e in inside]
            path = f"/dashboard/launches/{message_id}"
            releases_table = Table(
                "releases",
                "Releases down the tree",
                RELEASE_COLUMNS,
                releases,
                present,
                _url(path, {"format": "csv", "table": "releases"}),
                note="Planned from the launch's timeline; sent and acknowledged as recorded.",
                empty="Nobody to show.",
            )
            return respond(
                request,
                viewer,
                "web/dashboard/launch.html",
                "overview",
                [releases_table],
                lambda t: _filename("launch", message_id, t.name),
                title=status["title"],
                message_id=message_id,
                customer_at=present.when(status["customer_at"]),
                launch_status=status["status"],
                cards=_launch_cards(status),
                breached=status["breached"],
                not_yet_reached=status["not_yet_reached"],
                tables=[releases_table],
                as_of=present.when(now),
                scoped=viewer.scope is not None,
            )

        return run(request, build)

    return routes
