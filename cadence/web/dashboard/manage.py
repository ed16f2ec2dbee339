"""Managing what is queued: the messages list, and editing, pausing, resuming and
cancelling a message, each after a page that says what it will do.

The list shows what `policy.visible_messages` lets the viewer see. Changing a message is
for comms users and for the leader who queued it (`policy.can_change_message`); anyone
else gets 404, as for a page that does not exist. Each change runs the same domain call
as `cadence message edit|pause|resume|cancel` (and `cadence launch cancel` for a
launch), in one transaction: a refusal changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.errors import InputError
from cadence.inputs import is_id
from cadence.launches.changes import cancel_launch
from cadence.messages import core
from cadence.messages.approvals import shown_status
from cadence.messages.effects import effects_of
from cadence.messages.preview import upcoming_sends
from cadence.store.db import session_scope
from cadence.store.models import Message, MessageKind
from cadence.web.dashboard.common import NOT_FOUND, Frame, Refused
from cadence.web.dashboard.manage_view import (
    ACTIONS,
    KNOWN_STATUSES,
    allowed_actions,
    rows_for,
    status_label,
)
from cadence.web.dashboard.tables import Present

EDIT_PURPOSE = "message-edit"
DONE = {
    "edited": "Saved.",
    "paused": "Paused: nothing more is sent until it is resumed.",
    "resumed": "Resumed: it is planned again from now on.",
    "cancelled": "Cancelled: nothing more of it will be sent.",
}
VERBS = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


def purpose_of(action: str, message_id: int) -> str:
    """Each form's CSRF field is for one action on one message."""
    return f"message-{action}-{message_id}"


def field_problems(problems: list[str], positions: list[int]) -> dict[str, list[str]]:
    """`edit_message`'s problem lines, keyed by the form field they are about.

    `positions[i]` is the form's number of the i-th wording kept (blank ones are dropped)."""
    found: dict[str, list[str]] = {}
    for line in problems:
        key = "form"
        text = line
        if line.startswith("title"):
            key = "title"
        elif line.startswith("body"):
            key = "body"
        elif found_variant := re.match(r"variant (\d+)", line):
            number = int(found_variant.group(1))
            if 0 < number <= len(positions):
                key = f"wording-{positions[number - 1]}"
                text = "this wording" + line[found_variant.end() :]
        elif line.startswith("--require-reack"):
            key = "reack"
            text = "asking again needs a changed title or wording"
        found.setdefault(key, []).append(text[:1].upper() + text[1:])
    return found


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps, settings = frame.deps, frame.settings
    present = Present(ZoneInfo(settings.timezone), deps.clock)

    def changeable(session: Session, viewer: Viewer, raw_id: str) -> Message:
        """The message, when this viewer may change it; otherwise there is no such page."""
        if not is_id(raw_id):
            raise Refused(*NOT_FOUND)
        message = session.get(Message, int(raw_id))
        if message is None or not policy.can_change_message(viewer, message):
            raise Refused(*NOT_FOUND)
        return message

    def next_send(session: Session, message: Message, now: datetime) -> str | None:
        if message.cadence is None:
            return None
        try:
            upcoming = upcoming_sends(session, message, settings.timezone, now, 1)
        except InputError:
            return None
        return present.when(upcoming[0].at) if upcoming else None

    # -- the list --------------------------------------------------------------------

    @routes.get("/dashboard/messages", response_class=HTMLResponse)
    def messages_page(request: Request, status: str = "", done: str = "", id: str = "") -> Response:
        """Every message the viewer may see, newest first, with its status and next send."""

        def build(viewer: Viewer) -> Response:
            now = deps.clock()
            with deps.sessions() as session:
                ids = [mid for mid, _ in policy.visible_messages(session, viewer)]
                messages = list(
                    session.scalars(
                        select(Message).where(Message.id.in_(ids)).order_by(Message.id.desc())
                    )
                )
                present_statuses = {shown_status(m) for m in messages}
                options = list(KNOWN_STATUSES) + sorted(present_statuses - set(KNOWN_STATUSES))
                problem = ""
                wanted = status.strip()
                if wanted and wanted not in options:
                    problem = f"There is no status {wanted!r}; showing every message."
                    wanted = ""
                if wanted:
                    messages = [m for m in messages if shown_status(m) == wanted]
                rows = rows_for(session, viewer, messages, settings.timezone, now, present)
            notice = DONE.get(done, "")
            if notice and is_id(id):
                notice = f"Message {id}: {notice}"
            return frame.page(
                request,
                viewer,
                "web/dashboard/messages.html",
                "messages",
                rows=rows,
                options=[(value, status_label(value)) for value in options],
                status=wanted,
                problem=problem,
                notice=notice,
                as_of=present.when(now),
            )

        return frame.signed_in(request, build)

    # -- pause, resume, cancel ---------------------------------------------------------

    def change_page(
        request: Request,
        viewer: Viewer,
        session: Session,
        message: Message,
        action: str,
        *,
        problem: str = "",
        http_status: int = 200,
    ) -> Response:
        now = deps.clock()
        return frame.page(
            request,
            viewer,
            "web/dashboard/message_change.html",
            "messages",
            http_status,
            message=message,
            action=action,
            status_label=status_label(shown_status(message)),
            allowed=action in allowed_actions(message),
            effects=effects_of(session, message),
            launch=message.kind == MessageKind.LAUNCH.value,
            next_send=next_send(session, message, now) if action != "cancel" else None,
            purpose=purpose_of(action, message.id),
            problem=problem,
        )

    def confirm_change(request: Request, message_id: str, action: str) -> Response:
        """What pausing, resuming or cancelling will do, before it is done."""

        def build(viewer: Viewer) -> Response:
            if action == "edit":
                return edit_form(request, viewer, message_id)
            if action not in ACTIONS:
                raise Refused(*NOT_FOUND)
            with deps.sessions() as session:
                message = changeable(session, viewer, message_id)
                return change_page(request, viewer, session, message, action)

        return frame.signed_in(request, build)

    def make_change(
        request: Request,
        message_id: str,
        action: str,
        csrf: str,
        title: str,
        body: str,
        wording: list[str] | None,
        require_reack: str,
    ) -> Response:
        """Pause, resume or cancel (or save an edit), then back to the list."""

        def build(viewer: Viewer) -> Response:
            if action == "edit":
                return save_edit(
                    request, viewer, message_id, csrf, title, body, wording or [], require_reack
                )
            if action not in ACTIONS:
                raise Refused(*NOT_FOUND)
            with deps.sessions() as session:
                # Who may change it is asked before the form's origin, so another leader
                # learns nothing about a message that is not theirs.
                message = changeable(session, viewer, message_id)
                frame.check_same_site(request, csrf, purpose_of(action, message.id))
            now = deps.clock()
            try:
                with session_scope(deps.sessions) as session:
                    if action == "pause":
                        core.pause(session, message.id, now)
                    elif action == "resume":
                        core.resume(session, message.id, now)
                    elif message.kind == MessageKind.LAUNCH.value:
                        cancel_launch(session, message.id, now)
                    else:
                        core.cancel(session, message.id, now)
            except InputError as exc:
                with deps.sessions() as session:
                    message = changeable(session, viewer, message_id)
                    return change_page(
                        request, viewer, session, message, action, problem=str(exc),
                        http_status=409,
                    )  # fmt: skip
            query = urlencode({"done": VERBS[action], "id": message.id})
            return RedirectResponse(f"/dashboard/messages?{query}", status_code=303)

        return frame.signed_in(request, build)

    # -- edit ------------------------------------------------------------------------

    def edit_page(
        request: Request,
        viewer: Viewer,
        session: Session,
        message: Message,
        *,
        title: str,
        body: str,
        wordings: list[str],
        require_reack: bool,
        problems: dict[str, list[str]] | None = None,
        http_status: int = 200,
    ) -> Response:
        # One empty wording more than there are, to add one without JavaScript (blank
        # ones at the end were that empty slot, sent back).
        while wordings and not wordings[-1].strip():
            wordings = wordings[:-1]
        slots = [*wordings, ""] if len(wordings) < 20 else wordings
        return frame.page(
            request,
            viewer,
            "web/dashboard/message_edit.html",
            "messages",
            http_status,
            message=message,
            status_label=status_label(shown_status(message)),
            editable="edit" in allowed_actions(message),
            title=title,
            body=body,
            wordings=slots,
            require_reack=require_reack,
            effects=effects_of(session, message),
            problems=problems or {},
            purpose=purpose_of("edit", message.id),
            max_title=core.MAX_TITLE,
        )

    def edit_form(request: Request, viewer: Viewer, raw_id: str) -> Response:
        with deps.sessions() as session:
            message = changeable(session, viewer, raw_id)
            return edit_page(
                request,
                viewer,
                session,
                message,
                title=message.title,
                body=message.body,
                wordings=[v.body for v in message.variants],
                require_reack=False,
                problems=None,
            )

    def save_edit(
        request: Request,
        viewer: Viewer,
        raw_id: str,
        csrf: str,
        title: str,
        body: str,
        wordings: list[str],
        require_reack: str,
    ) -> Response:
        with deps.sessions() as session:
            message = changeable(session, viewer, raw_id)
            frame.check_same_site(request, csrf, purpose_of("edit", message.id))
            message_id = message.id
            if "edit" not in allowed_actions(message):
                # A launch changes through its own edit, which sends corrections.
                return edit_page(
                    request, viewer, session, message, title=title, body=body,
                    wordings=wordings, require_reack=bool(require_reack), http_status=409,
                )  # fmt: skip
        kept = [(i, w) for i, w in enumerate(wordings, start=1) if w.strip()]
        edit = core.MessageEdit(
            title=title,
            body=body,
            variants=[w for _, w in kept],
            require_reack=bool(require_reack),
        )
        try:
            with session_scope(deps.sessions) as session:
                core.edit_message(session, message_id, edit, deps.clock())
        except InputError as exc:
            problems = field_problems(exc.problems or [exc.summary], [i for i, _ in kept])
            with deps.sessions() as session:
                message = changeable(session, viewer, raw_id)
                return edit_page(
                    request,
                    viewer,
                    session,
                    message,
                    title=title,
                    body=body,
                    wordings=wordings,
                    require_reack=bool(require_reack),
                    problems=problems,
                    http_status=400,
                )
        query = urlencode({"done": "edited", "id": message_id})
        return RedirectResponse(f"/dashboard/messages?{query}", status_code=303)

    def handlers(action: str) -> tuple[Callable[..., Response], Callable[..., Response]]:
        def shown(request: Request, message_id: str) -> Response:
            return confirm_change(request, message_id, action)

        def posted(
            request: Request,
            message_id: str,
            csrf: Annotated[str, Form()] = "",
            title: Annotated[str, Form()] = "",
            body: Annotated[str, Form()] = "",
            wording: Annotated[list[str] | None, Form()] = None,
            require_reack: Annotated[str, Form()] = "",
        ) -> Response:
            return make_change(
                request, message_id, action, csrf, title, body, wording, require_reack
            )

        return shown, posted

    # One explicit path per action, so other pages under a message keep their own paths.
    for name in ("edit", *ACTIONS):
        path = f"/dashboard/messages/{{message_id}}/{name}"
        shown, posted = handlers(name)
        routes.add_api_route(path, shown, methods=["GET"], response_class=HTMLResponse)
        routes.add_api_route(path, posted, methods=["POST"], response_class=HTMLResponse)
    return routes
