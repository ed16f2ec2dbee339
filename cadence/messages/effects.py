"""What a change to a queued message will do, counted before it is made.

A confirmation page says how many planned sends a cancel withdraws, how many written but
unsent deliveries go with them, who of those already told gets a withdrawal notice, and
who is asked to acknowledge again after an edit. Each count uses the condition the action
itself uses (`core.planned_sends`, `core.unsent_deliveries`, `core.latest_repetitions`,
`changes.already_told`), so the page and the action cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.launches.changes import already_told
from cadence.messages.core import latest_repetitions, planned_sends, unsent_deliveries
from cadence.store.models import (
    Delivery,
    DeliveryStatus,
    Message,
    MessageKind,
    Occurrence,
    Person,
)


@dataclass(frozen=True)
class Effects:
    """Counts for one message as it stands now."""

    planned: int  # planned sends (occurrences) a cancel withdraws or a pause skips
    unsent: int  # deliveries written but not sent, withdrawn by a cancel
    told: int  # people a launch already reached: a withdrawal notice or a correction each
    reack: int  # people sent the latest repetition: asked again by a re-acknowledging edit


def effects_of(session: Session, message: Message) -> Effects:
    planned = session.scalar(
        select(func.count()).select_from(Occurrence).where(*planned_sends(message.id))
    )
    unsent = session.scalar(
        select(func.count()).select_from(Delivery).where(*unsent_deliveries(message.id))
    )
    told = 0
    if message.kind == MessageKind.LAUNCH.value:
        told = len({person for person, _ in already_told(session, message.id)})
    roots = [o.id for o in latest_repetitions(session, message.id).values()]
    reack = 0
    if roots:
        reack = int(
            session.scalar(
                select(func.count(func.distinct(Delivery.person_id)))
                .join(Person, Person.id == Delivery.person_id)
                .where(
                    Delivery.occurrence_id.in_(roots),
                    Delivery.status == DeliveryStatus.SENT.value,
                    Person.active.is_(True),
                )
            )
            or 0
        )
    return Effects(int(planned or 0), int(unsent or 0), told, reack)
