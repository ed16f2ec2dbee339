"""Between the JSON API's bodies and the domain: specs from requests, answers from rows."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.directory.audience import (
    Audience,
    audience_zones,
)
from cadence.messages.core import (
    CadenceSpec,
    CoreMessageSpec,
    combine_start,
)
from cadence.messages.preview import UpcomingSend, upcoming_sends
from cadence.planning.recurrence import zone
from cadence.store.models import (
    Cadence,
    Launch,
    Message,
    MessageKind,
    MessageStatus,
    User,
    Variant,
)
from cadence.web.api.schemas import (
    MAX_PREVIEW_SENDS,
    AudienceIn,
    AudienceOut,
    CadenceOut,
    LaunchOut,
    MessageIn,
    MessageOut,
    PreviewOut,
    PreviewSend,
    ZonePreview,
)

# ---------------------------------------------------------------------------------------
# Turning rows into answers


def _describe(session: Session, viewer: Viewer, messages: list[Message]) -> list[MessageOut]:
    user_ids = {m.created_by_id for m in messages} | {m.approved_by_id for m in messages}
    user_ids.discard(None)
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all())
    launch_ids = [m.id for m in messages if m.kind == MessageKind.LAUNCH.value]
    launches = {
        launch.message_id: launch
        for launch in session.scalars(select(Launch).where(Launch.message_id.in_(launch_ids)))
    }
    return [_one(session, viewer, m, launches.get(m.id), emails) for m in messages]


def _audience_out(session: Session, viewer: Viewer, audience: Audience) -> AudienceOut:
    """The audience as this viewer may see it: a leader's names only from their tree."""
    seen = policy.tree_emails(session, viewer, [*audience.people, *audience.trees])
    return AudienceOut(
        everyone=audience.everyone,
        teams=list(audience.teams),
        people=[p for p in audience.people if p in seen],
        trees=[m for m in audience.trees if m in seen],
        description=policy.describe_audience(session, viewer, audience),
    )


def _one(
    session: Session,
    viewer: Viewer,
    message: Message,
    launch: Launch | None,
    emails: dict[int, str],
) -> MessageOut:
    audience = Audience.from_json(message.audience)
    cad = message.cadence
    return MessageOut(
        id=message.id,
        kind=message.kind,
        status=message.status,
        title=message.title,
        body=message.body,
        variants=[v.body for v in message.variants],
        audience=_audience_out(session, viewer, audience),
        outside_tree=policy.left_out(session, viewer, message.id) if message.id else None,
        channels=list(message.channels),
        channel_mode=message.channel_mode,
        cadence=(
            CadenceOut(
                rrule=cad.rrule,
                start=cad.start_local.isoformat(timespec="minutes"),
                end=cad.end_date,
                timezone=cad.timezone or "recipient",
            )
            if cad is not None
            else None
        ),
        launch=(
            LaunchOut(
                customer_at=launch.customer_at.astimezone(zone(launch.customer_zone)),
                customer_zone=launch.customer_zone,
                customer_copy=launch.customer_copy,
                talking_points=launch.talking_points,
                faq=launch.faq,
                lead_hours=launch.lead_hours,
                leader_lead_hours=launch.leader_lead_hours,
                margin_minutes=launch.margin_minutes,
            )
            if launch is not None
            else None
        ),
        remind_after_hours=message.remind_after_hours,
        max_reminders=message.max_reminders,
        escalate=message.escalate,
        version=message.version,
        created_by=emails.get(message.created_by_id) if message.created_by_id else None,
        approved_by=emails.get(message.approved_by_id) if message.approved_by_id else None,
        created_at=message.created_at,
        updated_at=message.updated_at,
    )


def _audience(session: Session, viewer: Viewer, data: AudienceIn) -> Audience:
    """The audience, refused (403) for a leader when it reaches outside their tree."""
    return policy.audience_for(
        session,
        viewer,
        everyone=data.everyone,
        teams=data.teams,
        people=data.people,
        trees=data.trees,
    )


def _core_spec(session: Session, viewer: Viewer, body: MessageIn) -> CoreMessageSpec:
    """The same steps, in the same order, as `cadence message add`."""
    cadence = CadenceSpec(
        rrule=body.rrule,
        start=combine_start(body.start, body.at),
        end_date=body.end,
        timezone=None if body.tz == "recipient" else body.tz,
    )
    return CoreMessageSpec(
        body.title,
        body.body,
        _audience(session, viewer, body.audience),
        cadence,
        list(body.variants),
        list(body.channels),
        "all" if body.all_channels else "first",
        remind_after_hours=body.remind_after_hours,
        max_reminders=body.max_reminders,
        escalate=body.escalate,
    )


def _unsaved(spec: CoreMessageSpec) -> Message:
    """A message that is never added to a session, for previewing a definition."""
    message = Message(
        kind=MessageKind.CORE.value,
        title=spec.title.strip(),
        body=spec.body,
        status=MessageStatus.ACTIVE.value,
        audience=spec.audience.to_json(),
        channels=list(spec.channels),
        channel_mode=spec.channel_mode,
    )
    message.variants = [Variant(position=i, body=b) for i, b in enumerate(spec.variants, start=1)]
    message.cadence = Cadence(
        rrule=spec.cadence.rrule.strip().removeprefix("RRULE:").upper(),
        start_local=spec.cadence.start,
        end_date=spec.cadence.end_date,
        timezone=spec.cadence.timezone,
    )
    return message


def _preview(
    session: Session, message: Message, org_zone: str, now: datetime, count: int
) -> PreviewOut:
    """The next `count` sends in each zone. `upcoming_sends` merges zones into one stream,
    so ask it for more until every zone has `count` (or the cadence ends)."""
    assert message.cadence is not None
    zones = (
        [message.cadence.timezone]
        if message.cadence.timezone
        else audience_zones(session, Audience.from_json(message.audience), org_zone)
    )
    want = count * max(1, len(zones))
    while True:
        sends = upcoming_sends(session, message, org_zone, now, want)
        by_zone: dict[str, list[UpcomingSend]] = {}
        for send in sends:
            by_zone.setdefault(send.zone, []).append(send)
        enough = all(len(by_zone.get(z, [])) >= count for z in zones)
        if enough or len(sends) < want or want >= MAX_PREVIEW_SENDS:
            break
        want = min(want * 2, MAX_PREVIEW_SENDS)
    return PreviewOut(
        zones=[
            ZonePreview(
                zone=name,
                recipients=rows[0].total,
                named=rows[0].recipients,
                sends=[
                    PreviewSend(at=s.at, repetition=s.repetition, variant=s.variant)
                    for s in rows[:count]
                ],
            )
            for name, rows in sorted(by_zone.items())
        ]
    )
