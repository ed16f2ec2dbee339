"""A launch's timeline as the installation would run it: who gets it when, and who too late.

The plan is made with the same launch context the worker releases with and the dashboard
shows (`context_from` the installation's settings), so a preview that says a send is on
time is the send the worker will make. A send is *late* when, with the fan-out, it would
reach the person after `everyone_by` (the customer time less the launch's lead and
margin): the rule `launch add` refuses by. It is also *after customers* when it would
reach them after the customer time itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cadence.launches.cascade import LaunchContext, get_launch, plan
from cadence.planning.followups import DAY_NAMES, WorkingHours
from cadence.planning.launch_timeline import Release, Timeline
from cadence.planning.recurrence import zone


def working_hours_text(hours: WorkingHours) -> str:
    days = ",".join(name for index, name in enumerate(DAY_NAMES) if index in hours.days)
    return f"{hours.start:%H:%M}-{hours.end:%H:%M} {days}"


def _local(moment: datetime | None, zone_name: str) -> str | None:
    return None if moment is None else moment.astimezone(zone(zone_name)).isoformat()


def _send(release: Release, timeline: Timeline, late: set[int]) -> dict[str, Any]:
    arrives = release.release_at + timeline.fanout
    return {
        "tier": release.tier_number,
        "person": release.email,
        "zone": release.zone,
        "when": _local(release.release_at, release.zone),
        "gets": "leader briefing" if release.briefing else "message",
        "team_released_by": _local(release.deadline, release.zone),
        "late": release.person_id in late,
        "after_customers": arrives > timeline.customer_at,
    }


def launch_preview(session: Session, launch_id: int, ctx: LaunchContext) -> dict[str, Any]:
    """The launch's planned sends and what is wrong with them, as plain values.

    Times are ISO 8601 with their offset (each send in its person's zone, the launch's
    times in the customer zone) and durations are seconds, so machine output stays exact.
    """
    message, launch = get_launch(session, launch_id)
    timeline = plan(session, message, launch, ctx)
    late = {r.person_id for r in timeline.misses}
    sends = [_send(r, timeline, late) for r in timeline.releases]
    return {
        "launch": message.id,
        "title": message.title,
        "customer_at": _local(timeline.customer_at, launch.customer_zone),
        "everyone_by": _local(timeline.everyone_by, launch.customer_zone),
        "lead_hours": launch.lead_hours,
        "margin_minutes": launch.margin_minutes,
        "working_hours": working_hours_text(ctx.hours),
        "rate_per_minute": ctx.rate_per_minute,
        "fanout_seconds": timeline.fanout.total_seconds(),
        "sends_count": len(sends),
        "late_count": len(late),
        "after_customers_count": sum(1 for s in sends if s["after_customers"]),
        "earliest_customer_at": _local(timeline.earliest_customer_at, launch.customer_zone),
        "sends": sends,
    }
