"""The quick-start demo: a sample organisation and core messages that send within seconds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.audience import Audience
from cadence.directory import ImportResult, import_directory, parse_directory
from cadence.messages import CadenceSpec, CoreMessageSpec, add_core_message
from cadence.planning.planner import invalidate
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence, Person

SAMPLE_DIRECTORY = Path(__file__).parent / "samples" / "directory.csv"

MINUTELY_TITLE = "A name, not a number"
WEEKLY_TITLE = "Own the outcome"


@dataclass
class Seeded:
    directory: ImportResult
    messages: list[Message]


def seed(session: Session, now: datetime, org_zone: str) -> Seeded:
    """Load the sample directory and the demo's core messages (once; safe to run again)."""
    result = import_directory(session, parse_directory(SAMPLE_DIRECTORY), full=False, now=now)
    invalidate(session)
    existing = {m.title: m for m in session.scalars(select(Message))}
    messages = []
    if MINUTELY_TITLE not in existing:
        # A few seconds ahead, so the first send comes as soon as the worker is up.
        start = (now + timedelta(seconds=8)).astimezone(UTC).replace(microsecond=0)
        spec = CoreMessageSpec(
            title=MINUTELY_TITLE,
            body="Greet every customer by name and tell them yours.",
            variants=[
                "People remember how you made them feel: use their name.",
                "A customer is a person with a name. Use it, and give yours.",
            ],
            audience=Audience(everyone=True),
            channels=["log"],
            cadence=CadenceSpec(
                rrule="FREQ=MINUTELY", start=start.replace(tzinfo=None), timezone="UTC"
            ),
        )
        messages.append(add_core_message(session, spec, now))
    if WEEKLY_TITLE not in existing:
        spec = CoreMessageSpec(
            title=WEEKLY_TITLE,
            body="We fix the customer's problem, not just the ticket.",
            variants=["Closing a ticket is not the goal; a customer whose problem is gone is."],
            audience=Audience(teams=("Support",)),
            channels=["log"],
            cadence=CadenceSpec(
                rrule="FREQ=WEEKLY;BYDAY=MO",
                start=datetime.combine(now.date(), datetime.min.time()).replace(hour=9),
                timezone=None,
            ),
        )
        messages.append(add_core_message(session, spec, now))
    return Seeded(result, messages)


def sent_since(session: Session, since: datetime) -> list[tuple[int, str]]:
    """(delivery id, line) for deliveries sent at or after `since`, for the live feed."""
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.sent_at,
            Delivery.variant,
            Person.name,
            Person.email,
            Occurrence.zone,
            Message.title,
        )
        .join(Person, Delivery.person_id == Person.id)
        .join(Occurrence, Delivery.occurrence_id == Occurrence.id)
        .join(Message, Occurrence.message_id == Message.id)
        .where(Delivery.status == DeliveryStatus.SENT.value, Delivery.sent_at >= since)
        .order_by(Delivery.id)
    ).all()
    lines = []
    for did, sent_at, variant, name, email, zone, title in rows:
        stamp = sent_at.astimezone().strftime("%H:%M:%S") if sent_at else "--:--:--"
        lines.append(
            (did, f"{stamp}  sent  {title!r} (wording {variant}) to {name} <{email}> [{zone}]")
        )
    return lines
