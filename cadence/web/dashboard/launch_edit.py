"""Editing a launch from the dashboard, as `cadence launch edit` does.

The page is its own confirmation: it says, counted from the database with
`changes.already_told` (the list `edit_launch` sends corrections to), how many
corrections a changed title, staff message or customer copy sends, and that a moved
customer time has the timeline checked again. Saving runs `edit_launch` in one
transaction, so a refusal (a problem with the words, or a timeline the new time no
longer fits) stores nothing and is shown next to its field. Only comms and the launch's
author may edit it (`policy.can_change_message`); anyone else gets 404.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from cadence.inputs import is_digits, is_id
from cadence.launches.cascade import (
    LaunchContext,
    content_problems,
    context_from,
    get_launch,
    parse_customer_time,
)
from cadence.launches.changes import EditRefused, LaunchEdit, already_told, edit_launch
from cadence.planning.recurrence import zone
from cadence.store.db import session_scope
from cadence.store.models import Launch, Message, MessageKind, MessageStatus, Person
from cadence.web.dashboard.common import NOT_FOUND, Frame, Refused
from cadence.web.dashboard.compose_launch import zone_names
from cadence.web.dashboard.launch_form import LABELS

TIME_SHAPE = "%Y-%m-%dT%H:%M"
SHOWN = 20  # the people already told named on the page; the rest are counted


def purpose_of(message_id: int) -> str:
    """The form's CSRF field is for editing this one launch."""
    return f"launch-edit-{message_id}"


def can_edit(viewer: Viewer, message: Message) -> bool:
    """Whether the launch's page offers its edit page to this viewer."""
    return (
        policy.can_change_message(viewer, message)
        and message.status != MessageStatus.CANCELLED.value
    )


def saved_notice(edited: str) -> str:
    """The launch page's banner after a save; `edited` is the number of corrections."""
    if not is_digits(edited) or len(edited) > 9:
        return ""
    count = int(edited)
    if count == 0:
        return "Saved. Nobody had been told yet, so no correction is sent."
    sent = "1 correction goes" if count == 1 else f"{count} corrections go"
    return f"Saved. {sent} to those already told."


def _text(value: str) -> str:
    """A browser's CRLF line ends as the CLI's LF, so an untouched field is unchanged."""
    return value.replace("\r\n", "\n")


@dataclass
class EditForm:
    """The form as typed, so a refused one comes back exactly as it was sent."""

    title: str
    body: str
    customer_copy: str
    talking_points: str
    faq: str
    customer_at: str
    tz: str

    @classmethod
    def of(cls, message: Message, launch: Launch) -> EditForm:
        local = launch.customer_at.astimezone(ZoneInfo(launch.customer_zone))
        return cls(
            message.title,
            message.body,
            launch.customer_copy,
            launch.talking_points or "",
            launch.faq or "",
            local.strftime(TIME_SHAPE),
            launch.customer_zone,
        )


@dataclass(frozen=True)
class Consequences:
    """What saving will do, as the database stands now."""

    corrections: int  # correction deliveries a changed title, message or copy writes
    people: int  # the people those go to
    names: list[str]  # their emails, the first `SHOWN` of them
    customer_at: str  # the customer time as it stands, in the launch's zone
    blocked: str  # why the launch cannot be edited at all, or ""


def consequences_of(
    session: Session, message: Message, launch: Launch, now: datetime
) -> Consequences:
    told = already_told(session, message.id)
    people = {person for person, _ in told}
    names = list(
        session.scalars(
            select(Person.email).where(Person.id.in_(people)).order_by(Person.email).limit(SHOWN)
        )
    )
    blocked = ""
    if message.status == MessageStatus.CANCELLED.value:
        blocked = "This launch is cancelled, so it cannot be edited."
    elif now >= launch.customer_at:
        blocked = "Customers have already been told: a launch cannot change after that."
    local = launch.customer_at.astimezone(ZoneInfo(launch.customer_zone))
    return Consequences(
        len(told),
        len(people),
        names,
        f"{local:%a %d %b %Y, %H:%M} ({launch.customer_zone})",
        blocked,
    )


def read_edit(form: EditForm, launch: Launch) -> tuple[LaunchEdit, list[tuple[str, str]]]:
    """The edit the form asks for, and the problems with its customer time and zone
    (which `edit_launch` never sees in this shape: it takes an aware time)."""
    problems: list[tuple[str, str]] = []
    when: datetime | None = None
    try:
        zone(form.tz)
    except InputError as exc:
        problems.append(("tz", exc.summary))
    if not form.customer_at:
        problems.append(("customer_at", "give the time customers hear of it"))
    elif not problems:
        try:
            when = parse_customer_time(form.customer_at, form.tz)
        except InputError as exc:
            problems.append(("customer_at", exc.summary))
    edit = LaunchEdit(
        title=form.title,
        body=form.body,
        customer_copy=form.customer_copy,
        talking_points=_optional(form.talking_points, launch.talking_points),
        faq=_optional(form.faq, launch.faq),
        customer_at=when if when != launch.customer_at else None,
    )
    return edit, problems


def _optional(typed: str, stored: str | None) -> str | None:
    """An empty field where there was none leaves none, rather than storing empty text;
    emptying one that had text clears it."""
    return typed if typed or stored else None


def keyed(problems: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, line in problems:
        found.setdefault(key if key in LABELS else "form", []).append(line[:1].upper() + line[1:])
    return found


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps = frame.deps
    ctx: LaunchContext = context_from(frame.settings)

    def editable(session: Session, viewer: Viewer, raw_id: str) -> tuple[Message, Launch]:
        """The launch, when this viewer may change it; otherwise there is no such page."""
        if not is_id(raw_id):
            raise Refused(*NOT_FOUND)
        message = session.get(Message, int(raw_id))
        if (
            message is None
            or message.kind != MessageKind.LAUNCH.value
            or not policy.can_change_message(viewer, message)
        ):
            raise Refused(*NOT_FOUND)
        return get_launch(session, message.id)

    def edit_page(
        request: Request,
        viewer: Viewer,
        raw_id: str,
        form: EditForm | None = None,
        problems: dict[str, list[str]] | None = None,
        http_status: int = 200,
        refused: str = "",
    ) -> Response:
        with deps.sessions() as session:
            message, launch = editable(session, viewer, raw_id)
            shown = form or EditForm.of(message, launch)
            return frame.page(
                request,
                viewer,
                "web/dashboard/launch_edit.html",
                "messages",
                http_status,
                message=message,
                form=shown,
                effects=consequences_of(session, message, launch, deps.clock()),
                problems=problems or {},
                refused=refused,
                customer_zone=launch.customer_zone,
                labels=LABELS,
                zones=zone_names(),
                purpose=purpose_of(message.id),
            )

    @routes.get("/dashboard/launches/{message_id}/edit", response_class=HTMLResponse)
    def edit_form(request: Request, message_id: str) -> Response:
        """The launch's words and customer time, and what saving a change will do."""
        return frame.signed_in(request, lambda viewer: edit_page(request, viewer, message_id))

    @routes.post("/dashboard/launches/{message_id}/edit", response_class=HTMLResponse)
    def save_edit(
        request: Request,
        message_id: str,
        csrf: Annotated[str, Form()] = "",
        title: Annotated[str, Form()] = "",
        body: Annotated[str, Form()] = "",
        customer_copy: Annotated[str, Form()] = "",
        talking_points: Annotated[str, Form()] = "",
        faq: Annotated[str, Form()] = "",
        customer_at: Annotated[str, Form()] = "",
        tz: Annotated[str, Form()] = "",
    ) -> Response:
        """Save the edit with `edit_launch`, then back to the launch's page."""
        form = EditForm(
            _text(title),
            _text(body),
            _text(customer_copy),
            _text(talking_points),
            _text(faq),
            customer_at.strip(),
            tz.strip(),
        )

        def build(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                # Who may change it is asked before the form's origin, so another leader
                # learns nothing about a launch that is not theirs.
                message, launch = editable(session, viewer, message_id)
                frame.check_same_site(request, csrf, purpose_of(message.id))
                launch_id = message.id
                edit, found = read_edit(form, launch)
            if found:
                # The words are checked too, so every problem is listed at once.
                words = content_problems(
                    form.title, form.body, form.customer_copy, edit.talking_points, edit.faq
                )
                return edit_page(request, viewer, message_id, form, keyed([*words, *found]), 400)
            try:
                with session_scope(deps.sessions) as session:
                    _, corrections = edit_launch(session, launch_id, edit, deps.clock(), ctx)
            except EditRefused as exc:
                # A timeline refusal's summary says why its lines matter; "edit refused:"
                # only says what the summary box says already.
                why = exc.summary if exc.summary != "edit refused:" else ""
                problems = keyed(exc.keyed)
                return edit_page(request, viewer, message_id, form, problems, 400, why)
            except InputError as exc:
                problems = keyed([("form", exc.render())])
                return edit_page(request, viewer, message_id, form, problems, 409)
            query = urlencode({"edited": corrections})
            return RedirectResponse(f"/dashboard/launches/{launch_id}?{query}", status_code=303)

        return frame.signed_in(request, build)

    return routes
