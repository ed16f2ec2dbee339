"""The approvals page: what leaders queued that waits for comms, and approving or
rejecting it.

Comms users only: a leader asking for it gets 404, as for a page that does not exist.
Each waiting message shows who queued it and when, its audience and head-count, and a
preview rendered by the channels' own formatting (the email's body and the Slack blocks,
personalised for the first person in its audience). Approving and rejecting call
`cadence.messages.approvals`, like the API; the author is then told by the worker
(`cadence.messages.decisions`), and sees the decision on their messages list and page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.delivery.channels.base import Outgoing
from cadence.delivery.formatting.email import email_parts
from cadence.delivery.formatting.slack import slack_message
from cadence.delivery.sending import recipient_of
from cadence.directory.audience import Audience, audience_filter, count_members
from cadence.errors import InputError
from cadence.inputs import is_id
from cadence.launches.cascade import context_from
from cadence.messages import approvals
from cadence.messages.decisions import DECISION_TASK
from cadence.messages.personalise import context_for_person, personalise
from cadence.planning.rule_words import describe
from cadence.store.db import session_scope
from cadence.store.models import Launch, Message, Person, User
from cadence.web.dashboard.common import NOT_FOUND, Frame, Refused
from cadence.web.dashboard.compose_preview import email_body, slack_html
from cadence.web.dashboard.manage_view import author_of, authors, next_sends
from cadence.web.dashboard.tables import Present

APPROVE_PURPOSE = "approvals-approve"
REJECT_PURPOSE = "approvals-reject"
DONE = {"approved": "approved: it is active now", "rejected": "rejected"}


@dataclass(frozen=True)
class Preview:
    """A message as its first recipient would get it, or why it cannot be shown."""

    recipient: str
    subject: str = ""
    email_html: str = ""  # Markup when set: the email's own HTML body
    slack: str = ""  # Markup when set: the Block Kit message drawn as Slack shows it
    problem: str = ""


def preview_of(session: Session, message: Message, org_zone: str) -> Preview:
    person = session.scalar(
        select(Person)
        .where(audience_filter(Audience.from_json(message.audience or {})))
        .options(joinedload(Person.team), joinedload(Person.manager))
        .order_by(Person.email)
        .limit(1)
    )
    if person is None:
        return Preview("nobody", problem="Nobody is in its audience now.")
    try:
        body = personalise(message.body, context_for_person(person, message.title, org_zone))
    except Exception as exc:  # a template that fails for this person is worth showing
        return Preview(person.email, problem=f"It cannot be rendered for {person.email}: {exc}")
    out = Outgoing(0, recipient_of(person, org_zone), message.title, body, "", answerable=False)
    _, blocks = slack_message(out, question_enabled=False)
    subject, _, page = email_parts(out)
    return Preview(
        person.email, subject=subject, email_html=email_body(page), slack=slack_html(blocks)
    )


@dataclass(frozen=True)
class Waiting:
    message: Message
    author: str
    queued_at: str
    audience: str
    head_count: int
    schedule: str
    preview: Preview


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps, settings = frame.deps, frame.settings
    present = Present(ZoneInfo(settings.timezone), deps.clock)
    launch_ctx = context_from(settings)

    def schedule_of(session: Session, message: Message, next_at: datetime | None) -> str:
        if message.kind == "launch":
            launch = session.get(Launch, message.id)
            if launch is not None:
                return f"Customers are told {present.when(launch.customer_at)}"
        if message.cadence is not None:
            first = f"; the first send would be {present.when(next_at)}" if next_at else ""
            cad = message.cadence
            where = f"in {cad.timezone}" if cad.timezone else "in each recipient's own zone"
            at = cad.start_local.strftime("%H:%M")
            return f"Repeats {describe(cad.rrule)}, at {at} {where}{first}"
        return ""

    def page(
        request: Request,
        viewer: Viewer,
        *,
        notice: str = "",
        problems: dict[int, dict[str, str]] | None = None,
        reasons: dict[int, str] | None = None,
        http_status: int = 200,
    ) -> Response:
        now = deps.clock()
        with deps.sessions() as session:
            held = approvals.pending(session)
            names = authors(session, held)
            sends = next_sends(session, held, settings.timezone, now)
            waiting = [
                Waiting(
                    message=m,
                    author=author_of(names, m),
                    queued_at=present.when(m.created_at),
                    audience=policy.describe_audience(
                        session, viewer, Audience.from_json(m.audience or {})
                    ),
                    head_count=count_members(session, Audience.from_json(m.audience or {})),
                    schedule=schedule_of(session, m, sends.get(m.id)),
                    preview=preview_of(session, m, settings.timezone),
                )
                for m in held
            ]
            required = approvals.requires_approval(session)
        return frame.page(
            request,
            viewer,
            "web/dashboard/approvals.html",
            "approvals",
            http_status,
            waiting=waiting,
            titles={item.message.id: item.message.title for item in waiting},
            required=required,
            notice=notice,
            problems=problems or {},
            reasons=reasons or {},
            max_reason=approvals.MAX_REASON,
            approve_purpose=APPROVE_PURPOSE,
            reject_purpose=REJECT_PURPOSE,
            as_of=present.when(now),
        )

    @routes.get("/dashboard/approvals", response_class=HTMLResponse)
    def approvals_page(request: Request, done: str = "", id: str = "") -> Response:
        """What waits for approval, oldest first."""
        notice = f"Message {id} {DONE[done]}." if done in DONE and is_id(id) else ""
        return frame.signed_in(
            request,
            lambda viewer: page(request, viewer, notice=notice),
            allowed=policy.sees_everything,
        )

    def decide(
        request: Request,
        raw_id: str,
        csrf: str,
        purpose: str,
        act: Callable[[Session, int, User, datetime], Any],
        field: str,
        kept: dict[int, str],
        verb: str,
    ) -> Response:
        def build(viewer: Viewer) -> Response:
            if not is_id(raw_id):
                raise Refused(*NOT_FOUND)
            message_id = int(raw_id)
            try:
                with session_scope(deps.sessions) as session:
                    user = session.get(User, viewer.user_id)
                    if user is None or session.get(Message, message_id) is None:
                        raise Refused(*NOT_FOUND)
                    act(session, message_id, user, deps.clock())
            except InputError as exc:
                return page(
                    request,
                    viewer,
                    problems={message_id: {field: str(exc)}},
                    reasons={message_id: kept.get(message_id, "")},
                    http_status=(
                        400
                        if field == "reason" and not isinstance(exc, approvals.NotPending)
                        else 409
                    ),
                )
            # The author hears of it from the worker; telling twice writes nothing more.
            deps.send_task(DECISION_TASK, [message_id])
            query = urlencode({"done": verb, "id": message_id})
            return RedirectResponse(f"/dashboard/approvals?{query}", status_code=303)

        return frame.signed_in(
            request, build, allowed=policy.sees_everything, purpose=purpose, csrf=csrf
        )

    @routes.post("/dashboard/approvals/{message_id}/approve", response_class=HTMLResponse)
    def approve(request: Request, message_id: str, csrf: Annotated[str, Form()] = "") -> Response:
        """Make it active: planned from now on (a launch is checked against its time again)."""

        def act(session: Session, mid: int, user: User, now: datetime) -> Any:
            return approvals.approve(session, mid, user, now, launch_ctx)

        return decide(request, message_id, csrf, APPROVE_PURPOSE, act, "approve", {}, "approved")

    @routes.post("/dashboard/approvals/{message_id}/reject", response_class=HTMLResponse)
    def reject(
        request: Request,
        message_id: str,
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        """Cancel it with a reason the author is told."""

        def act(session: Session, mid: int, user: User, now: datetime) -> Any:
            return approvals.reject(session, mid, user, now, reason)

        kept = {int(message_id): reason} if is_id(message_id) else {}
        return decide(request, message_id, csrf, REJECT_PURPOSE, act, "reason", kept, "rejected")

    return routes
