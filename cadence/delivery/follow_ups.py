"""Which zone a follow-up of an unanswered occurrence is timed in, and who it goes to.

Reminders and digests wait for working hours in the recipient's own zone. A message in
recipients' zones already has one occurrence per zone, so its follow-ups share its zone. A
message in a fixed zone reaches people in many zones with one occurrence, so its follow-ups
are split: one chain per recipient zone, each reaching the people of that zone only.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from cadence.answers.acks import FOLLOW_UPS, unanswered_recipients
from cadence.directory.audience import effective_zone
from cadence.store.models import Delivery, Message, Occurrence, Person


def _split_by_zone(message: Message) -> bool:
    return message.cadence is not None and message.cadence.timezone is not None


def follow_up_zones(
    session: Session, message: Message, occurrence: Occurrence, root: Occurrence, org_zone: str
) -> list[str]:
    """The zones the follow-ups after `occurrence` are planned in: each recipient zone of
    a fixed-zone message's repetition, else the zone of the chain it continues."""
    if not _split_by_zone(message) or occurrence.id != root.id:
        return [occurrence.zone]
    zone_col = effective_zone(org_zone)
    zones = session.scalars(
        select(zone_col)
        .join(Delivery, Delivery.person_id == Person.id)
        .where(Delivery.occurrence_id == root.id)
        .distinct()
    )
    return sorted(zones)


def waiting_for(
    session: Session, message: Message, occurrence: Occurrence, root: Occurrence, org_zone: str
) -> list[int]:
    """Who has not answered `root` and is followed up by `occurrence`."""
    if occurrence.purpose not in FOLLOW_UPS or not _split_by_zone(message):
        return unanswered_recipients(session, root)
    return unanswered_recipients(session, root, _zone_share(session, occurrence, org_zone))


def _zone_share(session: Session, occurrence: Occurrence, org_zone: str) -> ColumnElement[bool]:
    """The people of the follow-up's own zone. Those whose zone has no follow-up of this
    number (they moved zone since, or it was planned as one for everyone) go with the
    first, so nobody is left out and nobody is followed up twice."""
    zone_col = effective_zone(org_zone)
    siblings = dict(
        session.execute(
            select(Occurrence.zone, Occurrence.id).where(
                Occurrence.parent_id == occurrence.parent_id,
                Occurrence.purpose == occurrence.purpose,
                Occurrence.follow_up == occurrence.follow_up,
            )
        ).all()
    )
    mine = zone_col == occurrence.zone
    if occurrence.id != min(siblings.values(), default=occurrence.id):
        return mine
    return mine | zone_col.not_in(list(siblings))
