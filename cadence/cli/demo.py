"""The quick-start demo: a sample organisation and core messages that send within seconds."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access.users import create_user, get_user
from cadence.directory.audience import Audience
from cadence.directory.files import parse_directory
from cadence.directory.people import ImportResult, import_directory
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch
from cadence.messages.approvals import set_requires_approval, submit
from cadence.messages.core import CadenceSpec, CoreMessageSpec, add_core_message
from cadence.messages.planner import invalidate
from cadence.store.models import Delivery, DeliveryStatus, Message, Occurrence, Person, User

# The sample organisation ships inside the package (see pyproject's package-data).
SAMPLE_DIRECTORY = Path(str(files("cadence") / "samples" / "directory.csv"))

MINUTELY_TITLE = "A name, not a number"
WEEKLY_TITLE = "Own the outcome"


LAUNCH_TITLE = "Same-day refunds"


@dataclass
class Seeded:
    directory: ImportResult
    messages: list[Message]
    notes: list[str] = field(default_factory=list)


def seed(session: Session, now: datetime, ctx: LaunchContext) -> Seeded:
    """Load the sample directory, the demo's core messages and a launch a few minutes ahead
    (once; safe to run again), and a comms and a leader user for the dashboard."""
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
    if LAUNCH_TITLE not in existing:
        messages.append(_launch(session, now, ctx))
    return Seeded(result, messages, _demo_users(session, now))


def _launch(session: Session, now: datetime, ctx: LaunchContext) -> Message:
    """A launch customers hear of in 12 minutes: leaders get two minutes each, and
    everyone must have it 6 minutes before customers."""
    spec = LaunchSpec(
        title=LAUNCH_TITLE,
        body="From today, refunds under 50 EUR are approved at once, {{ person.first_name }}.",
        customer_copy="Refunds under 50 EUR now reach your account the same day.",
        # Rounded up to the minute, never down: the cascade needs its full 12 minutes.
        customer_at=(now + timedelta(minutes=13)).replace(second=0, microsecond=0),
        customer_zone="Europe/London",
        audience=Audience(teams=("Support",)),
        channels=["log"],
        talking_points="Fewer repeat contacts; agents no longer wait for approval.",
        lead_hours=0.1,
        leader_lead_hours=2 / 60,
        margin_minutes=1,
    )
    return add_launch(session, spec, now, ctx)


COMMS_EMAIL = "comms@example.com"
LEADER_EMAIL = "amara.okafor@example.com"  # leads Support/EMEA in the sample directory
PENDING_TITLE = "Say sorry once, then fix it"


def _demo_users(session: Session, now: datetime) -> list[str]:
    """A comms user and a leader user for the dashboard, each with a password made now and
    shown once, and a message the leader queued that waits for the comms user's approval,
    so the dashboard's approval page has something to show."""
    notes = [
        _demo_user(session, COMMS_EMAIL, "comms", now),
        _demo_user(session, LEADER_EMAIL, "leader", now),
    ]
    comms = get_user(session, COMMS_EMAIL)
    if session.scalar(select(Message.id).where(Message.title == PENDING_TITLE)) is None:
        set_requires_approval(session, comms, True, now)
        spec = CoreMessageSpec(
            title=PENDING_TITLE,
            body="When something went wrong, apologise once and spend the rest of the "
            "conversation fixing it, {{ person.first_name }}.",
            audience=Audience(trees=(LEADER_EMAIL,)),
            channels=["log"],
            cadence=CadenceSpec(
                rrule="FREQ=WEEKLY;BYDAY=WE",
                start=datetime.combine(now.date(), datetime.min.time()).replace(hour=10),
                timezone=None,
            ),
        )
        submit(session, add_core_message(session, spec, now), get_user(session, LEADER_EMAIL), now)
        notes.append(f"waiting for approval: {PENDING_TITLE!r}, queued by {LEADER_EMAIL}")
    return notes


def _demo_user(session: Session, email: str, role: str, now: datetime) -> str:
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        return f"dashboard sign-in ({role}): {email} (password shown when it was first created)"
    password = secrets.token_urlsafe(12)
    create_user(session, email, role=role, password=password, now=now)
    return f"dashboard sign-in ({role}): {email} / {password}"


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
