"""Small builders for test data, written straight through the models."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from cadence.directory.audience import Audience
from cadence.messages.core import CadenceSpec, CoreMessageSpec, add_core_message
from cadence.store.models import Message, Person, Team

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def person(
    session: Session,
    email: str,
    *,
    timezone: str | None = None,
    team: Team | None = None,
    manager: Person | None = None,
    channel: str | None = None,
) -> Person:
    p = Person(
        email=email,
        name=email.split("@")[0].title(),
        timezone=timezone,
        team=team,
        manager=manager,
        channel=channel,
        active=True,
        created_at=T0,
        updated_at=T0,
    )
    session.add(p)
    session.flush()
    return p


def team(session: Session, path: str, parent: Team | None = None) -> Team:
    t = Team(path=path, name=path.rsplit("/", 1)[-1], parent_id=parent.id if parent else None)
    session.add(t)
    session.flush()
    return t


def core_message(
    session: Session,
    *,
    rrule: str = "FREQ=WEEKLY;BYDAY=MO",
    start: datetime = datetime(2026, 3, 2, 9, 0),
    timezone: str | None = None,
    audience: Audience | None = None,
    variants: list[str] | None = None,
    end_date: date | None = None,
    title: str = "Own the outcome",
    body: str = "We fix the customer's problem, not just the ticket.",
    channels: list[str] | None = None,
    channel_mode: str = "first",
) -> Message:
    spec = CoreMessageSpec(
        title=title,
        body=body,
        audience=audience or Audience(everyone=True),
        cadence=CadenceSpec(rrule=rrule, start=start, end_date=end_date, timezone=timezone),
        variants=variants or [],
        channels=channels or ["log"],
        channel_mode=channel_mode,
    )
    return add_core_message(session, spec, now=T0)
