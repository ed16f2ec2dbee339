"""The JSON API under `/api`: what the CLI does for messages and launches, over HTTP.

Requests are checked by the same domain functions the CLI calls (`build_audience`,
`combine_start`, `add_core_message`, `add_launch`), so a message refused on the command line
is refused here with the same lines. Callers authenticate with a bearer token from
`cadence token create`; a comms user may do anything, a leader only what reaches their own
reporting tree. FastAPI publishes the schema at `/openapi.json` and `/docs`.
"""

from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from cadence.access.api_tokens import resolve
from cadence.directory.audience import (
    Audience,
    audience_filter,
    audience_zones,
    build_audience,
    tree_of,
)
from cadence.errors import InputError
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch, parse_customer_time
from cadence.messages import approvals
from cadence.messages.calendar import MAX_EVENTS, CalendarWindow, to_ical, upcoming
from cadence.messages.core import (
    CadenceSpec,
    CoreMessageSpec,
    add_core_message,
    combine_start,
    list_messages,
    validate_spec,
)
from cadence.messages.preview import UpcomingSend, upcoming_sends
from cadence.planning.recurrence import zone
from cadence.store.db import session_scope
from cadence.store.models import (
    Cadence,
    Launch,
    Message,
    MessageKind,
    MessageStatus,
    Person,
    User,
    Variant,
)
from cadence.web.deps import WebDeps

# Enough for a hundred sends in each of fifty zones; a preview never needs more.
MAX_PREVIEW_SENDS = 5000
# Ids are 32-bit integers in every database Cadence supports; a larger one names nothing.
MessageId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The message's id.")]

# ---------------------------------------------------------------------------------------
# Request and response bodies


class AudienceIn(BaseModel):
    """Who a message is for. Give `everyone`, or any mix of teams, people and trees."""

    model_config = ConfigDict(extra="forbid")

    everyone: bool = Field(
        False,
        description="All active staff. Comms users only; not combined with the others.",
        strict=True,
    )
    teams: list[str] = Field(
        default_factory=list,
        description="Team paths such as `Support/EMEA`; each includes its sub-teams.",
    )
    people: list[str] = Field(default_factory=list, description="People, by email.")
    trees: list[str] = Field(
        default_factory=list,
        description="Managers, by email: each with everyone below them, at every level.",
    )


class AudienceOut(AudienceIn):
    description: str = Field(description="The audience in words, as the CLI shows it.")


class MessageIn(BaseModel):
    """A core message: the same fields as `cadence message add`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Own the outcome",
                    "body": "We fix the customer's problem, not just the ticket.",
                    "variants": ["A closed ticket is not the goal; a solved problem is."],
                    "audience": {"teams": ["Support"]},
                    "rrule": "FREQ=WEEKLY;BYDAY=MO",
                    "start": "2026-03-02",
                    "at": "09:00",
                }
            ]
        },
    )

    title: str = Field(description="Short title, shown as the subject.")
    body: str = Field(
        description="Markdown body; a template that may use `{{ person.first_name }}` and the "
        "other fields the README lists, checked in Jinja2's sandbox."
    )
    variants: list[str] = Field(
        default_factory=list,
        description="More wordings: repetition 1 uses the body, 2 the first variant, and so on.",
    )
    audience: AudienceIn
    channels: list[str] = Field(
        default_factory=lambda: ["slack", "email"],
        description="Channels allowed, in order of preference (slack, email, log).",
    )
    all_channels: bool = Field(
        False,
        description="Send on every listed channel to everyone, not just one each.",
        strict=True,
    )
    rrule: str = Field(description="RFC 5545 RRULE, with or without `RRULE:`.")
    start: str = Field(
        description="First candidate (DTSTART): `YYYY-MM-DD` with `at`, or `YYYY-MM-DDTHH:MM`."
    )
    at: str | None = Field(None, description="Wall-clock time `HH:MM` when `start` is a date.")
    end: date | None = Field(None, description="Last day, inclusive.")
    tz: str = Field(
        "recipient",
        description="`recipient`: the wall-clock time in each person's own zone; or an IANA "
        "zone, for one instant for everyone.",
    )
    remind_after_hours: float | None = Field(
        None, description="Hours before reminding who has not acknowledged (0: never).", strict=True
    )
    max_reminders: int | None = Field(None, description="Reminders at most.", strict=True)
    escalate: bool | None = Field(
        None, description="After the last reminder, a digest to each manager.", strict=True
    )


class LaunchIn(BaseModel):
    """A launch: the same fields as `cadence launch add`."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="Short title.")
    body: str = Field(description="The staff message (Markdown template).")
    customer_copy: str = Field(description="What customers will be told; staff see it too.")
    customer_at: str = Field(description="When customers hear of it: `YYYY-MM-DDTHH:MM` in `tz`.")
    tz: str = Field(description="IANA zone of `customer_at`.")
    talking_points: str | None = Field(None, description="For leaders' briefings.")
    faq: str | None = Field(None, description="Questions people may ask, for leaders.")
    audience: AudienceIn
    channels: list[str] = Field(
        default_factory=lambda: ["slack", "email"], description="Channels, in order."
    )
    lead_hours: float = Field(
        24.0, description="Hours before customers everyone has it.", strict=True
    )
    leader_lead_hours: float | None = Field(
        None,
        description="Hours each leader gets before their people (default: a working day).",
        strict=True,
    )
    margin_minutes: float = Field(60.0, description="Safety margin, in minutes.", strict=True)


class CadenceOut(BaseModel):
    rrule: str
    start: str = Field(description="DTSTART as wall-clock time, `YYYY-MM-DDTHH:MM` (no offset).")
    end: date | None = Field(description="Last day, inclusive.")
    timezone: str = Field(description="`recipient` or a fixed IANA zone.")


class LaunchOut(BaseModel):
    customer_at: datetime = Field(description="When customers hear, in `customer_zone`.")
    customer_zone: str
    customer_copy: str
    talking_points: str | None
    faq: str | None
    lead_hours: float
    leader_lead_hours: float | None
    margin_minutes: float


class MessageOut(BaseModel):
    id: int
    kind: Literal["core", "launch", "update"]
    status: Literal["active", "paused", "cancelled", "awaiting_approval"] = Field(
        description="`awaiting_approval`: held for a comms user; nothing is planned or sent."
    )
    title: str
    body: str
    variants: list[str]
    audience: AudienceOut
    channels: list[str]
    channel_mode: Literal["first", "all"]
    cadence: CadenceOut | None = Field(description="For core messages.")
    launch: LaunchOut | None = Field(description="For launches.")
    remind_after_hours: float | None
    max_reminders: int | None
    escalate: bool | None
    version: int
    created_by: str | None = Field(description="Email of the user who queued it.")
    approved_by: str | None = Field(description="Email of the comms user who approved it.")
    created_at: datetime
    updated_at: datetime


class PreviewSend(BaseModel):
    at: datetime = Field(description="When, in the zone's own time (with its UTC offset).")
    repetition: int = Field(description="1 for the first repetition.")
    variant: int = Field(description="Which wording: 0 is the body, 1 the first variant.")


class ZonePreview(BaseModel):
    zone: str = Field(description="The zone these sends are timed in.")
    recipients: int = Field(description="How many people are in it today.")
    named: list[str] = Field(description="The first few of them, by email.")
    sends: list[PreviewSend]


class PreviewOut(BaseModel):
    zones: list[ZonePreview] = Field(description="One entry per zone, with its next sends.")


class CalendarEvent(BaseModel):
    kind: Literal["send", "customer_announcement"] = Field(
        description="A repetition of a core message, or the moment customers hear of a launch."
    )
    message_id: int
    title: str
    at: datetime = Field(description="In the zone's own time (with its UTC offset).")
    zone: str
    repetition: int | None = Field(description="For sends: 1 for the first repetition.")
    recipients: int | None = Field(description="For sends: how many people, as of now.")
    audience: str


class CalendarOut(BaseModel):
    start: datetime
    end: datetime
    events: list[CalendarEvent]
    truncated: bool = Field(description=f"More than {MAX_EVENTS} events: the latest were left out.")


class ApprovalSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    require_approval_for_leaders: bool = Field(
        description="Hold messages and launches created by leaders until a comms user approves.",
        strict=True,
    )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why, so the author knows what to change.")


class Problem(BaseModel):
    """Every error this API itself returns."""

    detail: str = Field(description="What went wrong, in one sentence.")
    problems: list[str] = Field(
        default_factory=list, description="One line per problem, all reported at once."
    )


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where in the request, e.g. body, title.")
    msg: str
    type: str


class ValidationFailure(BaseModel):
    """FastAPI's answer to a request that is not the right shape (before Cadence sees it)."""

    detail: list[ValidationIssue]


# ---------------------------------------------------------------------------------------
# Errors


@dataclass
class ApiError(Exception):
    status: int
    detail: str
    problems: list[str] = field(default_factory=list)
    headers: dict[str, str] | None = None


def _problem(
    status: int, detail: str, problems: list[str], headers: dict[str, str] | None = None
) -> JSONResponse:
    body = Problem(detail=detail, problems=problems).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


class _ProblemRoute(APIRoute):
    """Turns domain errors into `{"detail", "problems"}` answers. A route class rather than
    app-wide exception handlers, so the API's error format stays the API's own."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except ApiError as exc:
                return _problem(exc.status, exc.detail, exc.problems, exc.headers)
            except approvals.NotAllowed as exc:
                return _problem(403, str(exc), [])
            except approvals.NotPending as exc:
                return _problem(409, exc.summary, exc.problems)
            except InputError as exc:
                return _problem(422, exc.summary, exc.problems)

        return handler


# OpenAPI `responses` entries, shared by the routes below.
Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: {"model": Problem, "description": "No token, or not a valid one."}}
FORBIDDEN: Responses = {
    403: {"model": Problem, "description": "Not allowed for this user's role or tree."}
}
NOT_FOUND: Responses = {
    404: {"model": Problem, "description": "No such message visible to this user."}
}
INVALID: Responses = {
    422: {
        "model": Problem | ValidationFailure,
        "description": "Refused by the same checks as the CLI, one line per problem. A body "
        "that is not the right shape gets FastAPI's usual validation answer instead.",
    }
}

# ---------------------------------------------------------------------------------------
# Who is calling, and what they may reach


@dataclass(frozen=True)
class Caller:
    """The user behind a request, detached from any session."""

    id: int
    email: str
    role: str
    person_id: int | None

    @property
    def comms(self) -> bool:
        return self.role == approvals.COMMS


class Scope:
    """A leader's reach: their reporting tree. An audience is inside it when everyone it can
    name (people, trees, every active member of each team) is in the tree."""

    def __init__(self, session: Session, person_id: int | None) -> None:
        self.session = session
        self.person_id = person_id
        self._inside: dict[str, bool] = {}
        self._teams: dict[str, int] = {}

    def _in_tree(self, person_id: int, email: str) -> bool:
        if email not in self._inside:
            found = self.session.scalar(
                select(Person.id).where(Person.email == email, Person.id.in_(tree_of(person_id)))
            )
            self._inside[email] = found is not None
        return self._inside[email]

    def _outside_in_team(self, person_id: int, path: str) -> int:
        if path not in self._teams:
            condition = audience_filter(Audience(teams=(path,))) & Person.id.not_in(
                tree_of(person_id)
            )
            count = self.session.scalar(select(func.count()).select_from(Person).where(condition))
            self._teams[path] = int(count or 0)
        return self._teams[path]

    def outside(self, audience: Audience) -> list[str]:
        """What in `audience` lies outside the tree, one line each; empty when all inside."""
        me = self.person_id
        if me is None:
            return ["your user is not linked to a person in the directory, so has no tree"]
        found: list[str] = []
        if audience.everyone:
            found.append("everyone: the whole organisation")
        for path in audience.teams:
            n = self._outside_in_team(me, path)
            if n:
                people = "person" if n == 1 else "people"
                found.append(f"team {path!r}: {n} {people} in it outside your tree")
        found += [f"person {p}" for p in audience.people if not self._in_tree(me, p)]
        found += [f"tree of {m}" for m in audience.trees if not self._in_tree(me, m)]
        return found

    def require(self, audience: Audience) -> None:
        found = self.outside(audience)
        if found:
            raise ApiError(403, "the audience reaches outside your reporting tree", found)


def _visible(caller: Caller, scope: Scope, message: Message) -> bool:
    if caller.comms or message.created_by_id == caller.id:
        return True
    return not scope.outside(Audience.from_json(message.audience))


# ---------------------------------------------------------------------------------------
# Turning rows into answers


def _describe(session: Session, messages: list[Message]) -> list[MessageOut]:
    user_ids = {m.created_by_id for m in messages} | {m.approved_by_id for m in messages}
    user_ids.discard(None)
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all())
    launch_ids = [m.id for m in messages if m.kind == MessageKind.LAUNCH.value]
    launches = {
        launch.message_id: launch
        for launch in session.scalars(select(Launch).where(Launch.message_id.in_(launch_ids)))
    }
    return [_one(m, launches.get(m.id), emails) for m in messages]


def _one(message: Message, launch: Launch | None, emails: dict[int, str]) -> MessageOut:
    audience = Audience.from_json(message.audience)
    cad = message.cadence
    return MessageOut(
        id=message.id,
        kind=message.kind,
        status=message.status,
        title=message.title,
        body=message.body,
        variants=[v.body for v in message.variants],
        audience=AudienceOut(
            everyone=audience.everyone,
            teams=list(audience.teams),
            people=list(audience.people),
            trees=list(audience.trees),
            description=audience.describe(),
        ),
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


def _audience(session: Session, data: AudienceIn) -> Audience:
    return build_audience(
        session, everyone=data.everyone, teams=data.teams, people=data.people, trees=data.trees
    )


def _core_spec(session: Session, body: MessageIn) -> CoreMessageSpec:
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
        _audience(session, body.audience),
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


# ---------------------------------------------------------------------------------------
# The routes

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from `cadence token create --user EMAIL --name NAME`.",
)
_query_token = APIKeyQuery(
    name="token",
    auto_error=False,
    description="The same token, for calendar apps, which cannot send headers.",
)

REFUSED: Responses = {**FORBIDDEN, **INVALID}
HELD: Responses = {
    **FORBIDDEN,
    **NOT_FOUND,
    409: {"model": Problem, "description": "Not awaiting approval."},
    **INVALID,
}
ICS: Responses = {
    200: {
        "description": "An RFC 5545 calendar: one VEVENT per send or launch.",
        "content": {"text/calendar": {"schema": {"type": "string"}}},
    }
}
Days = Annotated[int, Query(ge=1, le=366, description="How many days ahead, from now.")]


def router(deps: WebDeps) -> APIRouter:
    api = APIRouter(prefix="/api", route_class=_ProblemRoute, responses={**UNAUTHORIZED})

    def authenticate(token: str | None) -> Caller:
        if not token:
            raise ApiError(
                401,
                "authentication required: send 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        with session_scope(deps.sessions) as session:
            user = resolve(session, token, deps.clock())
            if user is None:
                raise ApiError(
                    401,
                    "the token is not valid: unknown, revoked, or its user is disabled",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            return Caller(user.id, user.email, user.role, user.person_id)

    def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        return authenticate(credentials.credentials if credentials else None)

    def feed_caller(
        token: Annotated[str | None, Depends(_query_token)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        return authenticate(token or (credentials.credentials if credentials else None))

    Me = Annotated[Caller, Depends(caller)]

    def transaction() -> AbstractContextManager[Session]:
        """One transaction per request, committed before the answer goes out and rolled
        back on any refusal, so a refused request leaves nothing behind."""
        return session_scope(deps.sessions)

    def user_row(session: Session, me: Caller) -> User:
        user = session.get(User, me.id)
        assert user is not None
        return user

    def launch_context() -> LaunchContext:
        from cadence.launches.cascade import context_from as context

        return context(deps.settings)

    def calendar_window(session: Session, me: Caller, days: int) -> CalendarWindow:
        now = deps.clock()
        scope = Scope(session, me.person_id)
        return upcoming(
            session,
            deps.settings.timezone,
            now,
            now + timedelta(days=days),
            lambda message: _visible(me, scope, message),
        )

    @api.post(
        "/messages",
        status_code=201,
        tags=["messages"],
        summary="Add a core message",
        responses=REFUSED,
    )
    def add_message(body: MessageIn, me: Me) -> MessageOut:
        """Store a core message that repeats on its cadence. Every problem with it is
        reported at once and nothing is stored. A leader may only address their own
        reporting tree; with approval required, a leader's message waits as
        `awaiting_approval` and nothing is planned until a comms user approves it."""
        with transaction() as session:
            spec = _core_spec(session, body)
            if not me.comms:
                Scope(session, me.person_id).require(spec.audience)
            now = deps.clock()
            message = add_core_message(session, spec, now)
            approvals.submit(session, message, user_row(session, me), now)
            return _describe(session, [message])[0]

    @api.get("/messages", tags=["messages"], summary="List messages")
    def messages(
        me: Me,
        include_cancelled: Annotated[
            bool, Query(description="Include cancelled messages.")
        ] = False,
    ) -> list[MessageOut]:
        """Comms users see every message; a leader sees the ones they created and the ones
        whose whole audience is in their reporting tree."""
        with transaction() as session:
            scope = Scope(session, me.person_id)
            found = [
                m
                for m in list_messages(session, include_cancelled=include_cancelled)
                if _visible(me, scope, m)
            ]
            return _describe(session, found)

    @api.post(
        "/messages/preview",
        tags=["messages"],
        summary="Preview a core message's sends",
        responses=REFUSED,
    )
    def preview(
        body: MessageIn,
        me: Me,
        count: Annotated[int, Query(ge=1, le=100, description="Sends per zone.")] = 10,
    ) -> PreviewOut:
        """The next sends of a message as it would be stored, per zone, without storing it.
        Refused exactly as adding it would be."""
        with transaction() as session:
            spec = _core_spec(session, body)
            if not me.comms:
                Scope(session, me.person_id).require(spec.audience)
            problems = validate_spec(spec)
            if problems:
                raise InputError("message refused:", problems)
            return _preview(session, _unsaved(spec), deps.settings.timezone, deps.clock(), count)

    @api.get(
        "/messages/{message_id}",
        tags=["messages"],
        summary="Show one message",
        responses=NOT_FOUND,
    )
    def message(message_id: MessageId, me: Me) -> MessageOut:
        """One message with its wordings, its cadence or launch timing, and who queued it."""
        with transaction() as session:
            found = session.get(
                Message,
                message_id,
                options=[selectinload(Message.variants), selectinload(Message.cadence)],
            )
            if found is None or not _visible(me, Scope(session, me.person_id), found):
                raise ApiError(404, f"no message with id {message_id}")
            return _describe(session, [found])[0]

    @api.post(
        "/launches",
        status_code=201,
        tags=["launches"],
        summary="Add a launch",
        responses=REFUSED,
    )
    def add_launch_(body: LaunchIn, me: Me) -> MessageOut:
        """Store a launch, or refuse it (422, one line per tier that would miss, then a
        customer time that works) when its timeline cannot reach every member of staff
        before customers hear."""
        when = parse_customer_time(body.customer_at, body.tz)
        with transaction() as session:
            audience = _audience(session, body.audience)
            if not me.comms:
                Scope(session, me.person_id).require(audience)
            spec = LaunchSpec(
                title=body.title, body=body.body, customer_copy=body.customer_copy,
                customer_at=when, customer_zone=body.tz, audience=audience,
                channels=list(body.channels), talking_points=body.talking_points, faq=body.faq,
                lead_hours=body.lead_hours, leader_lead_hours=body.leader_lead_hours,
                margin_minutes=body.margin_minutes,
            )  # fmt: skip
            now = deps.clock()
            message = add_launch(session, spec, now, launch_context())
            approvals.submit(session, message, user_row(session, me), now)
            return _describe(session, [message])[0]

    @api.get("/approvals", tags=["approvals"], summary="Messages awaiting approval")
    def pending(me: Me) -> list[MessageOut]:
        """Comms users see everything waiting; a leader sees what they submitted."""
        with transaction() as session:
            return _describe(session, approvals.pending(session, None if me.comms else me.id))

    @api.post(
        "/approvals/{message_id}/approve",
        tags=["approvals"],
        summary="Approve a held message",
        responses=HELD,
    )
    def approve(message_id: MessageId, me: Me) -> MessageOut:
        """Comms users only. A core message is planned from now on; a launch is planned
        again from now and refused (422) if it can no longer reach everyone in time."""
        with transaction() as session:
            approvals.require_comms(user_row(session, me), "approve messages")
            if session.get(Message, message_id) is None:
                raise ApiError(404, f"no message with id {message_id}")
            message = approvals.approve(
                session, message_id, user_row(session, me), deps.clock(), launch_context()
            )
            return _describe(session, [message])[0]

    @api.post(
        "/approvals/{message_id}/reject",
        tags=["approvals"],
        summary="Reject a held message",
        responses=HELD,
    )
    def reject(message_id: MessageId, body: RejectIn, me: Me) -> MessageOut:
        """Comms users only. The message is cancelled; nobody had been sent anything."""
        with transaction() as session:
            approvals.require_comms(user_row(session, me), "reject messages")
            if session.get(Message, message_id) is None:
                raise ApiError(404, f"no message with id {message_id}")
            message = approvals.reject(
                session, message_id, user_row(session, me), deps.clock(), body.reason
            )
            return _describe(session, [message])[0]

    @api.get(
        "/settings/approval",
        tags=["settings"],
        summary="Whether leaders' messages need approval",
        responses=FORBIDDEN,
    )
    def approval_setting(me: Me) -> ApprovalSetting:
        """Comms users only."""
        if not me.comms:
            raise approvals.NotAllowed("only comms users can see the approval setting")
        with transaction() as session:
            value = approvals.requires_approval(session)
        return ApprovalSetting(require_approval_for_leaders=value)

    @api.put(
        "/settings/approval",
        tags=["settings"],
        summary="Require approval of leaders' messages, or not",
        responses=FORBIDDEN,
    )
    def set_approval(body: ApprovalSetting, me: Me) -> ApprovalSetting:
        """Comms users only. Turning it off does not release messages already waiting:
        each is still approved or rejected on its own."""
        with transaction() as session:
            value = approvals.set_requires_approval(
                session, user_row(session, me), body.require_approval_for_leaders, deps.clock()
            )
        return ApprovalSetting(require_approval_for_leaders=value)

    @api.get("/calendar", tags=["calendar"], summary="Upcoming sends and launches")
    def calendar(me: Me, days: Days = 14) -> CalendarOut:
        """Every upcoming send of an active core message (one per repetition and zone) and
        every customer-announcement time of an active launch, among the messages this
        user can see (as `GET /api/messages`). At most 1000 events; `truncated` says when
        there were more."""
        with transaction() as session:
            window = calendar_window(session, me, days)
        return CalendarOut(
            start=window.start,
            end=window.end,
            events=[CalendarEvent(**asdict(item)) for item in window.items],
            truncated=window.truncated,
        )

    @api.get(
        "/calendar.ics",
        tags=["calendar"],
        summary="The calendar as an iCalendar feed",
        response_class=Response,
        responses=ICS,
    )
    def calendar_feed(me: Annotated[Caller, Depends(feed_caller)], days: Days = 14) -> Response:
        """The same events as `GET /api/calendar`, to subscribe to from a calendar app.

        Calendar apps cannot send an `Authorization` header, so this feed also takes the
        token as `?token=TOKEN`. A URL is easily logged or passed on: give the feed a token
        of its own (`cadence token create --user EMAIL --name calendar`) and revoke it if
        the URL leaks.
        """
        with transaction() as session:
            window = calendar_window(session, me, days)
        host = urlsplit(deps.settings.base_url).hostname or "cadence"
        return Response(
            to_ical(window, host, deps.clock()),
            media_type="text/calendar; charset=utf-8",
            headers={
                "Content-Disposition": 'inline; filename="cadence.ics"',
                "Cache-Control": "private, no-store",
            },
        )

    return api
