"""The dashboard's filters: GET query parameters, dates read as whole days in the
organisation's zone, every problem reported at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cadence.errors import InputError
from cadence.figures.measures import Filters
from cadence.inputs import is_id, parse_day, shown
from cadence.web.dashboard.forms import sentences

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
        day = parse_day(text, name)
    except InputError as exc:
        problems.append(f"{exc.summary}; it was left out")
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
        problems.append(f"no team {shown(team)} to show; the team filter was left out")
        team = ""
    form.team = team
    channel = params.get("channel", "").strip().lower()
    if channel and channel not in channels:
        problems.append(f"unknown channel {shown(channel)}; the channel filter was left out")
        channel = ""
    form.channel = channel
    message_id: int | None = None
    raw = params.get("message", "").strip()
    if raw:
        known = {m for m, _ in messages}
        if is_id(raw) and int(raw) in known:
            message_id = int(raw)
            form.message = raw
        else:
            problems.append("no such message to show; the message filter was left out")
    form.problem = sentences(problems)
    filters = Filters(
        since=since.astimezone(UTC) if since else None,
        until=until.astimezone(UTC) if until else None,
        message_id=message_id,
        team=team or None,
        channel=channel or None,
        scope_person_id=scope,
    )
    return form, filters
