"""How a launch went: reach and acknowledgement before customers heard, leaders briefed
first, bypasses and breaches; and launches running late."""

from __future__ import annotations

import statistics
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from cadence.launches.cascade import LaunchContext, get_launch, launch_occurrence, plan
from cadence.planning.launch_timeline import (
    problems,
)
from cadence.store.models import (
    Acknowledgement,
    Delivery,
    DeliveryStatus,
    Launch,
    Message,
    MessageStatus,
)


def launch_status(
    session: Session,
    message_id: int,
    ctx: LaunchContext,
    now: datetime,
    within: Collection[int] | None = None,
) -> dict[str, Any]:
    """The figures of one launch: reach and acknowledgement before customers, leaders
    briefed before their teams, bypasses, lead time, and breaches; over the people
    `within` only (a leader's tree) when given."""
    message, launch = get_launch(session, message_id)
    root = launch_occurrence(session, message_id)
    timeline = plan(session, message, launch, ctx)
    audience = {
        r.person_id: r for r in timeline.releases if within is None or r.person_id in within
    }
    reasons, first_sent = released_and_sent(session, root.id)
    if within is not None:
        reasons = {p: r for p, r in reasons.items() if p in within}
    acked_at = {
        a.person_id: a.created_at
        for a in session.scalars(
            select(Acknowledgement)
            .where(Acknowledgement.occurrence_id == root.id, Acknowledgement.counted.is_(True))
            # An answer to what was corrected since no longer counts.
            .where(Acknowledgement.message_version >= message.ack_version)
            .order_by(Acknowledgement.id.desc())
        )
    }
    customer_at = launch.customer_at
    n = len(audience) or 1
    reached_before = [p for p, at in first_sent.items() if p in audience and at <= customer_at]
    acked_before = [p for p, at in acked_at.items() if p in audience and at <= customer_at]
    breaches = sorted(
        audience[p].email for p, at in first_sent.items() if p in audience and at > customer_at
    )
    with_leader = [
        r for r in audience.values() if r.manager_id is not None and r.person_id in first_sent
    ]
    briefed_first = [
        r for r in with_leader
        if r.manager_id in first_sent and first_sent[r.manager_id] < first_sent[r.person_id]
    ]  # fmt: skip
    leads = [
        (customer_at - at).total_seconds() / 3600 for p, at in first_sent.items() if p in audience
    ]
    return {
        "launch": message_id,
        "title": message.title,
        "status": message.status,
        "customer_at": customer_at.isoformat(),
        "audience": len(audience),
        "reached": len([p for p in first_sent if p in audience]),
        "reached_before_customers": round(len(reached_before) / n, 4),
        "acknowledged_before_customers": round(len(acked_before) / n, 4),
        "leaders_briefed_before_their_teams": (
            round(len(briefed_first) / len(with_leader), 4) if with_leader else None
        ),
        "released_after_leader_acknowledged": sum(
            1 for r in reasons.values() if r == "briefed by leader"
        ),
        "leader_bypasses": sum(1 for r in reasons.values() if r == "leader bypassed"),
        "released_by_guard": sum(1 for r in reasons.values() if r == "guard"),
        "median_lead_hours": round(statistics.median(leads), 2) if leads else None,
        "breaches": len(breaches),
        "breached": breaches,
        "not_yet_reached": sorted(
            r.email for r in audience.values() if r.person_id not in first_sent
        ),
        "as_of": now.isoformat(timespec="seconds"),
    }


def released_and_sent(
    session: Session, occurrence_id: int
) -> tuple[dict[int, str], dict[int, datetime]]:
    """Why each person of a launch occurrence was released, and when they were first sent
    it. The reason is the one their release recorded, on their first delivery: a fallback
    written later (on another channel, say at the guard) says why it was retried, not why
    they were released."""
    reasons: dict[int, str] = {}
    first_sent: dict[int, datetime] = {}
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.occurrence_id == occurrence_id)
        .order_by(case((Delivery.fallback_from_id.is_(None), 0), else_=1), Delivery.id)
    )
    for d in deliveries:
        reasons.setdefault(d.person_id, (d.payload or {}).get("release", ""))
        if d.status == DeliveryStatus.SENT.value and d.sent_at is not None:
            first_sent[d.person_id] = min(first_sent.get(d.person_id, d.sent_at), d.sent_at)
    return reasons, first_sent


def late_launches(session: Session, now: datetime, ctx: LaunchContext) -> list[str]:
    """Problems with launches still ahead after a directory change: lines naming each launch
    whose timeline no longer reaches everyone in time."""
    found: list[str] = []
    rows = session.execute(
        select(Message, Launch)
        .join(Launch, Launch.message_id == Message.id)
        .where(Message.status == MessageStatus.ACTIVE.value, Launch.customer_at > now)
    ).all()
    for message, launch in rows:
        timeline = plan(session, message, launch, ctx)
        # Whoever joins once the cascade is under way is sent it at once by the guard; what
        # matters is who the plan itself would reach late.
        late = problems(timeline)
        if late:
            found.append(f"launch {message.id} ({message.title}): " + "; ".join(late))
    return found
