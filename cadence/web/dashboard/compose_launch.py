"""Composing a launch in the dashboard: the staff message beside the customer copy, the
audience, the customer time and how much warning staff get, and the timeline check.

The check is `add_launch`'s own: the cascade is planned as the launch would be stored, and
a timeline that would reach anyone too late shows the lines `cadence launch add` refuses
with and the earliest customer time that works. It runs as the composer types (our own
script posts the form to `/preview` and shows the panel it answers) and, without
JavaScript, from the "Check timeline" button, which posts the form to `/check` and shows
the whole page again. Creating goes through `add_launch` and `approvals.submit`, as the CLI
and the API do, so a leader's launch waits for approval when comms require it; anything
refused is stored nowhere and comes back with every problem next to its field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from urllib.parse import quote
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.config import KNOWN_CHANNELS
from cadence.errors import InputError
from cadence.launches.cascade import add_launch, context_from
from cadence.messages import approvals
from cadence.planning.recurrence import zone
from cadence.store.db import session_scope
from cadence.units import duration
from cadence.web.dashboard.cascade_chart import TierRow, cascade_svg, tier_rows, when
from cadence.web.dashboard.common import Frame, Refused, html
from cadence.web.dashboard.forms import account
from cadence.web.dashboard.launch_form import (
    LABELS,
    TIMING,
    AudienceChoices,
    Checked,
    LaunchForm,
    audience_choices,
    check,
)

PURPOSE = "compose-launch"
PATH = "/dashboard/compose/launch"
TEMPLATE = "web/dashboard/compose_launch.html"
PANEL = "web/dashboard/compose_launch_timeline.html"


@cache
def zone_names() -> tuple[str, ...]:
    """The IANA zones a customer time can be given in, as the zone check accepts them."""
    names = []
    for name in sorted(available_timezones()):
        try:
            zone(name)
        except InputError:
            continue
        names.append(name)
    return tuple(names)


@dataclass
class TimelineView:
    """The timeline panel: why it cannot be checked yet, or the cascade and its verdict."""

    pristine: bool = True  # nothing about timing typed yet
    blocked: list[tuple[str, str]] = field(default_factory=list)
    svg: Markup | None = None
    tiers: list[TierRow] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)  # as `cadence launch add` prints it
    earliest_value: str = ""  # for the customer-time field, in the customer zone
    earliest_text: str = ""
    headline: str = ""

    @property
    def ok(self) -> bool:
        return self.svg is not None and not self.refusal


def timeline_view(
    checked: Checked, form: LaunchForm, now: datetime, pristine: bool
) -> TimelineView:
    view = TimelineView(pristine=pristine, blocked=checked.blocked)
    timeline = checked.timeline
    if timeline is None:
        return view
    refused = checked.refusal
    if refused is not None:
        view.refusal = [refused.summary, *refused.problems]
    if not timeline.releases:
        return view
    tz = zone(form.tz)
    lead = timedelta(hours=float(form.lead))
    view.svg = cascade_svg(timeline, form.tz, now, lead)
    view.tiers = tier_rows(timeline, form.tz)
    if timeline.earliest_customer_at is not None:
        local = timeline.earliest_customer_at.astimezone(tz)
        view.earliest_value = local.strftime("%Y-%m-%dT%H:%M")
        view.earliest_text = f"{when(local, tz)} {form.tz}"
    count = len(timeline.releases)
    people = "person" if count == 1 else "people"
    tiers = len(view.tiers)
    view.headline = (
        f"{count} {people} in {tiers} {'tier' if tiers == 1 else 'tiers'}; everyone must have "
        f"it by {when(timeline.everyone_by, tz)} {form.tz}; fan-out takes "
        f"{duration(timeline.fanout.total_seconds())}"
    )
    return view


def _pristine(form: LaunchForm) -> bool:
    return not (form.customer_at or form.everyone or form.teams or form.trees or form.people)


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps = frame.deps
    ctx = context_from(frame.settings)

    def to_login(request: Request) -> Response:
        """Signed out while composing: back to the composer after signing in (a posted
        form cannot be followed by a GET)."""
        response = frame.to_login(request)
        response.headers["location"] = f"/login?next={quote(PATH, safe='')}"
        return response

    def choices_for(viewer: Viewer) -> tuple[AudienceChoices, bool]:
        """What the viewer may target, and whether their launch would wait for approval."""
        with deps.sessions() as session:
            held = not policy.sees_everything(viewer) and approvals.requires_approval(session)
            return audience_choices(session, viewer), held

    def show(
        request: Request,
        viewer: Viewer,
        form: LaunchForm,
        checked: Checked,
        *,
        http_status: int = 200,
        submitted: bool = False,
    ) -> Response:
        """The composer; after a refused submit, every problem is listed next to its
        field and at the top, and a refused timeline by the customer time."""
        shown = checked if submitted else _timing_only(checked)
        choices, held = choices_for(viewer)
        return frame.page(
            request,
            viewer,
            TEMPLATE,
            "compose",
            http_status,
            scripts=True,
            form=form,
            choices=choices,
            held=held,
            errors=shown.errors,
            summary=shown.summary(submitted),
            refused=checked.refusal if submitted else None,
            view=timeline_view(checked, form, deps.clock(), _pristine(form)),
            zones=zone_names(),
            channels=KNOWN_CHANNELS,
            labels=LABELS,
            purpose=PURPOSE,
        )

    def checked_form(viewer: Viewer, form: LaunchForm) -> Checked:
        with deps.sessions() as session:
            return check(session, viewer, form, deps.clock(), ctx)

    def read(request: Request, data: FormData) -> LaunchForm:
        """The posted form, once it is known to come from our own page."""
        frame.check_same_site(request, str(data.get("csrf", "")), PURPOSE)
        form = LaunchForm.read({key: data.getlist(key) for key in data})
        chosen = data.get("use_customer_at")
        if isinstance(chosen, str) and chosen:
            form.customer_at = chosen.strip()
        return form

    @routes.get(PATH, response_class=HTMLResponse)
    def compose(request: Request) -> Response:
        """An empty launch, its customer time in the organisation's zone."""
        viewer = frame.viewer_of(request)
        if viewer is None:
            return frame.to_login(request)
        form = LaunchForm(tz=frame.settings.timezone)
        return show(request, viewer, form, Checked())

    async def posted(request: Request, work: Callable[[Viewer, LaunchForm], Response]) -> Response:
        """A whole-page post: read asynchronously, then the rest (the database) in a thread,
        signed in and from our own form."""
        data = await request.form()

        def answer() -> Response:
            viewer = frame.viewer_of(request)
            if viewer is None:
                return to_login(request)
            try:
                return work(viewer, read(request, data))
            except Refused as refused:
                return frame.problem_page(request, viewer, refused)

        return await run_in_threadpool(answer)

    @routes.post(f"{PATH}/check", response_class=HTMLResponse)
    async def check_page(request: Request) -> Response:
        """The whole page again with the timeline checked: the button for browsers
        without JavaScript, and where "use it" lands there."""
        return await posted(
            request, lambda viewer, form: show(request, viewer, form, checked_form(viewer, form))
        )

    @routes.post(f"{PATH}/preview", response_class=HTMLResponse)
    async def preview(request: Request) -> Response:
        """The timeline panel alone, for the composer's script to put in place."""
        data = await request.form()

        def answer() -> Response:
            viewer = frame.viewer_of(request)
            if viewer is None:
                return html(PANEL, 401, view=None, signed_out=True)
            try:
                form = read(request, data)
            except Refused as refused:
                return html(PANEL, refused.status, view=None, refused_post=refused)
            checked = checked_form(viewer, form)
            return html(PANEL, view=timeline_view(checked, form, deps.clock(), _pristine(form)))

        return await run_in_threadpool(answer)

    @routes.post(PATH, response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        """Store the launch and go to its page, or show the form with every problem."""

        def answer(viewer: Viewer, form: LaunchForm) -> Response:
            checked, created = store(viewer, form)
            if created is not None:
                return RedirectResponse(f"/dashboard/launches/{created}", status_code=303)
            return show(request, viewer, form, checked, http_status=400, submitted=True)

        return await posted(request, answer)

    def store(viewer: Viewer, form: LaunchForm) -> tuple[Checked, int | None]:
        """One transaction: checked, then stored and submitted, or nothing at all."""
        now = deps.clock()
        try:
            with session_scope(deps.sessions) as session:
                checked = check(session, viewer, form, now, ctx)
                if checked.spec is None or checked.refusal is not None:
                    return checked, None
                message = add_launch(session, checked.spec, now, ctx)
                approvals.submit(session, message, account(session, viewer), now)
                return checked, message.id
        except InputError as exc:  # refused after all (the directory changed meanwhile)
            late = Checked()
            late.refusal = exc
            return late, None

    return routes


def _timing_only(checked: Checked) -> Checked:
    """Before a submit, only what keeps the timeline from being checked is shown as a
    problem: a title not written yet is not a mistake while the launch is being composed."""
    keep = {k: v for k, v in checked.errors.items() if k in TIMING}
    return Checked(errors=keep, timeline=checked.timeline, refusal=checked.refusal)
