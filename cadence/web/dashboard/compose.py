"""The compose page: write a core message, see it as each channel will send it, and save it
as a draft or submit it.

The page works as a plain form: "Preview" re-renders it with the previews, and the wording
rows are moved and removed with buttons that re-render it too. With JavaScript on,
`/static/compose.js` refreshes the previews as the author types (`POST .../preview`, with the
form's CSRF field) and searches the people and teams the author may target (`GET .../search`).

Everything goes through the same domain code as `cadence message add`: the checks
(`build_spec`), the audience (`cadence.access.policy`, so a leader reaches only their tree),
and submitting (`cadence.messages.approvals.submit`, so a leader's message waits for
approval when comms require it). A refused form stores nothing.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.directory.audience import Audience
from cadence.inputs import is_id
from cadence.messages import approvals
from cadence.messages.drafts import NoDraft, get_draft, save_draft, submit_message
from cadence.rendering import render
from cadence.store.db import session_scope
from cadence.store.models import MessageStatus, Person, Team, User
from cadence.web.dashboard.common import DASHBOARD_HEADERS, NOT_FOUND, Frame, Refused
from cadence.web.dashboard.compose_form import (
    CHANNELS,
    DAYS,
    MAX_WORDINGS,
    PRESETS,
    ComposeForm,
    Problems,
    apply_row_action,
    build_spec,
    form_from_message,
    read_form,
)
from cadence.web.dashboard.compose_preview import Preview, build_preview

PURPOSE = "compose"
SEARCH_RESULTS = 8
MAX_QUERY = 100
TEAM_CHOICES = 200
BANNERS = {
    "draft": "Saved as a draft. Nothing is sent until you open it again and submit it.",
    "awaiting": "Submitted. It waits for a comms user's approval before anything is sent.",
    "scheduled": "Scheduled. It goes out on its cadence, starting with the next send shown.",
}
# Where each problem is shown: the id of the control it is about.
_CONTROLS = {
    "title": "title",
    "body": "wording-0",
    "audience": "people",
    "channels": "channel-slack",
    "channel_mode": "channel-mode-first",
    "days": "day-MO",
    "interval": "interval",
    "rrule": "rrule",
    "start": "start",
    "at": "at",
    "end_date": "end",
    "timezone": "fixed_zone",
    "remind_after_hours": "remind_after",
    "max_reminders": "max_reminders",
}
_ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))


def banner(done: str | None) -> str:
    """The message page's line after composing (`?done=`), or nothing."""
    return BANNERS.get(done or "", "")


def error_id(key: str) -> str:
    return "error-" + re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def control_of(key: str) -> str:
    if key.startswith("variant "):
        return "wording-" + key.split(" ", 1)[1]
    return _CONTROLS.get(key, "title")


def summary(problems: Problems) -> list[tuple[str, str]]:
    """(control id, line) for the summary at the top, in the form's order."""
    order = list(_CONTROLS)
    keys = sorted(problems, key=lambda k: (order.index(k) if k in order else 1, k))
    return [(control_of(key), line) for key in keys for line in problems[key]]


def targetable_teams(session: Session, viewer: Viewer) -> list[str]:
    """Teams the viewer may name: every team for comms; for a leader, those whose people
    are all in their tree (the policy refuses any other)."""
    teams = policy.visible_teams(session, viewer)[:TEAM_CHOICES]
    if policy.sees_everything(viewer):
        return teams
    return [t for t in teams if not policy.outside(session, viewer, Audience(teams=(t,)))]


def search(session: Session, viewer: Viewer, text: str) -> dict[str, Any]:
    """People and teams matching `text` that the viewer may target."""
    query = text.strip().lower()[:MAX_QUERY]
    if not query:
        return {"people": [], "teams": []}
    like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = (
        select(Person.email, Person.name, Team.path)
        .outerjoin(Team, Person.team_id == Team.id)
        .where(Person.active.is_(True))
        .where(or_(Person.email.ilike(like, escape="\\"), Person.name.ilike(like, escape="\\")))
        .order_by(Person.name, Person.email)
        .limit(SEARCH_RESULTS)
    )
    limit = policy.in_tree(viewer, Person.id)
    if limit is not None:
        stmt = stmt.where(limit)
    people = [{"email": e, "name": n, "team": t or ""} for e, n, t in session.execute(stmt)]
    teams = [t for t in targetable_teams(session, viewer) if query in t.lower()]
    return {"people": people, "teams": teams[:SEARCH_RESULTS]}


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps, settings = frame.deps, frame.settings
    zone = ZoneInfo(settings.timezone)

    def today() -> date:
        return deps.clock().astimezone(zone).date()

    def previews(
        session: Session, viewer: Viewer, form: ComposeForm, *, show_problems: bool
    ) -> tuple[Preview, Problems]:
        spec, audience, problems = build_spec(session, viewer, form, today())
        found = build_preview(
            session,
            viewer,
            spec,
            audience,
            wanted_recipient=form.preview_person,
            wording=form.preview_wording,
            valid=not problems,
            org_zone=settings.timezone,
            base_url=settings.base_url,
            now=deps.clock(),
        )
        if problems and not show_problems:
            found.sends_problem = "Fill in the form to see when it would be sent."
        return found, problems

    def show(
        request: Request,
        viewer: Viewer,
        session: Session,
        form: ComposeForm,
        problems: Problems,
        preview: Preview,
        http_status: int = 200,
    ) -> Response:
        return frame.page(
            request,
            viewer,
            "web/dashboard/compose.html",
            "compose",
            http_status,
            scripts=True,
            form=form,
            problems=problems,
            summary=summary(problems),
            error_id=error_id,
            teams=targetable_teams(session, viewer),
            comms=policy.sees_everything(viewer),
            needs_approval=(
                not policy.sees_everything(viewer) and approvals.requires_approval(session)
            ),
            presets=PRESETS,
            days=DAYS,
            channels=CHANNELS,
            zones=_ZONES,
            max_wordings=MAX_WORDINGS,
            purpose=PURPOSE,
            **preview_context(preview, problems),
        )

    def preview_context(preview: Preview, problems: Problems) -> dict[str, Any]:
        return {"preview": preview, "not_ready": summary(problems)}

    def open_page(request: Request, draft: str | None) -> Response:
        viewer = frame.viewer_of(request)
        if viewer is None:
            return frame.to_login(request)
        try:
            with deps.sessions() as session:
                if draft is None:
                    form = ComposeForm(start=today().isoformat())
                else:
                    if not is_id(draft):
                        raise Refused(*NOT_FOUND)
                    try:
                        message = get_draft(session, int(draft), viewer.user_id)
                    except NoDraft:
                        raise Refused(*NOT_FOUND) from None
                    form = form_from_message(message)
                preview, _ = previews(session, viewer, form, show_problems=draft is not None)
                return show(request, viewer, session, form, {}, preview)
        except Refused as refused:
            return frame.problem_page(request, viewer, refused)

    @routes.get("/dashboard/compose", response_class=HTMLResponse)
    def compose_page(request: Request, draft: str | None = None) -> Response:
        """A blank message to compose, or the viewer's own draft (`?draft=ID`)."""
        return open_page(request, draft)

    @routes.get("/dashboard/compose/search")
    def search_targets(request: Request, q: str = "") -> Response:
        """People and teams the viewer may target, for the audience picker's search box."""
        viewer = frame.viewer_of(request)
        if viewer is None:
            return JSONResponse({"error": "sign in first"}, 401, headers=DASHBOARD_HEADERS)
        with deps.sessions() as session:
            found = search(session, viewer, q)
        return JSONResponse(found, headers=DASHBOARD_HEADERS)

    @routes.get("/dashboard/compose/{message_id}", response_class=HTMLResponse)
    def draft_page(request: Request, message_id: str) -> Response:
        """The viewer's own draft, to finish and submit."""
        return open_page(request, message_id)

    @routes.post("/dashboard/compose/preview")
    async def live_preview(request: Request) -> Response:
        """The previews panel for the form as it is now, for compose.js. Stores nothing."""
        viewer = frame.viewer_of(request)
        if viewer is None:
            return JSONResponse({"error": "sign in first"}, 401, headers=DASHBOARD_HEADERS)
        data = await request.form()
        try:
            frame.check_same_site(request, _text(data, "csrf"), PURPOSE)
        except Refused as refused:
            return JSONResponse({"error": refused.heading}, 403, headers=DASHBOARD_HEADERS)

        def work() -> dict[str, Any]:
            form = read_form(data)
            with deps.sessions() as session:
                preview, problems = previews(session, viewer, form, show_problems=True)
            context = preview_context(preview, problems)
            return {
                "previews": render("web/dashboard/compose_previews.html", **context),
                "headcount": render("web/dashboard/compose_headcount.html", **context),
                "problems": sum(len(lines) for lines in problems.values()),
                "recipients": preview.recipients,
                "recipient": preview.recipient,
            }

        return JSONResponse(await run_in_threadpool(work), headers=DASHBOARD_HEADERS)

    @routes.post("/dashboard/compose", response_class=HTMLResponse)
    async def compose(request: Request) -> Response:
        """Preview, rearrange the wordings, save as a draft, or submit. A form with any
        problem comes back with each problem by its field, and nothing is stored."""
        viewer = frame.viewer_of(request)
        if viewer is None:
            return frame.to_login(request)
        data = await request.form()
        try:
            frame.check_same_site(request, _text(data, "csrf"), PURPOSE)
        except Refused as refused:
            return frame.problem_page(request, viewer, refused)
        return await run_in_threadpool(act, request, viewer, data)

    def act(request: Request, viewer: Viewer, data: FormData) -> Response:
        form = read_form(data)
        op = _text(data, "op") or "preview"
        try:
            if apply_row_action(form, op):
                with deps.sessions() as session:
                    preview, _ = previews(session, viewer, form, show_problems=False)
                    return show(request, viewer, session, form, {}, preview)
            if op not in ("draft", "submit"):
                with deps.sessions() as session:
                    preview, problems = previews(session, viewer, form, show_problems=True)
                    return show(request, viewer, session, form, problems, preview)
            with session_scope(deps.sessions) as session:
                spec, _, problems = build_spec(session, viewer, form, today())
                if problems:
                    preview, _ = previews(session, viewer, form, show_problems=True)
                    return show(request, viewer, session, form, problems, preview, 400)
                author = session.get(User, viewer.user_id)
                if author is None or not author.active:
                    raise Refused(403, "Not allowed", "Your account cannot queue messages.")
                try:
                    store = save_draft if op == "draft" else submit_message
                    message = store(session, spec, author, deps.clock(), form.draft_id)
                except NoDraft:
                    raise Refused(*NOT_FOUND) from None
                message_id, status = message.id, message.status
        except Refused as refused:
            return frame.problem_page(request, viewer, refused)
        done = {
            MessageStatus.DRAFT.value: "draft",
            MessageStatus.AWAITING_APPROVAL.value: "awaiting",
        }.get(status, "scheduled")
        return RedirectResponse(f"/dashboard/messages/{message_id}?done={done}", status_code=303)

    return routes


def _text(data: FormData, name: str) -> str:
    value = data.get(name, "")
    return value if isinstance(value, str) else ""
