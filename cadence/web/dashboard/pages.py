"""The dashboard's routes: acknowledgement figures for comms users and team leaders.

The routes are closures inside `router`, sharing the helpers of `common.Frame` (who is
asking, CSRF, responses); signing in and out is `sign_in`; what each page shows lives in
`views`, how it is presented in `tables`, its filters in `filters`, and who may see it in
`cadence.access.policy`.

Comms users see every message and person; a leader sees their own reporting tree and
nothing else: pages about a message or launch that reached nobody in their tree answer 404
(not 403, which would confirm it exists), and tables never list anyone outside it.

Pages are server-rendered HTML with inline SVG charts and no JavaScript. Filters are GET
query parameters, so a filtered page can be bookmarked and shared. Every table can be
downloaded as CSV with the same filters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.config import KNOWN_CHANNELS
from cadence.directory.audience import Audience
from cadence.errors import InputError
from cadence.figures import summaries
from cadence.figures.measures import Filters, breakdown, heatmap, leaders, overview
from cadence.figures.message_detail import (
    ack_curve_since_sent,
    not_acknowledged,
    occurrence_story,
    repetition,
)
from cadence.inputs import is_id
from cadence.launches.cascade import context_from
from cadence.launches.status import launch_status
from cadence.store.models import (
    Message,
    MessageKind,
)
from cadence.web.charts import bar_chart
from cadence.web.dashboard import (
    admin,
    approvals,
    calendar,
    compose,
    compose_launch,
    launch_edit,
    manage,
    my_team,
    sign_in,
)
from cadence.web.dashboard.common import (
    DASHBOARD_HEADERS,
    NOT_FOUND,
    Frame,
    Refused,
)
from cadence.web.dashboard.filters import FilterForm, read_filters
from cadence.web.dashboard.manage_view import management_of
from cadence.web.dashboard.message_view import message_story
from cadence.web.dashboard.tables import (
    Column,
    Present,
    Table,
)
from cadence.web.dashboard.views import (
    FIGURE_TABLE_COLUMNS,
    HEAT_COLUMNS,
    LAUNCH_COLUMNS,
    LEADER_COLUMNS,
    LEFT_OUT_COLUMN,
    RELEASE_COLUMNS,
    REPETITION_COLUMNS,
    WAITING_COLUMNS,
    _headline_cards,
    _heat,
    _launch_cards,
    _launch_row,
    _repetition_view,
    launch_releases,
)
from cadence.web.deps import WebDeps

log = logging.getLogger(__name__)


def _csv(table: Table, filename: str) -> Response:
    headers = {
        **DASHBOARD_HEADERS,
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    return Response(table.to_csv(), media_type="text/csv; charset=utf-8", headers=headers)


def _url(path: str, query: Mapping[str, str]) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def _filename(*parts: object) -> str:
    name = "-".join(re.sub(r"[^a-z0-9]+", "-", str(p).lower()).strip("-") for p in parts)
    return f"cadence-{name}.csv"


def router(deps: WebDeps) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    settings = deps.settings
    zone = ZoneInfo(settings.timezone)
    present = Present(zone, deps.clock)
    launch_ctx = context_from(settings)
    frame = Frame(deps)
    routes.include_router(sign_in.router(frame))
    routes.include_router(launch_edit.router(frame))
    # Before compose's `/dashboard/compose/{message_id}`, which would claim ".../launch".
    routes.include_router(compose_launch.router(frame))
    routes.include_router(compose.router(frame))
    routes.include_router(manage.router(frame))
    routes.include_router(approvals.router(frame))
    routes.include_router(calendar.router(frame))
    routes.include_router(admin.router(frame))
    routes.include_router(my_team.router(frame))
    viewer_of, to_login = frame.viewer_of, frame.to_login
    page, problem_page = frame.page, frame.problem_page

    # -- the pages ---------------------------------------------------------------------

    def filters_for(
        session: Session,
        request: Request,
        viewer: Viewer,
        *,
        show_team: bool = True,
        show_message: bool = True,
    ) -> tuple[FilterForm, Filters]:
        form, filters = read_filters(
            request.query_params,
            zone,
            teams=policy.visible_teams(session, viewer),
            channels=KNOWN_CHANNELS,
            messages=policy.visible_messages(session, viewer) if show_message else [],
            scope=policy.figure_scope(viewer),
        )
        form.show_team, form.show_message = show_team, show_message
        return form, filters

    def respond(
        request: Request,
        viewer: Viewer,
        template: str,
        section: str,
        exports: Sequence[Table],
        filename: Callable[[Table], str],
        http_status: int = 200,
        **context: Any,
    ) -> Response:
        """The page, or one of its tables as CSV when `?format=csv` asks for it."""
        if request.query_params.get("format") == "csv":
            wanted = request.query_params.get("table") or exports[0].name
            for table in exports:
                if table.name == wanted:
                    return _csv(table, filename(table))
            raise Refused(*NOT_FOUND)
        return page(request, viewer, template, section, http_status, **context)

    def page_id(text: str) -> int:
        """An id in a page's path; anything that is not one names no page."""
        if not is_id(text):
            raise Refused(*NOT_FOUND)
        return int(text)

    def csv_url(path: str, form: FilterForm, table: str) -> str:
        return _url(path, {**form.query(), "format": "csv", "table": table})

    def run(request: Request, handler: Callable[[Viewer], Response]) -> Response:
        """Sign-in required; refusals and bad input become the problem page."""
        viewer = viewer_of(request)
        if viewer is None:
            return to_login(request)
        # Summarise what changed since the beat last did, in a short transaction of its
        # own, so that the page reads current figures without holding a write lock (if a
        # refresh is already running, the page reads what it last committed).
        summaries.refresh(deps.sessions, wait=False)
        try:
            return handler(viewer)
        except Refused as refused:
            return problem_page(request, viewer, refused)
        except InputError as exc:
            return problem_page(request, viewer, Refused(400, "Cannot show this", str(exc)))

    @routes.get("/dashboard", response_class=HTMLResponse)
    def overview_page(request: Request) -> Response:
        """Headline figures, then reach and acknowledgement per message, and launches."""

        def build(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                form, filters = filters_for(session, request, viewer)
                now = deps.clock()
                head = overview(session, filters, now, launch_context=launch_ctx)
                by_message = breakdown(session, "message", filters, now)
                attention = policy.needing_attention(session, viewer)
            path = "/dashboard"
            messages = Table(
                "messages",
                "By message",
                [
                    Column(
                        "title", "Message", link=lambda r: f"/dashboard/messages/{r['message']}"
                    ),
                    *FIGURE_TABLE_COLUMNS,
                ],
                by_message,
                present,
                csv_url(path, form, "messages"),
                note="Each person counts once per occurrence, whatever the channel.",
            )
            for row in messages.rows:
                row.setdefault("title", f"Message {row['message']}")
            launches = Table(
                "launches",
                "Launches",
                LAUNCH_COLUMNS,
                [_launch_row(status) for status in head["launches"]],
                present,
                csv_url(path, form, "launches"),
                note=(
                    "Whole-launch figures: staff should hear before customers."
                    if policy.sees_everything(viewer)
                    else "Your tree's part of each launch: staff should hear before customers."
                ),
                empty="No launch falls due in this period.",
            )
            chart = bar_chart(
                [str(r.get("title") or r["message"]) for r in by_message],
                {
                    "reach": [r["reach"] for r in by_message],
                    "acknowledged": [r["ack_rate"] for r in by_message],
                },
                description="Reach and acknowledgement rate by message",
            )
            return respond(
                request,
                viewer,
                "web/dashboard/overview.html",
                "overview",
                [messages, launches],
                lambda t: _filename("overview", t.name),
                form=form,
                action=path,
                cards=_headline_cards(head),
                chart=chart,
                has_rows=bool(by_message),
                tables=[messages, launches],
                attention=attention,
                as_of=present.when(now),
            )

        return run(request, build)

    @routes.get("/dashboard/messages/{message_id}", response_class=HTMLResponse)
    def message_page(request: Request, message_id: str) -> Response:
        """One message's story: its figures, each repetition sent (newest first), when it
        goes out next in each zone, how fast people acknowledged, and who has not yet."""
        raw_id = message_id

        def build(viewer: Viewer) -> Response:
            message_id = page_id(raw_id)
            with deps.sessions() as session:
                message = session.get(Message, message_id)
                if message is None or not policy.can_see_message(session, viewer, message):
                    raise Refused(*NOT_FOUND)
                form, filters = filters_for(session, request, viewer, show_message=False)
                filters = replace(filters, message_id=message_id)
                now = deps.clock()
                head = overview(session, filters, now, launch_context=launch_ctx)
                curve = ack_curve_since_sent(session, message_id, filters)
                waiting = not_acknowledged(session, message_id, filters)
                story = occurrence_story(
                    session, message_id, filters, default_zone=settings.timezone
                )
                core = message.kind == MessageKind.CORE.value
                repeated = (
                    repetition(
                        session, message_id, filters.since, filters.until, 1, filters=filters
                    )
                    if core
                    else None
                )
                by_repetition = breakdown(session, "repetition", filters, now) if core else None
                title, kind, status = message.title, message.kind, message.status
                attention = message.attention
                audience = policy.describe_audience(
                    session, viewer, Audience.from_json(message.audience or {})
                )
                left_out = policy.left_out(session, viewer, message_id)
                managed = management_of(session, viewer, message)
                allowed = policy.tree_emails(session, viewer, [r["person"] for r in waiting])
                waiting = [r for r in waiting if r["person"] in allowed]
            path = f"/dashboard/messages/{message_id}"
            told = message_story(
                story,
                curve,
                by_repetition,
                title=title,
                sent_so_far=head["sent"],
                present=present,
                csv_for=lambda name: csv_url(path, form, name),
                left_out=None if left_out is None else LEFT_OUT_COLUMN,
            )
            if told.never_sent:
                # Nobody was sent it, so nobody can have acknowledged it.
                empty = "Not sent yet in this period, so nobody has been asked to acknowledge it."
                if told.next_send is not None:
                    empty += f" Next send: {told.next_send.text}."
            else:
                empty = "Everyone sent this message has acknowledged it."
            waiting_table = Table(
                "not_acknowledged",
                "Not acknowledged yet",
                WAITING_COLUMNS,
                waiting,
                present,
                csv_url(path, form, "not_acknowledged"),
                note="Active people sent the latest occurrence who have not answered it.",
                empty=empty,
            )
            tables = [told.sent_table, told.next_table, waiting_table]
            if told.trend_table is not None:
                tables.append(told.trend_table)
            received = None
            if repeated is not None:
                received = _repetition_view(repeated, title)
                tables.append(
                    Table(
                        "repetition",
                        "Times received, by person",
                        REPETITION_COLUMNS,
                        repeated["people"],
                        present,
                        csv_url(path, form, "repetition"),
                        note="Each repetition counts once per person, whatever the channel.",
                        empty="Nobody was planned a repetition in this period.",
                    )
                )
            return respond(
                request,
                viewer,
                "web/dashboard/message.html",
                "overview",
                tables,
                lambda t: _filename("message", message_id, t.name),
                form=form,
                action=path,
                title=title,
                kind=kind,
                message_status=status,
                manage=managed,
                audience=audience,
                left_out=left_out,
                message_id=message_id,
                banner=compose.banner(request.query_params.get("done")),
                is_draft=status == "draft" and message.created_by_id == viewer.user_id,
                cards=_headline_cards(head, message_page=True),
                story=told,
                waiting=waiting_table,
                attention=attention,
                received=received,
                extra_tables=[t for t in tables[3:] if t is not told.trend_table],
                as_of=present.when(now),
            )

        return run(request, build)

    @routes.get("/dashboard/teams", response_class=HTMLResponse)
    def teams_page(request: Request) -> Response:
        """Acknowledgement rate per team and message, with each team's and leader's figures."""

        def build(viewer: Viewer) -> Response:
            with deps.sessions() as session:
                form, filters = filters_for(session, request, viewer)
                now = deps.clock()
                heat = heatmap(session, filters)
                by_team = breakdown(session, "team", filters, now)
                leader_rows = leaders(session, filters)
            path = "/dashboard/teams"
            heat_view, heat_rows = _heat(heat)
            heat_csv = Table(
                "heatmap",
                "Acknowledgement rate by team and message",
                HEAT_COLUMNS,
                heat_rows,
                present,
                csv_url(path, form, "heatmap"),
            )
            teams_table = Table(
                "teams",
                "By team",
                [Column("team", "Team", "team"), *FIGURE_TABLE_COLUMNS],
                by_team,
                present,
                csv_url(path, form, "teams"),
                note="Each team with its sub-teams.",
            )
            leaders_table = Table(
                "leaders",
                "Leaders in launches",
                LEADER_COLUMNS,
                leader_rows,
                present,
                csv_url(path, form, "leaders"),
                note="Briefings before their teams, and people released without them.",
                empty="No leader was briefed for a launch in this period.",
            )
            return respond(
                request,
                viewer,
                "web/dashboard/teams.html",
                "teams",
                [heat_csv, teams_table, leaders_table],
                lambda t: _filename("teams", t.name),
                form=form,
                action=path,
                heat=heat_view,
                heat_csv_url=heat_csv.csv_url,
                tables=[teams_table, leaders_table],
                as_of=present.when(now),
            )

        return run(request, build)

    @routes.get("/dashboard/launches/{message_id}", response_class=HTMLResponse)
    def launch_page(request: Request, message_id: str, edited: str = "") -> Response:
        """A launch's compliance: did staff hear before customers, leaders before teams."""
        raw_id = message_id
        # Only a number comes from the link, so a crafted one cannot choose the words.
        notice = launch_edit.saved_notice(edited)

        def build(viewer: Viewer) -> Response:
            message_id = page_id(raw_id)
            with deps.sessions() as session:
                message = session.get(Message, message_id)
                if (
                    message is None
                    or message.kind != MessageKind.LAUNCH.value
                    or not policy.can_see_message(session, viewer, message)
                ):
                    raise Refused(*NOT_FOUND)
                editable = launch_edit.can_edit(viewer, message)
                now = deps.clock()
                within = policy.tree_ids(session, viewer)
                status = launch_status(session, message_id, launch_ctx, now, within)
                releases = launch_releases(session, message_id, launch_ctx, within)
            path = f"/dashboard/launches/{message_id}"
            releases_table = Table(
                "releases",
                "Releases down the tree",
                RELEASE_COLUMNS,
                releases,
                present,
                _url(path, {"format": "csv", "table": "releases"}),
                note="Planned from the launch's timeline; sent and acknowledged as recorded.",
                empty="Nobody to show.",
            )
            return respond(
                request,
                viewer,
                "web/dashboard/launch.html",
                "overview",
                [releases_table],
                lambda t: _filename("launch", message_id, t.name),
                title=status["title"],
                message_id=message_id,
                customer_at=present.when(status["customer_at"]),
                launch_status=status["status"],
                cards=_launch_cards(status),
                breached=status["breached"],
                not_yet_reached=status["not_yet_reached"],
                tables=[releases_table],
                as_of=present.when(now),
                scoped=within is not None,
                notice=notice,
                editable=editable,
            )

        return run(request, build)

    return routes
