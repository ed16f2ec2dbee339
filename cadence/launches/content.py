"""What a launch delivery says: the briefing for leaders, the staff message with the
leader's note, corrections and withdrawals."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.messages.markdown import md_escape
from cadence.planning.recurrence import zone
from cadence.rendering import render
from cadence.store.models import (
    Delivery,
    Launch,
    LeaderNote,
    Message,
)

# What a launch delivery says


def launch_content(
    delivery: Delivery, message: Message, body: str, recipient_zone: str, session: Session
) -> tuple[str, str, str | None, bool]:
    """(title, Markdown body, leader note, answerable) for a delivery of a launch."""
    launch = session.scalar(select(Launch).where(Launch.message_id == message.id))
    assert launch is not None
    purpose = delivery.occurrence.purpose
    payload = delivery.payload or {}
    when = launch.customer_at.astimezone(zone(recipient_zone)).strftime("%A %d %B %Y, %H:%M %Z")
    if purpose == "escalation":
        people = [
            {"name": md_escape(p["name"]), "email": md_escape(p["email"])}
            for p in payload.get("people", [])
        ]
        text = render("launch/bypass.md", people=people, title=md_escape(message.title),
                      customer_at=when)  # fmt: skip
        return f"Briefing not acknowledged: {message.title}", text, None, False
    if purpose == "correction":
        if payload.get("withdrawn"):
            return f"Withdrawn: {message.title}", render("launch/withdrawn.md"), None, False
        text = render(
            "launch/correction.md", body=body, customer_copy=launch.customer_copy, customer_at=when
        )
        return f"Correction: {message.title}", text, None, True
    # A leader's note goes to their own people, the leaders among them with their briefing.
    note = None
    if delivery.person.manager_id is not None:
        note = session.scalar(
            select(LeaderNote.note).where(
                LeaderNote.message_id == message.id,
                LeaderNote.leader_id == delivery.person.manager_id,
            )
        )
    if payload.get("briefing"):
        text = render(
            "launch/briefing.md",
            body=body,
            talking_points=launch.talking_points,
            customer_copy=launch.customer_copy,
            faq=launch.faq,
            customer_at=when,
            release_hint="when you acknowledge, or by your deadline",
        )
        return f"Leader briefing: {message.title}", text, note, True
    text = render(
        "launch/staff.md", body=body, customer_copy=launch.customer_copy, customer_at=when
    )
    return message.title, text, note, True


# ---------------------------------------------------------------------------------------
