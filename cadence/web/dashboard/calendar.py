"""The calendar page: what Cadence will send this week or month, and when customers hear
of each launch, with a personal iCalendar feed link to subscribe to from a calendar app.

Entries come from `cadence.messages.calendar.upcoming`, the same as the API's `/calendar`,
limited by `cadence.access.policy` (a leader sees the messages whose definition they may
read). Only what is still to come is shown: what was sent is on each message's page.
The period is a GET query (`?view=week|month&start=YYYY-MM-DD&team=...`), so a view can be
bookmarked; days are whole days in the organisation's zone.
"""

from __future__ import annotations

import calendar as month_maths
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cadence.access import api_tokens, policy
from cadence.access.users import Viewer
from cadence.directory.audience import Audience, reaches_team
from cadence.errors import InputError
from cadence.inputs import parse_day, shown
from cadence.messages.calendar import CalendarItem, upcoming
from cadence.store.db import session_scope
from cadence.store.models import Message
from cadence.web.dashboard.common import Frame, Refused
from cadence.web.dashboard.forms import account, sentences

FEED_PURPOSE = "calendar-feed"
FEED_REVOKE_PURPOSE = "calendar-feed-revoke"
# How far ahead a subscribed calendar app sees: two months, well inside the API's
# 366 days and its 1000 events.
FEED_DAYS = 62
# A period further from today than this is refused: expanding a rule for years ahead
# costs time and shows nobody anything useful.
FURTHEST = timedelta(days=366)
# More sends than this of one message on one day are shown as one entry.
MANY_A_DAY = 4
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass
class Entry:
    """One calendar entry as the page shows it."""

    kind: str
    title: str
    href: str
    time: str  # in the organisation's zone
    local: str  # in the recipients' zone, when it differs
    zone: str
    detail: str
    audience: str
    count: int = 1  # more than one: this many sends of the message that day, from `time`
    last: str = ""  # the time of the last of them


@dataclass
class Day:
    day: date
    label: str
    today: bool
    past: bool
    outside: bool  # a day of the previous or next month in a month grid
    entries: list[Entry] = field(default_factory=list)


@dataclass
class Period:
    view: str
    start: date  # first day shown (a Monday for a week, the 1st for a month)
    end: date  # the day after the last one
    problem: str = ""

    @property
    def heading(self) -> str:
        if self.view == "month":
            return f"{self.start:%B %Y}"
        last = self.end - timedelta(days=1)
        if self.start.month == last.month:
            return f"{self.start.day}\u2013{last.day} {last:%B %Y}"
        if self.start.year == last.year:
            return f"{self.start.day} {self.start:%b} \u2013 {last.day} {last:%b %Y}"
        return f"{self.start.day} {self.start:%b %Y} \u2013 {last.day} {last:%b %Y}"

    def shifted(self, step: int) -> date:
        if self.view == "month":
            month = self.start.month - 1 + step
            return date(self.start.year + month // 12, month % 12 + 1, 1)
        return self.start + timedelta(weeks=step)


def _aligned(view: str, day: date) -> Period:
    if view == "month":
        first = day.replace(day=1)
        last = month_maths.monthrange(first.year, first.month)[1]
        return Period(view, first, first + timedelta(days=last))
    monday = day - timedelta(days=day.weekday())
    return Period(view, monday, monday + timedelta(days=7))


def read_period(params: dict[str, str], today: date) -> Period:
    """The period a query asks for; anything unusable falls back to this week or month
    and says why, rather than failing the page."""
    problems: list[str] = []
    view = params.get("view", "week").strip().lower() or "week"
    if view not in ("week", "month"):
        problems.append(f"there is no {shown(view)} view (week or month); showing a week")
        view = "week"
    day = today
    raw = params.get("start", "").strip()
    if raw:
        try:
            asked = parse_day(raw, "start")
        except InputError as exc:
            problems.append(f"{exc.summary}; showing today")
        else:
            if abs(asked - today) > FURTHEST:
                problems.append("choose a start within a year of today; showing today")
            else:
                day = asked
    period = _aligned(view, day)
    period.problem = sentences(problems)
    return period


def _entry(item: CalendarItem, zone: ZoneInfo, zone_name: str) -> Entry:
    shown_at = item.at.astimezone(zone)
    # A send to another zone also says its local time there, which is what its cadence names.
    local = "" if item.zone == zone_name else f"{item.at:%H:%M} in {item.zone}"
    if item.kind == "send":
        people = "person" if item.recipients == 1 else "people"
        return Entry(
            kind="send",
            title=item.title,
            href=f"/dashboard/messages/{item.message_id}",
            time=f"{shown_at:%H:%M}",
            local=local,
            zone=item.zone,
            detail=(
                f"Send {item.repetition} to {item.recipients} {people}, at {local}"
                if local
                else f"Send {item.repetition} to {item.recipients} {people} in {item.zone}"
            ),
            audience=item.audience,
        )
    return Entry(
        kind="launch",
        title=item.title,
        href=f"/dashboard/launches/{item.message_id}",
        time=f"{shown_at:%H:%M}",
        local=local,
        zone=item.zone,
        detail=(
            f"Customers are told{f' at {local}' if local else ''}; "
            "all staff should have heard before"
        ),
        audience=item.audience,
    )


def _grouped(entries: list[Entry]) -> list[Entry]:
    """A message sent many times in a day (every few minutes, say) as one entry saying how
    many and from when to when, so the day stays readable; a few sends stay separate."""
    groups: dict[tuple[str, str, str], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.kind, entry.href, entry.zone), []).append(entry)
    shown: list[Entry] = []
    for group in groups.values():
        if len(group) <= MANY_A_DAY:
            shown += group
            continue
        first, last = group[0], group[-1]
        shown.append(
            replace(
                first,
                count=len(group),
                last=last.time,
                detail=f"{len(group)} sends in {first.zone}, {first.time} to {last.time}",
            )
        )
    return sorted(shown, key=lambda e: (e.time, e.title))


def _days(period: Period, today: date) -> list[Day]:
    """The days of the view: a week, or whole weeks (Monday first) covering the month."""
    first, end = period.start, period.end
    if period.view == "month":
        first = first - timedelta(days=first.weekday())
        end = end + timedelta(days=(7 - end.weekday()) % 7)
    days = []
    day = first
    while day < end:
        outside = not period.start <= day < period.end
        label = f"{day.day}" if period.view == "month" else f"{day.day} {day:%B}"
        days.append(Day(day, label, day == today, day < today, outside))
        day += timedelta(days=1)
    return days


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps, settings = frame.deps, frame.settings
    zone_name = settings.timezone
    zone = ZoneInfo(zone_name)

    def feed_url(token: str) -> str:
        query = urlencode({"token": token, "days": FEED_DAYS})
        return f"{settings.base_url.rstrip('/')}/api/calendar.ics?{query}"

    def show(request: Request, viewer: Viewer, *, new_feed: str = "", notice: str = "") -> Response:
        params = dict(request.query_params)
        now = deps.clock()
        today = now.astimezone(zone).date()
        period = read_period(params, today)
        days = _days(period, today)
        begin = datetime.combine(days[0].day, time(0), tzinfo=zone)
        finish = datetime.combine(days[-1].day + timedelta(days=1), time(0), tzinfo=zone)
        with deps.sessions() as session:
            teams = policy.visible_teams(session, viewer)
            team = params.get("team", "").strip().strip("/")
            team_problem = ""
            if team and team not in teams:
                team_problem = f"No team {shown(team)} to show; the team filter was left out."
                team = ""

            def visible(message: Message) -> bool:
                if not policy.can_read_definition(session, viewer, message):
                    return False
                return not team or reaches_team(
                    session, Audience.from_json(message.audience or {}), team
                )

            items: list[CalendarItem] = []
            truncated = False
            if finish > now:
                window = upcoming(session, zone_name, max(now, begin), finish, visible)
                items, truncated = window.items, window.truncated
            if truncated:
                # A message repeating every few minutes fills the whole answer with its
                # first hours; asking day by day shows every day of the period instead.
                items, truncated = [], False
                for day in days:
                    start_at = datetime.combine(day.day, time(0), tzinfo=zone)
                    end_at = start_at + timedelta(days=1)
                    if end_at <= now:
                        continue
                    part = upcoming(session, zone_name, max(now, start_at), end_at, visible)
                    items += part.items
                    truncated = truncated or part.truncated
            feeds = api_tokens.feed_tokens(session, account(session, viewer))
            feed: dict[str, Any] | None = (
                {"created": feeds[-1].created_at, "last_used": feeds[-1].last_used_at}
                if feeds
                else None
            )
        by_day = {d.day: d for d in days}
        for item in items:
            slot = by_day.get(item.at.astimezone(zone).date())
            if slot is not None:
                slot.entries.append(_entry(item, zone, zone_name))
        for slot in days:
            slot.entries = _grouped(slot.entries)
        weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
        # Switching views keeps today when it is in the period shown, else its first day.
        anchor = today if period.start <= today < period.end else period.start

        def link(start: date, view: str = period.view) -> str:
            query = {"view": view, "start": start.isoformat()}
            if team:
                query["team"] = team
            return f"/dashboard/calendar?{urlencode(query)}"

        present_feed = None
        if feed is not None:
            present_feed = {
                "created": _when(feed["created"], zone),
                "last_used": _when(feed["last_used"], zone) if feed["last_used"] else "",
            }
        return frame.page(
            request,
            viewer,
            "web/dashboard/calendar.html",
            "calendar",
            period=period,
            weeks=weeks,
            weekdays=WEEKDAYS,
            count=len(items),
            truncated=truncated,
            teams=teams,
            team=team,
            problems=[p for p in (period.problem, team_problem) if p],
            previous=link(period.shifted(-1)),
            next=link(period.shifted(1)),
            today=link(today),
            week_link=link(anchor, "week"),
            month_link=link(anchor, "month"),
            feed=present_feed,
            new_feed=new_feed,
            feed_days=FEED_DAYS,
            notice=notice,
        )

    @routes.get("/dashboard/calendar", response_class=HTMLResponse)
    def calendar_page(request: Request, feed: str = "") -> Response:
        """The week or month: each upcoming send per message and zone, and each launch's
        customer time, in the organisation's zone."""
        notice = "Your calendar feed link was revoked: it no longer works." if feed else ""
        return frame.signed_in(request, lambda viewer: show(request, viewer, notice=notice))

    @routes.post("/dashboard/calendar/feed", response_class=HTMLResponse)
    def create_feed(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        """A new personal feed link, shown once in the answer (never in a URL of ours,
        where history or logs would keep it); any earlier link stops working."""

        def act(viewer: Viewer) -> Response:
            try:
                with session_scope(deps.sessions) as session:
                    _, token = api_tokens.replace_feed_token(
                        session, account(session, viewer), deps.clock()
                    )
            except InputError as exc:
                raise Refused(400, "No feed link", str(exc)) from None
            return show(request, viewer, new_feed=feed_url(token))

        return frame.signed_in(request, act, purpose=FEED_PURPOSE, csrf=csrf)

    @routes.post("/dashboard/calendar/feed/revoke")
    def revoke_feed(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        """Stop the feed link working, for a link that was passed on or leaked."""

        def act(viewer: Viewer) -> Response:
            with session_scope(deps.sessions) as session:
                user = account(session, viewer)
                for token in api_tokens.feed_tokens(session, user):
                    api_tokens.revoke(session, token.id, owner=user)
            return RedirectResponse("/dashboard/calendar?feed=revoked", status_code=303)

        return frame.signed_in(request, act, purpose=FEED_REVOKE_PURPOSE, csrf=csrf)

    return routes


def _when(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"
