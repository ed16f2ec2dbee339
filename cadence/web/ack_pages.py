"""The email acknowledgement link: `GET /ack/{token}` confirms, `POST /ack/{token}` records.

Mail scanners and link previewers fetch every link in an email, so a GET only shows a page
and never records anything. Answers come from a form POST, which must prove it came from
that page (a double-submit cookie whose HMAC, bound to the token, is in the form) and, when
the browser says where it came from, from our own origin. The pages use no JavaScript.

A leader's briefing page also offers their note for their team (`POST /ack/{token}/note`):
the same token scopes it to that one briefing, and the form is checked the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cadence.answers.acks import (
    AnswerKind,
    NotRecipient,
    Recorded,
    answered_condition,
    load_delivery,
    make_answer,
    record_answer,
    root_occurrence,
)
from cadence.answers.group_commit import GroupCommit
from cadence.answers.questions import FORWARD_QUESTION_TASK
from cadence.answers.tokens import AckClaim, TokenExpired, TokenInvalid, read_ack_token
from cadence.errors import InputError
from cadence.launches.briefings import (
    Briefing,
    NoSuchBriefing,
    add_team_note,
    briefing_of,
    is_briefing,
)
from cadence.launches.changes import NOTE_MAX_LENGTH
from cadence.rendering import render
from cadence.store.db import session_scope
from cadence.store.models import Acknowledgement, Delivery
from cadence.web.deps import WebDeps

CSRF_COOKIE = "cadence_csrf"
CSRF_PATH = "/ack"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{32,128}")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

_LINK_INVALID = "This acknowledgement link is not valid."
_LINK_HINT = "Check that the whole link from the email was opened, or ask for the message again."


@dataclass
class Refused(Exception):
    """A request answered with an error page, and nothing recorded."""

    status: int
    heading: str
    detail: str
    hint: str = ""
    retry_link: bool = False


def origin_of(url: str) -> str:
    """`scheme://host[:port]` as browsers send it in `Origin` (default ports left out)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def csrf_field(secret: str, cookie: str, token: str) -> str:
    """The form's proof: only our server can compute it, and only for this cookie and link."""
    message = f"cadence-csrf:{cookie}:{token}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **context), status_code=status, headers=SECURITY_HEADERS)


def _error(refused: Refused, token: str) -> HTMLResponse:
    return _page(
        "web/error.html",
        refused.status,
        heading=refused.heading,
        detail=refused.detail,
        hint=refused.hint,
        retry_url=f"./{token}" if refused.retry_link else None,
    )


def _claim(secret: str, token: str) -> AckClaim:
    try:
        return read_ack_token(secret, token)
    except TokenExpired:
        raise Refused(
            410,
            "This link has expired",
            "Acknowledgement links work for 30 days after the email was sent.",
            "If you still want to answer, reply to the message or ask its sender.",
        ) from None
    except TokenInvalid:
        raise Refused(
            400, _LINK_INVALID, "The link has been changed or cut short.", _LINK_HINT
        ) from None


def _delivery(session: Session, claim: AckClaim) -> Delivery:
    """The delivery the token names, if it exists and was sent to the person it names."""
    try:
        delivery = load_delivery(session, claim.delivery_id)
    except InputError:
        raise Refused(
            400, _LINK_INVALID, "It does not name a message sent by Cadence.", _LINK_HINT
        ) from None
    if delivery.person_id != claim.person_id:
        raise Refused(400, _LINK_INVALID, "It was not issued for this message.", _LINK_HINT)
    if delivery.occurrence.purpose == "escalation":
        raise Refused(
            400, "Nothing to acknowledge", "A digest for managers has nothing to acknowledge."
        )
    return delivery


def _already_answered(session: Session, delivery: Delivery) -> bool:
    """Whether this person's next answer would be a repeat (same rule as record_answer)."""
    root = root_occurrence(session, delivery.occurrence)
    version = delivery.occurrence.message.version
    return bool(session.scalar(select(answered_condition(root.id, delivery.person_id, version))))


def _question_already_sent(session: Session, delivery: Delivery, question: str | None) -> bool:
    """The same question to the same occurrence: a double submit, not a new question."""
    root = root_occurrence(session, delivery.occurrence)
    return bool(
        session.scalar(
            select(
                exists().where(
                    Acknowledgement.occurrence_id == root.id,
                    Acknowledgement.person_id == delivery.person_id,
                    Acknowledgement.kind == AnswerKind.QUESTION.value,
                    Acknowledgement.question == question,
                )
            )
        )
    )


def _note_purpose(token: str) -> str:
    """The note form's own CSRF purpose, so an answer's proof cannot post a note."""
    return f"note:{token}"


def _open_briefing(session: Session, delivery: Delivery, now: datetime) -> Briefing | None:
    """The briefing a leader may still add a note to, or None."""
    if not is_briefing(delivery):
        return None
    briefing = briefing_of(session, delivery.id, now, person_id=delivery.person_id)
    return briefing if briefing.pending else None


def _manager_name(delivery: Delivery) -> str | None:
    manager = delivery.person.manager
    return manager.name if manager is not None else None


def router(deps: WebDeps, answers: GroupCommit) -> APIRouter:
    routes = APIRouter(tags=["acknowledgements"])
    settings = deps.settings
    secret = settings.secret_key.get_secret_value()
    our_origin = origin_of(settings.base_url)
    secure_cookie = urlsplit(settings.base_url).scheme.lower() == "https"

    def form_page(
        token: str,
        cookie: str,
        delivery: Delivery,
        already: bool,
        *,
        status: int = 200,
        problem: str | None = None,
        question: str = "",
        clarity: str = "",
        briefing: Briefing | None = None,
        note: str | None = None,
        note_problem: str | None = None,
        noted: bool = False,
    ) -> HTMLResponse:
        response = _page(
            "web/ack.html",
            status,
            title=delivery.occurrence.message.title,
            person_name=delivery.person.name,
            already=already,
            csrf=csrf_field(secret, cookie, token),
            problem=problem,
            question=question,
            clarity=clarity,
            token=token,
            briefing=briefing,
            note=note if note is not None else (briefing.note if briefing else "") or "",
            note_csrf=csrf_field(secret, cookie, _note_purpose(token)),
            note_problem=note_problem,
            note_max=NOTE_MAX_LENGTH,
            noted=noted,
        )
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            path=CSRF_PATH,
            secure=secure_cookie,
            httponly=True,
            samesite="strict",
        )
        return response

    def cookie_of(request: Request) -> str:
        """Keep a cookie the browser sent, so another open Cadence page stays valid."""
        sent = request.cookies.get(CSRF_COOKIE, "")
        return sent if _COOKIE_VALUE.fullmatch(sent) else secrets.token_urlsafe(32)

    def check_origin_and_csrf(
        request: Request, token: str, csrf: str, purpose: str | None = None
    ) -> None:
        origin = request.headers.get("origin")
        # Browsers send `Origin: null` for a page with `Referrer-Policy: no-referrer`, ours
        # included; it says nothing either way, so the cookie check alone decides.
        if origin is not None and origin != "null" and origin.rstrip("/") != our_origin:
            raise Refused(
                403,
                "This form was not sent from Cadence",
                "Answers can only be given on Cadence's own page.",
                "Open the link from your email and answer there.",
            )
        cookie = request.cookies.get(CSRF_COOKIE, "")
        expected = csrf_field(secret, cookie, purpose or token) if cookie else ""
        if not cookie or not csrf or not hmac.compare_digest(expected, csrf):
            raise Refused(
                403,
                "Please confirm again",
                "This form could not be checked: it may have been open for a while, or "
                "another acknowledgement page was opened since.",
                "Cadence needs its cookie to know the answer came from you.",
                retry_link=True,
            )

    @routes.get("/ack/{token}", response_class=HTMLResponse)
    def confirm(token: str, request: Request) -> HTMLResponse:
        """Show what is being acknowledged and the answer form. Records nothing."""
        try:
            claim = _claim(secret, token)
            with deps.sessions() as session:
                delivery = _delivery(session, claim)
                already = _already_answered(session, delivery)
                briefing = _open_briefing(session, delivery, deps.clock())
                return form_page(token, cookie_of(request), delivery, already, briefing=briefing)
        except Refused as refused:
            return _error(refused, token)

    @routes.post("/ack/{token}", response_class=HTMLResponse)
    def answer(
        token: str,
        request: Request,
        kind: Annotated[str, Form()] = "",
        question: Annotated[str, Form()] = "",
        clarity: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> HTMLResponse:
        """Record the answer once the form proves it came from the confirm page."""
        try:
            check_origin_and_csrf(request, token, csrf)
            claim = _claim(secret, token)
            with session_scope(deps.sessions) as session:
                delivery = _delivery(session, claim)
                try:
                    reply = make_answer(kind, question, clarity)
                except InputError as exc:
                    return form_page(
                        token,
                        request.cookies[CSRF_COOKIE],
                        delivery,
                        _already_answered(session, delivery),
                        status=400,
                        problem=f"Nothing was recorded: {exc}.",
                        question=question,
                        clarity=clarity,
                    )
                manager = _manager_name(delivery)
                title = delivery.occurrence.message.title
                delivery_id = delivery.id
            now = deps.clock()

            def record(session: Session) -> tuple[Recorded, bool]:
                # The question's first sight and its answer in one transaction, so two
                # posts of the same question forward it once.
                asked = reply.kind is AnswerKind.QUESTION
                delivery = load_delivery(session, delivery_id)
                forward = asked and not _question_already_sent(session, delivery, reply.question)
                recorded = record_answer(
                    session, delivery_id, reply, via="email", now=now, person_id=claim.person_id
                )
                return recorded, forward

            try:
                # Answered only once the group holding this answer has committed.
                recorded, forward = answers.submit(record).result()
            except (NotRecipient, InputError) as exc:
                raise Refused(400, "Your answer could not be recorded", f"{exc}.") from None
        except Refused as refused:
            return _error(refused, token)
        if forward:
            deps.send_task(FORWARD_QUESTION_TASK, [recorded.acknowledgement_id])
        return _page(
            "web/acked.html",
            title=title,
            kind=recorded.kind,
            counted=recorded.counted,
            forwarded=forward,
            manager=manager,
            clarity=reply.clarity,
        )

    @routes.post("/ack/{token}/note", response_class=HTMLResponse)
    def team_note(
        token: str,
        request: Request,
        note: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> HTMLResponse:
        """A leader's note for their team, from their briefing's page."""
        try:
            check_origin_and_csrf(request, token, csrf, _note_purpose(token))
            claim = _claim(secret, token)
            now = deps.clock()
            with session_scope(deps.sessions) as session:
                delivery = _delivery(session, claim)
                try:
                    saved = add_team_note(
                        session, delivery.id, note, now, person_id=claim.person_id
                    )
                except NoSuchBriefing:
                    raise Refused(
                        400,
                        "Nothing to add a note to",
                        "Notes are for a leader's briefing, and this message is not one.",
                    ) from None
                except InputError as exc:
                    return form_page(
                        token,
                        request.cookies[CSRF_COOKIE],
                        delivery,
                        _already_answered(session, delivery),
                        status=400,
                        briefing=_open_briefing(session, delivery, now),
                        note=note,
                        note_problem=f"The note was not saved: {exc}.",
                    )
                return form_page(
                    token,
                    request.cookies[CSRF_COOKIE],
                    delivery,
                    _already_answered(session, delivery),
                    briefing=saved,
                    noted=True,
                )
        except Refused as refused:
            return _error(refused, token)

    return routes
