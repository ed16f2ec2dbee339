"""The JSON API under `/api`: what the CLI does for messages and launches, over HTTP.

Requests are checked by the same domain functions the CLI calls (`build_audience`,
`combine_start`, `add_core_message`, `add_launch`), so a message refused on the command line
is refused here with the same lines. Callers authenticate with a bearer token from
`cadence token create`; a comms user may do anything, a leader only what reaches their own
reporting tree. FastAPI publishes the schema at `/openapi.json` and `/docs`.
"""

from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, selectinload

from cadence.access import policy
from cadence.access.api_tokens import resolve
from cadence.errors import InputError
from cadence.inputs import MAX_ID, parse_id
from cadence.launches.cascade import LaunchContext, LaunchSpec, add_launch, parse_customer_time
from cadence.messages import approvals
from cadence.messages.calendar import CalendarWindow, to_ical, upcoming
from cadence.messages.core import (
    add_core_message,
    list_messages,
    validate_spec,
)
from cadence.messages.decisions import DECISION_TASK
from cadence.store.db import session_scope
from cadence.store.models import (
    Message,
    User,
)
from cadence.web.api.callers import Caller
from cadence.web.api.convert import _audience, _core_spec, _describe, _preview, _unsaved
from cadence.web.api.errors import (
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    UNAUTHORIZED,
    ApiError,
    Responses,
    _ProblemRoute,
)
from cadence.web.api.schemas import (
    ApprovalSetting,
    CalendarEvent,
    CalendarOut,
    LaunchIn,
    MessageId,
    MessageIn,
    MessageOut,
    PreviewOut,
    Problem,
    RejectIn,
)
from cadence.web.deps import WebDeps

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

    def authenticate(token: str | None, feed: bool = False) -> Caller:
        if not token:
            raise ApiError(
                401,
                "authentication required: send 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        with session_scope(deps.sessions) as session:
            user = resolve(session, token, deps.clock(), feed=feed)
            if user is None:
                raise ApiError(
                    401,
                    "the token is not valid: unknown, revoked, its user is disabled, "
                    "or it is a calendar feed token, which reads only /api/calendar.ics",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            return policy.viewer_for(user)

    def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        return authenticate(credentials.credentials if credentials else None)

    def feed_caller(
        token: Annotated[str | None, Depends(_query_token)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        return authenticate(token or (credentials.credentials if credentials else None), feed=True)

    Me = Annotated[Caller, Depends(caller)]

    def transaction() -> AbstractContextManager[Session]:
        """One transaction per request, committed before the answer goes out and rolled
        back on any refusal, so a refused request leaves nothing behind."""
        return session_scope(deps.sessions)

    def user_row(session: Session, me: Caller) -> User:
        user = session.get(User, me.user_id)
        assert user is not None
        return user

    def message_number(text: str) -> int:
        try:
            return parse_id(text, "message id")
        except InputError:
            raise ApiError(404, "no such message: the id must be a whole number from 1 "
                           f"to {MAX_ID}") from None  # fmt: skip

    def launch_context() -> LaunchContext:
        from cadence.launches.cascade import context_from as context

        return context(deps.settings)

    def calendar_window(session: Session, me: Caller, days: int) -> CalendarWindow:
        now = deps.clock()
        return upcoming(
            session,
            deps.settings.timezone,
            now,
            now + timedelta(days=days),
            lambda message: policy.can_read_definition(session, me, message),
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
            spec = _core_spec(session, me, body)
            now = deps.clock()
            message = add_core_message(session, spec, now)
            approvals.submit(session, message, user_row(session, me), now)
            return _describe(session, me, [message])[0]

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
            found = [
                m
                for m in list_messages(session, include_cancelled=include_cancelled)
                if policy.can_read_definition(session, me, m)
            ]
            return _describe(session, me, found)

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
            spec = _core_spec(session, me, body)
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
        number = message_number(message_id)
        with transaction() as session:
            found = session.get(
                Message,
                number,
                options=[selectinload(Message.variants), selectinload(Message.cadence)],
            )
            if found is None or not policy.can_read_definition(session, me, found):
                raise ApiError(404, f"no message with id {number}")
            return _describe(session, me, [found])[0]

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
            audience = _audience(session, me, body.audience)
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
            return _describe(session, me, [message])[0]

    @api.get("/approvals", tags=["approvals"], summary="Messages awaiting approval")
    def pending(me: Me) -> list[MessageOut]:
        """Comms users see everything waiting; a leader sees what they submitted."""
        with transaction() as session:
            mine = None if policy.sees_everything(me) else me.user_id
            return _describe(session, me, approvals.pending(session, mine))

    @api.post(
        "/approvals/{message_id}/approve",
        tags=["approvals"],
        summary="Approve a held message",
        responses=HELD,
    )
    def approve(message_id: MessageId, me: Me) -> MessageOut:
        """Comms users only. A core message is planned from now on; a launch is planned
        again from now and refused (422) if it can no longer reach everyone in time."""
        number = message_number(message_id)
        with transaction() as session:
            approvals.require_comms(user_row(session, me), "approve messages")
            if session.get(Message, number) is None:
                raise ApiError(404, f"no message with id {number}")
            message = approvals.approve(
                session, number, user_row(session, me), deps.clock(), launch_context()
            )
            decided = _describe(session, me, [message])[0]
        # Once committed, the worker tells the author (never twice).
        deps.send_task(DECISION_TASK, [number])
        return decided

    @api.post(
        "/approvals/{message_id}/reject",
        tags=["approvals"],
        summary="Reject a held message",
        responses=HELD,
    )
    def reject(message_id: MessageId, body: RejectIn, me: Me) -> MessageOut:
        """Comms users only. The message is cancelled; nobody had been sent anything."""
        number = message_number(message_id)
        with transaction() as session:
            approvals.require_comms(user_row(session, me), "reject messages")
            if session.get(Message, number) is None:
                raise ApiError(404, f"no message with id {number}")
            message = approvals.reject(
                session, number, user_row(session, me), deps.clock(), body.reason
            )
            decided = _describe(session, me, [message])[0]
        # Once committed, the worker tells the author (never twice).
        deps.send_task(DECISION_TASK, [number])
        return decided

    @api.get(
        "/settings/approval",
        tags=["settings"],
        summary="Whether leaders' messages need approval",
        responses=FORBIDDEN,
    )
    def approval_setting(me: Me) -> ApprovalSetting:
        """Comms users only."""
        if not policy.sees_everything(me):
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
        of its own that reads nothing else (`cadence token create --user EMAIL --name
        calendar --feed-only`, or the dashboard's calendar page) and revoke it if the URL
        leaks.
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
