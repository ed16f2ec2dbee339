"""Launch timelines: every member of staff hears of a launch before any customer does.

A launch has a customer-announcement time. Working back from it, everyone must have the
message `lead + margin` earlier (`everyone_by`), and the last release must leave room for
the whole audience to be fanned out at the workspace's send rate. The message cascades down
the reporting tree: each leader is briefed first and their people are released when the
leader acknowledges or, at the latest, at the leader's deadline. The plan here is that
worst case (every leader silent until their deadline), so a plan that passes holds however
slowly leaders answer.

Releases fall only in each recipient's working hours in their own zone, so a launch
briefed on a Friday afternoon in London reaches a Sydney team on their Monday morning, not
at 3 a.m. The plan starts as late as it can: staff who hear of a launch days early may
talk about it before customers are told.

Everything here is plain data in, plain data out: no database, no broker, aware UTC
datetimes throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from cadence.errors import InputError
from cadence.planning.followups import WorkingHours
from cadence.planning.recurrence import place, zone
from cadence.units import duration

DEFAULT_HOURS = WorkingHours.parse("09:00", "17:30", "mon,tue,wed,thu,fri")
MINUTE = timedelta(minutes=1)
SHOWN_PER_TIER = 5
_ROOT = -1


@dataclass(frozen=True)
class Member:
    """One person in the launch's audience, with their zone already resolved."""

    person_id: int
    email: str
    name: str
    manager_id: int | None  # may point outside the audience, or be None
    zone: str  # IANA zone


@dataclass(frozen=True)
class TimelinePolicy:
    """How much warning staff get and how fast and when the message can go out."""

    lead: timedelta = timedelta(hours=24)  # everyone has it this long before customers
    leader_lead: timedelta | None = None  # a leader's head start; None: one working day
    margin: timedelta = timedelta(hours=1)  # on top of `lead`, for sends that run late
    rate_per_minute: float = 300.0  # workspace-wide send rate (Slack pacing)
    hours: WorkingHours = DEFAULT_HOURS  # in each recipient's own zone


@dataclass(frozen=True)
class Release:
    """When one member is planned to receive the launch, and where they sit in the cascade."""

    person_id: int
    email: str
    name: str
    zone: str
    tier: int  # 0: top of the cascade (no manager in the audience); shown as `tier_number`
    briefing: bool  # has direct reports in the audience, so gets a leader briefing
    manager_id: int | None  # their manager if that manager is in the audience
    release_at: datetime
    deadline: datetime | None  # a leader's: their people are released then if they stay silent

    @property
    def tier_number(self) -> int:
        """The tier as people count it, everywhere it is shown: the top of the cascade is 1."""
        return self.tier + 1


@dataclass(frozen=True)
class Timeline:
    """A planned launch cascade and whether it reaches everyone in time."""

    customer_at: datetime
    everyone_by: datetime  # customer_at - lead - margin
    fanout: timedelta  # len(members) / rate_per_minute
    releases: list[Release]  # ordered by (release_at, tier, email)
    misses: list[Release]  # release_at + fanout > everyone_by
    earliest_customer_at: datetime | None  # when there are misses: a customer time that works

    @property
    def ok(self) -> bool:
        return not self.misses

    def tiers(self) -> list[tuple[int, datetime, datetime, int]]:
        """(tier, first release, last release, people) for each tier, top first."""
        spans: dict[int, tuple[datetime, datetime, int]] = {}
        for r in self.releases:
            if r.tier in spans:
                first, last, count = spans[r.tier]
                spans[r.tier] = (min(first, r.release_at), max(last, r.release_at), count + 1)
            else:
                spans[r.tier] = (r.release_at, r.release_at, 1)
        return [(tier, *spans[tier]) for tier in sorted(spans)]


@dataclass(frozen=True)
class _Tree:
    """The reporting tree restricted to the audience, with members grouped into cohorts.

    A member's release depends only on their zone and on their manager's release, so members
    sharing both (recursively up the tree) share one release time: a cohort. Planning walks
    cohorts, which for a staff-wide launch are a handful, rather than every person.
    """

    managers: dict[int, int | None]  # effective manager, inside the audience
    tiers: dict[int, int]
    leaders: frozenset[int]
    cohort_of: dict[int, int]
    cohorts: list[tuple[int, str]]  # (parent cohort or _ROOT, zone), parents listed first


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{what} must be an aware datetime, not {value.isoformat()}")
    return value.astimezone(UTC)


def _floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _ceil_minute(value: datetime) -> datetime:
    floored = _floor_minute(value)
    return floored if floored == value else floored + MINUTE


def _check(members: Sequence[Member], policy: TimelinePolicy) -> dict[str, ZoneInfo]:
    """Refuse input that cannot be planned, naming every bad member at once."""
    problems: list[str] = []
    if policy.rate_per_minute <= 0 or not math.isfinite(policy.rate_per_minute):
        problems.append(f"rate_per_minute must be positive, not {policy.rate_per_minute}")
    if policy.lead < timedelta(0) or policy.margin < timedelta(0):
        problems.append("lead and margin must not be negative")
    if policy.leader_lead is not None and policy.leader_lead < timedelta(0):
        problems.append("leader_lead must not be negative")
    seen: set[int] = set()
    zones: dict[str, ZoneInfo] = {}
    for m in members:
        if m.person_id in seen:
            problems.append(f"{m.email}: person {m.person_id} is in the audience twice")
        seen.add(m.person_id)
        if m.zone not in zones:
            try:
                zones[m.zone] = zone(m.zone)
            except InputError as exc:
                problems.append(f"{m.email}: {exc.summary}")
    if problems:
        raise InputError("cannot plan this launch", problems)
    return zones


def _tree(members: Sequence[Member]) -> _Tree:
    """Tiers, leaders and cohorts of the audience's reporting tree.

    The directory refuses manager cycles, but a cycle here would make the cascade wait on
    itself for ever; anyone in one is cut loose and treated as a top-of-cascade member.
    """
    ids = {m.person_id for m in members}
    managers: dict[int, int | None] = {
        m.person_id: m.manager_id if m.manager_id in ids else None for m in members
    }
    state: dict[int, bool] = {}  # False while on the current walk, True once finished
    for start in managers:
        path: list[int] = []
        node: int | None = start
        while node is not None and node not in state:
            state[node] = False
            path.append(node)
            node = managers[node]
        if node is not None and not state[node]:
            for looped in path[path.index(node) :]:
                managers[looped] = None
        for done in path:
            state[done] = True

    tiers: dict[int, int] = {}
    for start in managers:
        chain: list[int] = []
        node = start
        while node is not None and node not in tiers:
            chain.append(node)
            node = managers[node]
        depth = -1 if node is None else tiers[node]
        for person in reversed(chain):
            depth += 1
            tiers[person] = depth

    leaders = frozenset(boss for boss in managers.values() if boss is not None)
    cohort_of: dict[int, int] = {}
    index: dict[tuple[int, str], int] = {}
    for m in sorted(members, key=lambda m: tiers[m.person_id]):
        boss = managers[m.person_id]
        key = (_ROOT if boss is None else cohort_of[boss], m.zone)
        if key not in index:
            index[key] = len(index)
        cohort_of[m.person_id] = index[key]
    return _Tree(managers, tiers, leaders, cohort_of, list(index))


def _next_working_day(day: date, hours: WorkingHours) -> date:
    for offset in range(1, 8):
        candidate = day + timedelta(days=offset)
        if candidate.weekday() in hours.days:
            return candidate
    return day + timedelta(days=1)


def leader_deadline(release_at: datetime, tz: ZoneInfo, policy: TimelinePolicy) -> datetime:
    """When a leader released at `release_at` has had their head start.

    "One working day" is the same wall-clock time on the leader's next working day, so a
    leader briefed on Friday afternoon has until Monday afternoon, and a daylight-saving
    change over the weekend does not move the hour they were promised.
    """
    if policy.leader_lead is not None:
        return release_at + policy.leader_lead
    local = release_at.astimezone(tz)
    day = _next_working_day(local.date(), policy.hours)
    same_time = place(datetime.combine(day, local.time()), tz)
    return policy.hours.next_open(same_time, tz).astimezone(UTC)


def _forward(
    start: datetime, tree: _Tree, zones: dict[str, ZoneInfo], policy: TimelinePolicy
) -> tuple[list[datetime], list[datetime]]:
    """Release and deadline of every cohort when the top of the cascade starts at `start`."""
    releases: list[datetime] = []
    deadlines: list[datetime] = []
    for parent, zone_name in tree.cohorts:
        tz = zones[zone_name]
        after = start if parent == _ROOT else deadlines[parent]
        release = policy.hours.next_open(after, tz).astimezone(UTC)
        releases.append(release)
        deadlines.append(leader_deadline(release, tz, policy))
    return releases, deadlines


def _depth_span(tree: _Tree, policy: TimelinePolicy) -> timedelta:
    """A first guess at how long the cascade takes from the top tier to the deepest."""
    levels = max(tree.tiers.values(), default=0)
    return levels * (policy.leader_lead if policy.leader_lead is not None else timedelta(days=1))


def plan_timeline(
    members: Sequence[Member], customer_at: datetime, now: datetime, policy: TimelinePolicy
) -> Timeline:
    """Plan when each member gets a launch so everyone has it before customers do.

    The top of the cascade starts as late as still lets the deepest tier be fanned out by
    `everyone_by`, and never before `now`. When working hours or weekends make that first
    guess too late, the start moves earlier (to the minute) until the plan fits; when even
    starting now does not fit, the plan starting now is returned with its misses and the
    earliest customer time it would meet.
    """
    customer_at = _utc(customer_at, "customer_at")
    now = _utc(now, "now")
    zones = _check(members, policy)
    tree = _tree(members)
    everyone_by = customer_at - policy.lead - policy.margin
    fanout = timedelta(minutes=len(members) / policy.rate_per_minute)
    last_allowed = everyone_by - fanout

    def fits(start: datetime) -> tuple[list[datetime], list[datetime]] | None:
        planned = _forward(start, tree, zones, policy)
        return planned if all(r <= last_allowed for r in planned[0]) else None

    def start_at(step: int) -> datetime:
        return now if step == 0 else max(now, _floor_minute(now) + step * MINUTE)

    latest = _floor_minute(last_allowed - _depth_span(tree, policy))
    steps = max(0, (latest - _floor_minute(now)) // MINUTE)
    planned = fits(start_at(steps))
    if planned is None and steps > 0:
        planned = fits(now)
        if planned is not None:
            good, bad = 0, steps
            while bad - good > 1:
                middle = (good + bad) // 2
                attempt = fits(start_at(middle))
                if attempt is None:
                    bad = middle
                else:
                    good, planned = middle, attempt
    earliest: datetime | None = None
    if planned is None:
        planned = _forward(now, tree, zones, policy)
        last = max(planned[0], default=now)
        earliest = _ceil_minute(last + fanout + policy.lead + policy.margin)

    cohort_release, cohort_deadline = planned
    releases = sorted(
        (
            Release(
                person_id=m.person_id,
                email=m.email,
                name=m.name,
                zone=m.zone,
                tier=tree.tiers[m.person_id],
                briefing=m.person_id in tree.leaders,
                manager_id=tree.managers[m.person_id],
                release_at=cohort_release[tree.cohort_of[m.person_id]],
                deadline=(
                    cohort_deadline[tree.cohort_of[m.person_id]]
                    if m.person_id in tree.leaders
                    else None
                ),
            )
            for m in members
        ),
        key=lambda r: (r.release_at, r.tier, r.email),
    )
    misses = [r for r in releases if r.release_at + fanout > everyone_by]
    return Timeline(
        customer_at=customer_at,
        everyone_by=everyone_by,
        fanout=fanout,
        releases=releases,
        misses=misses,
        earliest_customer_at=earliest if misses else None,
    )


def problems(timeline: Timeline) -> list[str]:
    """Why a launch is refused: one line per tier that misses, then a customer time that works.

    Each tier line names the people who would hear last (the latest first), so whoever
    fixes the launch can see whether a zone, a deep cascade or a large audience is the cause.
    """
    if timeline.ok:
        return []
    by_tier: dict[int, list[Release]] = {}
    for r in timeline.misses:
        by_tier.setdefault(r.tier, []).append(r)
    lines: list[str] = []
    for tier in sorted(by_tier):
        missing = sorted(by_tier[tier], key=lambda r: (-r.release_at.timestamp(), r.email))
        late = missing[0].release_at + timeline.fanout - timeline.everyone_by
        shown = ", ".join(f"{r.email} ({r.zone})" for r in missing[:SHOWN_PER_TIER])
        more = len(missing) - SHOWN_PER_TIER
        people = "person" if len(missing) == 1 else "people"
        lines.append(
            f"tier {missing[0].tier_number}: {len(missing)} {people} would have it after "
            f"{timeline.everyone_by.isoformat()}, up to {duration(late.total_seconds())} late: "
            f"{shown}" + (f" and {more} more" if more > 0 else "")
        )
    if timeline.earliest_customer_at is not None:
        lines.append(
            "earliest customer time that works: " + timeline.earliest_customer_at.isoformat()
        )
    return lines
