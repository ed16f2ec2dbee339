"""What Cadence will send, as a calendar: for people planning around it, in an app or a feed.

Two kinds of event: each upcoming repetition of an active core message (one per zone when its
recipients are in several, since each zone gets it at its own instant), and each launch's
customer-announcement time, the moment by which staff must all have heard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cadence.directory.audience import Audience
from cadence.messages.preview import UpcomingSend, upcoming_sends
from cadence.planning.recurrence import zone
from cadence.store.models import Launch, Message, MessageKind, MessageStatus

# A rule that repeats every minute makes 20,000 events a fortnight; a calendar that long
# helps nobody, so past this many the answer says it was cut short.
MAX_EVENTS = 1000

Kind = Literal["send", "customer_announcement"]


@dataclass(frozen=True)
class CalendarItem:
    kind: Kind
    message_id: int
    title: str
    at: datetime  # aware, in `zone`
    zone: str
    audience: str
    repetition: int | None = None  # sends only, from 1
    recipients: int | None = None  # sends only, as of now


@dataclass(frozen=True)
class CalendarWindow:
    start: datetime
    end: datetime
    items: list[CalendarItem]
    truncated: bool


def _sends_until(
    session: Session, message: Message, org_zone: str, now: datetime, until: datetime
) -> tuple[list[UpcomingSend], bool]:
    """Sends of `message` from `now` until `until`, and whether the list was cut short.
    `upcoming_sends` counts rather than takes a window, so ask for more until it covers it."""
    want = 64
    while True:
        sends = upcoming_sends(session, message, org_zone, now, want)
        if len(sends) < want or sends[-1].at >= until:
            return [s for s in sends if s.at < until], False
        if want > MAX_EVENTS:
            return sends[:MAX_EVENTS], True
        want *= 4


def upcoming(
    session: Session,
    org_zone: str,
    now: datetime,
    until: datetime,
    visible: Callable[[Message], bool],
) -> CalendarWindow:
    """Events from `now` to `until` of the messages for which `visible` is true."""
    items: list[CalendarItem] = []
    truncated = False
    core = session.scalars(
        select(Message)
        .options(selectinload(Message.cadence), selectinload(Message.variants))
        .where(Message.kind == MessageKind.CORE.value)
        .where(Message.status == MessageStatus.ACTIVE.value)
        .order_by(Message.id)
    )
    for message in core:
        if message.cadence is None or not visible(message):
            continue
        described = Audience.from_json(message.audience).describe()
        sends, cut = _sends_until(session, message, org_zone, now, until)
        truncated = truncated or cut
        items += [
            CalendarItem(
                kind="send",
                message_id=message.id,
                title=message.title,
                at=s.at,
                zone=s.zone,
                audience=described,
                repetition=s.repetition,
                recipients=s.total,
            )
            for s in sends
        ]
    launches = session.execute(
        select(Message, Launch)
        .join(Launch, Launch.message_id == Message.id)
        .where(Message.status == MessageStatus.ACTIVE.value)
        .where(Launch.customer_at >= now, Launch.customer_at < until)
        .order_by(Launch.customer_at)
    ).all()
    items += [
        CalendarItem(
            kind="customer_announcement",
            message_id=message.id,
            title=message.title,
            at=launch.customer_at.astimezone(zone(launch.customer_zone)),
            zone=launch.customer_zone,
            audience=Audience.from_json(message.audience).describe(),
        )
        for message, launch in launches
        if visible(message)
    ]
    items.sort(key=lambda i: (i.at, i.message_id, i.zone))
    if len(items) > MAX_EVENTS:
        items, truncated = items[:MAX_EVENTS], True
    return CalendarWindow(start=now, end=until, items=items, truncated=truncated)


def to_ical(window: CalendarWindow, host: str, stamp: datetime) -> bytes:
    """The window as RFC 5545. UIDs stay the same from one fetch to the next, so calendar
    apps update events in place instead of adding them again."""
    cal = Calendar()
    cal.add("prodid", "-//Cadence//Cadence calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "Cadence")
    for item in window.items:
        event = Event()
        if item.kind == "send":
            uid = f"send-{item.message_id}-{item.repetition}-{item.zone}@{host}"
            summary = f"Send: {item.title}"
            description = (
                f"Repetition {item.repetition} of message {item.message_id}, to "
                f"{item.recipients} people in {item.zone} ({item.audience})."
            )
        else:
            uid = f"launch-{item.message_id}@{host}"
            summary = f"Customers hear: {item.title}"
            description = (
                f"Launch {item.message_id}: customers are told now; all staff in its "
                f"audience ({item.audience}) should have heard before."
            )
        event.add("uid", uid)
        event.add("dtstamp", stamp.astimezone(UTC))
        event.add("dtstart", item.at.astimezone(UTC))
        event.add("summary", summary)
        event.add("description", description)
        event.add("categories", ["Cadence"])
        cal.add_component(event)
    data: bytes = cal.to_ical()
    return data
