"""The demo's seed gives every dashboard page something to show: a comms user, a leader user
linked to their directory entry, and a leader's message waiting for approval; run again, it
adds nothing twice and shows no password again."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadence.access.users import authenticate, get_user
from cadence.cli.demo import COMMS_EMAIL, LEADER_EMAIL, PENDING_TITLE, seed
from cadence.config import Settings
from cadence.launches.cascade import context_from
from cadence.messages import approvals
from cadence.store.models import Message, MessageStatus, Person, User

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DEMO_DAYS = "mon,tue,wed,thu,fri,sat,sun"


def test_the_demo_seeds_a_leader_and_a_pending_approval_once(
    session: Session, settings: Settings
) -> None:
    # The demo's own working hours: round the clock.
    demo = settings.model_copy(
        update={"work_start": "00:00", "work_end": "23:59", "work_days": DEMO_DAYS}
    )
    seeded = seed(session, NOW, context_from(demo))
    session.commit()
    passwords = {}
    for note in seeded.notes:
        if found := re.fullmatch(r"dashboard sign-in \((\w+)\): (\S+) / (\S+)", note):
            passwords[found[2]] = (found[1], found[3])
    assert set(passwords) == {COMMS_EMAIL, LEADER_EMAIL}

    leader = get_user(session, LEADER_EMAIL)
    assert passwords[LEADER_EMAIL][0] == "leader"
    assert authenticate(session, LEADER_EMAIL, passwords[LEADER_EMAIL][1]) is not None
    linked = session.get(Person, leader.person_id)
    assert linked is not None and linked.email == LEADER_EMAIL

    waiting = approvals.pending(session)
    assert [m.title for m in waiting] == [PENDING_TITLE]
    assert waiting[0].status == MessageStatus.AWAITING_APPROVAL.value
    assert waiting[0].created_by_id == leader.id
    assert approvals.requires_approval(session)

    again = seed(session, NOW, context_from(demo))
    session.commit()
    assert not any(" / " in note for note in again.notes)
    assert session.scalar(select(func.count()).select_from(User)) == 2
    count = select(func.count()).select_from(Message).where(Message.title == PENDING_TITLE)
    assert session.scalar(count) == 1
