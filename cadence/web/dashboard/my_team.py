"""My team: a leader's own page. Their people and what each was sent and answered, who has
not answered what, the questions their people asked, and their briefings still waiting for
the team, each with "Add a note for my team".

A comms user, or a leader above other leaders, may pick whose team to look at (anyone in
their tree who leads someone); only the leader themselves may add a note to their briefing,
and a briefing of anyone else answers 404, like every page about something not theirs.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cadence.access import policy
from cadence.access.users import Viewer
from cadence.errors import InputError
from cadence.figures import my_team, summaries
from cadence.inputs import is_id
from cadence.launches.briefings import Briefing, NoSuchBriefing, add_team_note, pending_briefings
from cadence.launches.changes import NOTE_MAX_LENGTH
from cadence.store.db import session_scope
from cadence.store.models import Person
from cadence.web.dashboard.common import DASHBOARD_HEADERS, NOT_FOUND, Frame, Refused
from cadence.web.dashboard.forms import sentence
from cadence.web.dashboard.tables import Column, Present, Table

PATH = "/dashboard/my-team"
NOTE_PURPOSE = "team-note"
#: Names listed under each message not yet acknowledged; its own page lists them all.
NAMES_SHOWN = 40

PEOPLE_COLUMNS = [
    Column("name", "Name"),
    Column("person", "Email"),
    Column("team", "Team", "team"),
    Column("reports_to", "Reports to"),
    Column("received", "Received", "count"),
    Column("acknowledged", "Acknowledged", "count"),
    Column("ack_rate", "Rate", "share"),
    Column("last_message", "Last message"),
    Column("last_sent_at", "Sent", "time"),
    Column("last_ack_message", "Last acknowledged"),
    Column("last_ack_at", "Answered", "time"),
]


def _briefing_view(briefing: Briefing, present: Present) -> dict[str, Any]:
    return {
        "id": briefing.delivery_id,
        "message_id": briefing.message_id,
        "title": briefing.title,
        "customer_at": present.when(briefing.customer_at),
        "sent_at": present.when(briefing.sent_at),
        "acknowledged_at": (
            present.when(briefing.acknowledged_at) if briefing.acknowledged_at else None
        ),
        "note": briefing.note,
        "team": briefing.team,
        "waiting": briefing.waiting,
    }


def _person_view(row: dict[str, Any], present: Present, own: bool) -> dict[str, Any]:
    """A row of the people table as the page shows it (the CSV keeps exact values)."""
    rate = row["ack_rate"]
    return {
        **row,
        "team": row["team"] or "\u2013",
        "reports_to": "you" if own and row["direct"] else row["reports_to"] or "\u2013",
        "rate": "\u2013" if rate is None else f"{rate:.0%}",
        "last_sent_at": present.brief(row["last_sent_at"]),
        "last_ack_at": present.brief(row["last_ack_at"]),
    }


def router(frame: Frame) -> APIRouter:
    routes = APIRouter(tags=["dashboard"])
    deps = frame.deps
    present = Present(ZoneInfo(frame.settings.timezone), deps.clock)

    def subject_of(request: Request, viewer: Viewer) -> tuple[Person | None, list[Any]]:
        """Whose team the page shows, and the leaders the viewer may pick from."""
        with deps.sessions() as session:
            tree = policy.tree_ids(session, viewer)
            choices = [
                (pid, name, email)
                for pid, name, email in my_team.leaders(session)
                if tree is None or pid in tree
            ]
            wanted = (request.query_params.get("leader") or "").strip().lower()
            if wanted:
                person = next(
                    (session.get(Person, pid) for pid, _, email in choices if email == wanted),
                    None,
                )
                if person is None:
                    raise Refused(*NOT_FOUND)
            elif my_team.leads_anyone(session, viewer.person_id):
                person = session.get(Person, viewer.person_id)
            else:
                person = None
            if person is not None:
                session.expunge(person)
            return person, choices

    def team_page(
        request: Request,
        viewer: Viewer,
        *,
        http_status: int = 200,
        problems: dict[int, str] | None = None,
        drafts: dict[int, str] | None = None,
    ) -> Response:
        subject, choices = subject_of(request, viewer)
        own = subject is not None and subject.id == viewer.person_id
        context: dict[str, Any] = {
            "subject": subject,
            "choices": choices,
            "own": own,
            "problems": problems or {},
            "drafts": drafts or {},
            "noted": request.query_params.get("noted", ""),
            "note_max": NOTE_MAX_LENGTH,
            "names_shown": NAMES_SHOWN,
            "as_of": present.when(deps.clock()),
        }
        if subject is not None:
            now = deps.clock()
            with deps.sessions() as session:
                people = my_team.team_people(session, subject.id)
                waiting = my_team.waiting_by_message(session, subject.id)
                questions = my_team.team_questions(session, subject.id)
                briefings = pending_briefings(session, subject.id, now)
            query = {"leader": subject.email} if subject.id != viewer.person_id else {}
            table = Table(
                "people",
                "People",
                PEOPLE_COLUMNS,
                people,
                present,
                f"{PATH}?{urlencode({**query, 'format': 'csv', 'table': 'people'})}",
                note="Messages each person was sent and answered, counted once whatever the "
                "channel.",
                empty="Nobody reports to this leader.",
            )
            if request.query_params.get("format") == "csv":
                return Response(
                    table.to_csv(),
                    media_type="text/csv; charset=utf-8",
                    headers={
                        **DASHBOARD_HEADERS,
                        "Content-Disposition": 'attachment; filename="cadence-my-team.csv"',
                    },
                )
            context.update(
                people=table,
                people_rows=[_person_view(row, present, own) for row in people],
                waiting=[{**m, "last_sent_at": present.when(m["last_sent_at"])} for m in waiting],
                questions=[
                    {
                        **q,
                        "at": present.brief(q["at"]),
                        "asked_of": "you" if own and q["direct"] else q["asked_of"],
                    }
                    for q in questions
                ],
                briefings=[_briefing_view(b, present) for b in briefings],
                answered=sum(1 for p in people if p["acknowledged"]),
            )
        return frame.page(
            request, viewer, "web/dashboard/my_team.html", "my-team", http_status, **context
        )

    @routes.get(PATH, response_class=HTMLResponse)
    def my_team_page(request: Request) -> Response:
        """The viewer's team, or the team of a leader they picked."""
        # Who has not answered is read from the summaries: bring them up to date first.
        summaries.refresh(deps.sessions, wait=False)
        return frame.signed_in(request, lambda viewer: team_page(request, viewer))

    @routes.post(PATH + "/notes/{delivery_id}", response_class=HTMLResponse)
    def add_note(
        request: Request,
        delivery_id: str,
        note: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        """The leader's note for their team, from one of their own briefings."""

        def handle(viewer: Viewer) -> Response:
            if not is_id(delivery_id) or viewer.person_id is None:
                raise Refused(*NOT_FOUND)
            briefing = int(delivery_id)
            try:
                with session_scope(deps.sessions) as session:
                    add_team_note(session, briefing, note, deps.clock(), person_id=viewer.person_id)
            except NoSuchBriefing:
                raise Refused(*NOT_FOUND) from None
            except InputError as exc:
                return team_page(
                    request,
                    viewer,
                    http_status=400,
                    problems={briefing: sentence(str(exc))},
                    drafts={briefing: note},
                )
            return RedirectResponse(f"{PATH}?noted={briefing}#briefing-{briefing}", status_code=303)

        return frame.signed_in(request, handle, purpose=NOTE_PURPOSE, csrf=csrf)

    return routes
